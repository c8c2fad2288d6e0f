"""YAML-defined regex parsers, and the registry that builds every parser: tables of cases."""

from __future__ import annotations

import pytest

from log_parsers import Line, MetricUpdate, ProgressUpdate, RegexParser, build_parser, validate_parser_config
from log_parsers.convnext import ConvNeXtParser
from log_parsers.generic import GenericParser
from log_parsers.yolov7 import YoloV7Parser

# The example of the repo-spec docs, as yaml.safe_load gives it.
SPEC = {
    "parser": {
        "patterns": [
            {"regex": r"epoch (?P<epoch>\d+)/(?P<epochs>\d+) loss=(?P<loss>[\d.eE+-]+)",
             "metrics": {"loss": "train/loss"}, "epoch_group": "epoch", "epoch_base": 1,
             "total_epochs_group": "epochs"},
            {"regex": r"val acc (?P<acc>[\d.]+)%", "metrics": {"acc": "val/accuracy"}, "scale": {"acc": 0.01}},
        ]
    }
}


def run(config, *texts: str):
    parser = build_parser(config)
    events = []
    for text in texts:
        events += parser.feed_line(Line(text, True))
    return events + parser.finish()


CASES = [
    # (config, lines, expected events)
    (SPEC, ["epoch 1/10 loss=0.5"], [ProgressUpdate(1, 10), MetricUpdate(1, {"train/loss": 0.5})]),
    (SPEC, ["val acc 91.5%"], [MetricUpdate(1, {"val/accuracy": 0.915})]),  # no epoch yet: step 1
    (SPEC, ["epoch 3/10 loss=2e-3", "val acc 50%", "noise", "epoch 3/10 loss=1e-3"],
     [ProgressUpdate(3, 10), MetricUpdate(3, {"train/loss": 0.002}), MetricUpdate(3, {"val/accuracy": 0.5}),
      MetricUpdate(3, {"train/loss": 0.001})]),  # same epoch again: progress not repeated
    (SPEC, ["epoch 1/10 loss=..."], [ProgressUpdate(1, 10)]),  # value not a float: skipped
    (SPEC["parser"], ["epoch 2/5 loss=1 val acc 10%"],  # unwrapped config; one line, two patterns
     [ProgressUpdate(2, 5), MetricUpdate(2, {"train/loss": 1.0, "val/accuracy": 0.1})]),
    ({"patterns": [{"regex": r"Epoch (?P<e>\d+) .*acc=(?P<a>[\d.]+)", "metrics": {"a": "val/accuracy"},
                    "epoch_group": "e", "epoch_base": 0}]},
     ["Epoch 0 acc=0.1", "Epoch 1 acc=0.2"],
     [ProgressUpdate(1, None), MetricUpdate(1, {"val/accuracy": 0.1}),
      ProgressUpdate(2, None), MetricUpdate(2, {"val/accuracy": 0.2})]),
    ({"patterns": [{"regex": r"\[(?P<e>\d+)\]\[(?P<i>\d+)/(?P<n>\d+)\] loss (?P<l>\S+)", "metrics": {"l": "train/loss"},
                    "epoch_group": "e", "epoch_base": 0, "step_group": "i", "step_base": 0,
                    "total_steps_group": "n"}]},
     ["[0][0/4] loss 1.0", "[0][0/4] loss 1.0", "[0][3/4] loss 0.5"],
     [ProgressUpdate(1, None, 1, 4), MetricUpdate(1, {"train/loss": 1.0}), MetricUpdate(1, {"train/loss": 1.0}),
      ProgressUpdate(1, None, 4, 4), MetricUpdate(1, {"train/loss": 0.5})]),
    ({"patterns": [{"regex": r"Training for (?P<n>\d+) epochs", "total_epochs_group": "n"},
                   {"regex": r"^epoch (?P<e>\d+) done", "epoch_group": "e"},
                   {"regex": r"(?P<p>[\d.]+) psnr", "metrics": {"p": "val/psnr"}},
                   {"regex": r"(?P<p>[\d.]+) psnr", "metrics": {"p": "custom/psnr_copy"}, "scale": {"p": 2}}]},
     ["Training for 4 epochs", "epoch 2 done", "31.5 psnr"],
     [ProgressUpdate(2, 4), MetricUpdate(2, {"val/psnr": 31.5, "custom/psnr_copy": 63.0})]),
    ({"patterns": [{"regex": r"loss=(?P<l>\S+)", "metrics": {"l": "train/loss"}},  # metrics before the epoch
                   {"regex": r"epoch=(?P<e>\d+)", "epoch_group": "e"}]},  # moves on the same line
     ["epoch=1", "loss=0.5 epoch=2"],
     [ProgressUpdate(1, None), MetricUpdate(1, {"train/loss": 0.5}), ProgressUpdate(2, None)]),
]


@pytest.mark.parametrize("config, lines, expected", CASES)
def test_regex_parser_table(config, lines, expected):
    assert run(config, *lines) == expected
    validate_parser_config(config)


def test_patterns_are_compiled_once_into_frozen_records():
    parser = build_parser(SPEC)
    assert isinstance(parser, RegexParser) and len(parser.patterns) == 2
    with pytest.raises(AttributeError):
        parser.patterns[0].epoch_base = 0
    assert parser.patterns[1].metrics == (("acc", "val/accuracy", 0.01),)


def pattern(**entry):
    return {"parser": {"patterns": [{"regex": r"(?P<a>\d+) (?P<b>\d+)", "metrics": {"a": "train/loss"}}, entry]}}


BAD = [
    # (config, message start)
    (pattern(regex="(unclosed"), "parser.patterns[1].regex: invalid regular expression"),
    (pattern(regex=""), "parser.patterns[1].regex: required"),
    (pattern(metrics={"x": "val/loss"}), "parser.patterns[1].regex: required"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"acc": "val/accuracy"}),
     "parser.patterns[1].metrics.acc: no group named 'acc' in the regex (named groups: a)"),
    (pattern(regex=r"(\d+)", metrics={"acc": "val/accuracy"}), "parser.patterns[1].metrics.acc: no group named 'acc'"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "bad{name}"}), "parser.patterns[1].metrics.a: invalid metric name"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": 5}), "parser.patterns[1].metrics.a: invalid metric name"),
    (pattern(regex=r"(?P<a>\d+)", metrics="a"), "parser.patterns[1].metrics: expected a mapping"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, foo=1), "parser.patterns[1].foo: unknown key"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, epoch_group="e"),
     "parser.patterns[1].epoch_group: no group named 'e'"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, step_group=3), "parser.patterns[1].step_group: expected a group"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, scale={"b": 0.1}), "parser.patterns[1].scale.b: not a group"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, scale={"a": "x"}), "parser.patterns[1].scale.a: expected a finite"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, scale={"a": True}), "parser.patterns[1].scale.a: expected a finite"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, epoch_base="0"), "parser.patterns[1].epoch_base: expected 0 or 1"),
    (pattern(regex=r"(?P<a>\d+)", metrics={"a": "lr"}, step_base=-1), "parser.patterns[1].step_base: expected 0 or 1"),
    (pattern(regex=r"(?P<a>\d+)"), "parser.patterns[1]: maps nothing"),
    ({"parser": {"patterns": ["loss=(.*)"]}}, "parser.patterns[0]: expected a mapping"),
    ({"parser": {"patterns": []}}, "parser.patterns: required, a non-empty list"),
    ({"patterns": {"regex": "x"}}, "parser.patterns: required, a non-empty list"),
    ({"parser": {"patterns": [{"regex": "(?P<a>1)", "metrics": {"a": "lr"}}], "name": "x"}},
     "parser.name: unknown key"),
    ({}, "parser.patterns: required"),
    ({"builtin": "yolov7", "patterns": []}, "parser.patterns: unknown key next to 'builtin'"),
    ({"builtin": 7}, "parser.builtin: expected a parser name"),
    (7, "parser: expected a built-in parser name or a mapping, got int"),
    (["yolov7"], "parser: expected a built-in parser name or a mapping, got list"),
    ("yolo", "Unknown log parser 'yolo'. Valid: convnext, generic, ppyoloe, yolov7"),
    ({"builtin": "YOLOv7"}, "Unknown log parser 'YOLOv7'. Valid: convnext, generic, ppyoloe, yolov7"),
    ({"parser": "nope"}, "Unknown log parser 'nope'. Valid: convnext, generic, ppyoloe, yolov7"),
]


@pytest.mark.parametrize("config, message", BAD)
def test_bad_configs_name_the_field(config, message):
    with pytest.raises(ValueError) as build_error:
        build_parser(config)
    assert str(build_error.value).startswith(message)
    with pytest.raises(ValueError) as validate_error:
        validate_parser_config(config)
    assert str(validate_error.value) == str(build_error.value)


@pytest.mark.parametrize("config, cls", [
    ("yolov7", YoloV7Parser), ("convnext", ConvNeXtParser), ("generic", GenericParser),
    ({"builtin": "yolov7"}, YoloV7Parser), ({"parser": "convnext"}, ConvNeXtParser),
    ({"parser": {"builtin": "generic"}}, GenericParser),
])
def test_builtins_by_name(config, cls):
    first, second = build_parser(config), build_parser(config)
    assert type(first) is cls and first is not second  # one fresh parser per log
    assert first.name in ("yolov7", "convnext", "generic")
    assert validate_parser_config(config) is None
