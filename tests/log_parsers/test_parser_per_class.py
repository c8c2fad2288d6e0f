"""Per-class tables (`per_class:`): the shipped YOLOv7 spec on its real log and on rows printed with
YOLOv7's own format, the epoch a row belongs to, a regex parser's table, and the checks on the config.

YOLOv7's test.py prints, after the `all` row, one row per class (train.py validates with
`verbose=nc < 50 and final_epoch`) with `pf = '%20s' + '%12i' * 2 + '%12.3g' * 4`:
name, images, labels (the class's objects), P, R, mAP@.5, mAP@.5:.95.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from log_parsers import ClassRow, Line, MetricUpdate, PerClassParser, ProgressUpdate, build_parser, \
    validate_parser_config
from log_parsers.yolov7 import YoloV7Parser

ROOT = Path(__file__).resolve().parents[2]
LOG = (Path(__file__).parent / "data" / "yolov7_tiny_2epochs.log").read_text(encoding="utf-8")
YOLOV7 = yaml.safe_load((ROOT / "custom_repos" / "specs" / "yolov7.yaml").read_text())["parser"]
PF = "%20s" + "%12i" * 2 + "%12.3g" * 4  # test.py's print format


def row(name, labels, p, r, ap50, ap, images=8) -> str:
    return PF % (name, images, labels, p, r, ap50, ap)


def rows(events):
    return [e for e in events if isinstance(e, ClassRow)]


def without_rows(events):
    return [e for e in events if not isinstance(e, ClassRow)]


def test_the_shipped_spec_reads_the_real_logs_table_into_the_last_epoch():
    parser = build_parser(YOLOV7)
    assert isinstance(parser, PerClassParser) and isinstance(parser.inner, YoloV7Parser)
    assert parser.name == "yolov7"
    events = parser.parse_text(LOG)
    assert without_rows(events) == build_parser("yolov7").parse_text(LOG)  # the metrics as before
    assert rows(events) == [
        ClassRow(2, "red", {"AP50": 0.00022, "AP50-95": 8.79e-05, "precision": 0.0024, "recall": 0.0714,
                            "support": 14}),
        ClassRow(2, "blue", {"AP50": 0.00161, "AP50-95": 0.000219, "precision": 0.005, "recall": 0.2,
                             "support": 10}),
    ]
    assert events[-2:] == rows(events)  # after epoch 2's metrics
    assert type(rows(events)[0].values["support"]) is int


def test_chunked_feed_equals_whole_text():
    raw = LOG.encode()
    rng = random.Random(2)
    parser, events, i = build_parser(YOLOV7), [], 0
    while i < len(raw):
        n = rng.randint(1, 200)
        events += parser.feed(raw[i:i + n])
        i += n
    assert events + parser.finish() == build_parser(YOLOV7).parse_text(LOG)


def test_the_shipped_rows_carry_the_keys_of_an_ultralytics_training_record():
    from adapters.ultralytics.results import ROW_KEYS

    assert list(YOLOV7["per_class"]["values"].values()) == [key for key, _ in ROW_KEYS] + ["support"]


ALL = row("all", 24, 0.0037, 0.136, 0.000914, 0.000154)
ROW_CASES = [
    # (line, expected (name, values) of the row, or None: not a row)
    (row("person", 14, 0.5, 0.25, 0.125, 0.0625), ("person", {"AP50": 0.125, "AP50-95": 0.0625, "precision": 0.5,
                                                             "recall": 0.25, "support": 14})),
    (row("traffic light", 3, 1, 0, 1e-5, 8.79e-05), ("traffic light", {"AP50": 1e-05, "AP50-95": 8.79e-05,
                                                                       "precision": 1.0, "recall": 0.0,
                                                                       "support": 3})),
    (row("class 7", 7, 0.5, 0.5, 0.5, 0.5), ("class 7", {"AP50": 0.5, "AP50-95": 0.5, "precision": 0.5,
                                                          "recall": 0.5, "support": 7})),  # counted from the right
    (row("a-name-longer-than-twenty", 1, 0.1, 0.2, 0.3, 0.4, images=123456),
     ("a-name-longer-than-twenty", {"AP50": 0.3, "AP50-95": 0.4, "precision": 0.1, "recall": 0.2, "support": 1})),
    (row("7", 12, 0.5, 0.5, 0.5, 0.5), ("7", {"AP50": 0.5, "AP50-95": 0.5, "precision": 0.5, "recall": 0.5,
                                              "support": 12})),
    (ALL, None),  # another validation (of the same epoch: the YOLOv7 parser's), never a row; skip: [all] besides
    (row("red", 14, 0.0024, 0.0714, 0.00022, 8.79e-05).replace("0.0714", "0.07.4"), None),  # malformed: skipped
    (row("red", 14, 0.0024, 0.0714, 0.00022, 8.79e-05) + "  extra", None),
    ("               Class      Images      Labels           P           R      mAP@.5  mAP@.5:.95", None),
    ("Speed: 1.2/0.4/1.6 ms inference/NMS/total per 640x640 image at batch-size 32", None),
    ("2 epochs completed in 0.009 hours.", None),
    ("       1/1        0G   0.06972  0.004606   0.01832   0.09264        15        64", None),  # a train row
    ("", None),
]


@pytest.mark.parametrize("text, expected", ROW_CASES)
def test_row_table(text, expected):
    parser = build_parser(YOLOV7)
    assert parser.feed_line(Line(ALL, True)) == [MetricUpdate(1, {"val/precision": 0.0037, "val/recall": 0.136,
                                                                  "val/mAP50": 0.000914, "val/mAP50-95": 0.000154})]
    assert rows(parser.feed_line(Line(text, True))) == ([] if expected is None else [ClassRow(1, *expected)])


def test_a_nan_value_is_a_value():
    parser = build_parser(YOLOV7)
    parser.feed_line(Line(ALL, True))
    [found] = parser.feed_line(Line(row("rare", 0, float("nan"), 0, 0, 0), True))
    assert found.values["precision"] != found.values["precision"] and found.values["support"] == 0


def test_rows_are_read_only_after_a_validation_and_until_the_next_epoch():
    red = row("red", 14, 0.5, 0.5, 0.5, 0.5)
    train = ("       1/1        0G   0.06972  0.004606   0.01832   0.09264        15        64:  50%|#####     | "
             "1/2 [00:09]")
    parser = build_parser(YOLOV7)
    assert parser.feed_line(Line(red, True)) == []  # no validation yet
    parser.feed_line(Line(ALL, True))
    assert parser.feed_line(Line(red, False)) == []  # a `\r` repaint is no row
    assert rows(parser.feed_line(Line(red, True))) == [ClassRow(1, "red", {"AP50": 0.5, "AP50-95": 0.5,
                                                                           "precision": 0.5, "recall": 0.5,
                                                                           "support": 14})]
    assert parser.feed_line(Line(train, True)) == [ProgressUpdate(2, 2, 1, 2)]  # epoch 2 starts: the table ends
    assert parser.feed_line(Line(red, True)) == []
    parser.feed_line(Line("               Class      Images      Labels           P           R      mAP@.5", True))
    assert [e.step for e in parser.feed_line(Line(ALL, True))] == [2]
    assert [e.step for e in rows(parser.feed_line(Line(red, True)))] == [2]


def test_rows_after_a_late_all_row_go_to_its_epoch():
    """With stdout block-buffered, epoch 1's `all` row and table arrive after epoch 2's train rows."""
    tail = [ALL, row("red", 14, 0.5, 0.5, 0.5, 0.5)]
    lines = [line for line in LOG.split("\n") if line.lstrip().split(" ")[0] not in ("all", "red", "blue")]
    cut = next(i for i, line in enumerate(lines) if "       1/1        0G" in line)
    events = build_parser(YOLOV7).parse_text("\n".join(lines[:cut + 1] + tail + lines[cut + 1:]) + "\n")
    late = next(e for e in events if isinstance(e, MetricUpdate) and "val/mAP50" in e.values)
    assert late.step == 1 and [r.step for r in rows(events)] == [1]


# A repo onboarded with YAML alone: a regex parser, and a table after each validation.
TOY = {
    "patterns": [
        {"regex": r"epoch (?P<e>\d+)/(?P<n>\d+) loss=(?P<l>\S+)", "metrics": {"l": "train/loss"},
         "epoch_group": "e", "total_epochs_group": "n"},
        {"regex": r"^validation: acc (?P<a>[\d.]+)%", "metrics": {"a": "val/accuracy"}, "scale": {"a": 0.01}},
    ],
    "per_class": {
        "regex": r"^  (?P<class>.+?): acc (?P<acc>\S+)% f1 (?P<f1>\S+)(?: n=(?P<n>\d+))?$",
        "values": {"acc": "recall", "f1": "f1", "n": "support"},
        "scale": {"acc": 0.01},
        "skip": ["mean"],
    },
}


def test_a_regex_parsers_table():
    events = build_parser(TOY).parse_text("\n".join([
        "epoch 1/2 loss=0.5", "validation: acc 50.0%", "  cat: acc 40% f1 0.5 n=3", "  big dog: acc 60% f1 0.7",
        "  mean: acc 50% f1 0.6", "  cat: acc ?% f1 0.5", "epoch 2/2 loss=0.25", "  cat: acc 90% f1 0.9",
        "validation: acc 75.0%", "  cat: acc 80% f1 0.8 n=3"]))
    assert events == [
        ProgressUpdate(1, 2), MetricUpdate(1, {"train/loss": 0.5}), MetricUpdate(1, {"val/accuracy": 0.5}),
        ClassRow(1, "cat", {"recall": 0.4, "f1": 0.5, "support": 3}),
        ClassRow(1, "big dog", {"recall": 0.6, "f1": 0.7}),  # an optional group that did not match: no key
        ProgressUpdate(2, 2), MetricUpdate(2, {"train/loss": 0.25}), MetricUpdate(2, {"val/accuracy": 0.75}),
        ClassRow(2, "cat", {"recall": 0.8, "f1": 0.8, "support": 3}),
    ]
    assert validate_parser_config(TOY) is None and validate_parser_config({"parser": YOLOV7}) is None


def per_class(**entry):
    return {"builtin": "yolov7", "per_class": {"regex": r"(?P<class>\w+) (?P<a>\d+) (?P<b>\d+)",
                                                "values": {"a": "AP50"}, **entry}}


BAD = [
    # (config, message start)
    ({"builtin": "yolov7", "per_class": "x"}, "parser.per_class: expected a mapping"),
    (per_class(regex="(unclosed"), "parser.per_class.regex: invalid regular expression"),
    (per_class(regex=""), "parser.per_class.regex: required"),
    (per_class(regex=r"(?P<name>\w+) (?P<a>\d+)"), "parser.per_class.regex: needs a group named 'class'"),
    (per_class(values={}), "parser.per_class.values: required"),
    (per_class(values=["a"]), "parser.per_class.values: required"),
    (per_class(values={"c": "AP50"}), "parser.per_class.values.c: no value group named 'c' in the regex "
                                      "(named groups: a, b)"),
    (per_class(values={"class": "name"}), "parser.per_class.values.class: no value group named 'class'"),
    (per_class(values={"a": "class"}), "parser.per_class.values.a: invalid per-class key 'class'"),
    (per_class(values={"a": "AP{50}"}), "parser.per_class.values.a: invalid per-class key"),
    (per_class(values={"a": 5}), "parser.per_class.values.a: invalid per-class key"),
    (per_class(values={"a": "AP50", "b": "AP50"}), "parser.per_class.values: key 'AP50' is given by two groups"),
    (per_class(scale={"b": 0.1}), "parser.per_class.scale.b: not a group listed under values"),
    (per_class(scale={"a": "x"}), "parser.per_class.scale.a: expected a finite number"),
    (per_class(scale=[1]), "parser.per_class.scale: expected a mapping"),
    (per_class(skip="all"), "parser.per_class.skip: expected a list of names"),
    (per_class(skip=[1]), "parser.per_class.skip: expected a list of names"),
    (per_class(columns=1), "parser.per_class.columns: unknown key (valid: regex, values, scale, skip)"),
    ({"builtin": "yolov7", "per_class": {"regex": "(?P<class>x)", "values": {}}, "extra": 1},
     "parser.extra: unknown key next to 'builtin'"),
    ({"per_class": per_class()["per_class"]}, "parser.patterns: required"),
    ({**TOY, "name": "x"}, "parser.name: unknown key (valid: builtin, patterns, per_class)"),
]


@pytest.mark.parametrize("config, message", BAD)
def test_bad_configs_name_the_field(config, message):
    with pytest.raises(ValueError) as build_error:
        build_parser(config)
    assert str(build_error.value).startswith(message)
    with pytest.raises(ValueError) as validate_error:
        validate_parser_config(config)
    assert str(validate_error.value) == str(build_error.value)


def test_a_parser_without_per_class_is_not_wrapped():
    assert type(build_parser({"builtin": "yolov7"})) is YoloV7Parser
    assert not isinstance(build_parser({"patterns": TOY["patterns"]}), PerClassParser)
    first, second = build_parser(YOLOV7), build_parser(YOLOV7)
    assert first.inner is not second.inner and first.table == second.table  # fresh state per log
