"""YOLOv7 parser, on a real log and on tables of single lines.

`data/yolov7_tiny_2epochs.log` is the unedited stdout+stderr of WongKinYiu/yolov7 @ a207844
`train.py --weights '' --cfg cfg/training/yolov7-tiny.yaml --hyp data/hyp.scratch.tiny.yaml
--epochs 2 --batch-size 4 --img-size 64 64 --device cpu` on 8 images of 2 classes (torch 2.15,
PYTHONUNBUFFERED=1): tqdm `\\r` repaints, ANSI colours, headers, per-class rows on the last
epoch. Its results.txt rows (the values the parser must find, at the log's print precision):
       0/1  0G  0.04413  0.00741  0.01205  0.06359  29  64  0.003747  0.1357  0.0009198  0.0001523 ...
       1/1  0G  0.04972  0.00508  0.01327  0.06808  19  64  0.003699  0.1357  0.0009139  0.0001536 ...
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from log_parsers import Line, MetricUpdate, ProgressUpdate, build_parser

LOG = (Path(__file__).parent / "data" / "yolov7_tiny_2epochs.log").read_text(encoding="utf-8")

TRAIN = [
    {"train/box_loss": 0.04413, "train/obj_loss": 0.00741, "train/cls_loss": 0.01205, "train/loss": 0.06359},
    {"train/box_loss": 0.04972, "train/obj_loss": 0.00508, "train/cls_loss": 0.01327, "train/loss": 0.06808},
]
VAL = [
    {"val/precision": 0.00375, "val/recall": 0.136, "val/mAP50": 0.00092, "val/mAP50-95": 0.000152},
    {"val/precision": 0.0037, "val/recall": 0.136, "val/mAP50": 0.000914, "val/mAP50-95": 0.000154},
]
PROGRESS = [ProgressUpdate(1, 2, 1, 2), ProgressUpdate(1, 2, 2, 2), ProgressUpdate(2, 2, 1, 2), ProgressUpdate(2, 2, 2, 2)]


def metrics(events):
    return [e for e in events if isinstance(e, MetricUpdate)]


def progress(events):
    return [e for e in events if isinstance(e, ProgressUpdate)]


def parse(text: str):
    return build_parser("yolov7").parse_text(text)


def test_real_log_gives_one_metric_set_per_epoch():
    events = parse(LOG)
    updates = metrics(events)
    assert [u.step for u in updates] == [1, 2]
    for update, train, val in zip(updates, TRAIN, VAL):
        assert update.values == pytest.approx({**train, **val})
    assert progress(events) == PROGRESS  # one per (epoch, step), though tqdm repaints each step 2-3 times
    assert events.index(updates[0]) < events.index(PROGRESS[2])  # epoch 1 reported before epoch 2 starts


def test_chunked_feed_equals_whole_text():
    raw = LOG.encode()
    rng = random.Random(1)
    parser, events, i = build_parser("yolov7"), [], 0
    while i < len(raw):
        n = rng.randint(1, 200)
        events += parser.feed(raw[i:i + n])
        i += n
    assert events + parser.finish() == parse(LOG)


def _drop_validation(text: str, epoch_marker: str) -> str:
    """The log as --notest prints it for one epoch: no validation header, no `all` row."""
    start = text.index("Class      Images", text.index(epoch_marker))
    start = text.rindex("\n", 0, start) + 1
    end = text.index("\n", text.index(" all ", start)) + 1
    return text[:start] + text[end:]


def test_epoch_without_all_row_still_reports_train_metrics():
    events = parse(_drop_validation(LOG, "       0/1"))
    updates = metrics(events)
    assert [u.step for u in updates] == [1, 2]
    assert updates[0].values == pytest.approx(TRAIN[0])  # emitted when epoch 2's rows start
    assert events.index(updates[0]) < events.index(PROGRESS[2])
    assert updates[1].values == pytest.approx({**TRAIN[1], **VAL[1]})


def test_log_ending_mid_training_reports_at_finish():
    cut = LOG[:LOG.index("\n", LOG.index("       1/1        0G   0.04972"))]  # epoch 2's train rows only
    parser = build_parser("yolov7")
    events = parser.feed(cut)
    assert [u.step for u in metrics(events)] == [1]
    held = metrics(parser.finish())
    assert [u.step for u in held] == [2] and held[0].values == pytest.approx(TRAIN[1])


def test_late_stdout_all_rows_go_to_their_own_epochs():
    """If stdout were block-buffered, `all` rows (stdout) would arrive after later stderr rows."""
    rows = [line for line in LOG.split("\n") if line.lstrip().startswith("all ")]
    text = "\n".join(line for line in LOG.split("\n") if line not in rows) + "\n" + "\n".join(rows) + "\n"
    updates = metrics(parse(text))
    by_step = {}
    for u in updates:
        by_step.setdefault(u.step, {}).update(u.values)
    assert by_step[1] == pytest.approx({**TRAIN[0], **VAL[0]})
    assert by_step[2] == pytest.approx({**TRAIN[1], **VAL[1]})


TRAIN_ROW = "       0/1        0G   0.04413   0.00741   0.01205   0.06359        29        64"
LINE_CASES = [
    # (line text, expected events from a fresh parser)
    ("     Epoch   gpu_mem       box       obj       cls     total    labels  img_size", []),
    ("  0%|          | 0/2 [00:00<?, ?it/s]", []),
    (TRAIN_ROW + ":   0%|          | 0/2 [00:09<?, ?it/s]", []),  # 0 batches done: no step yet
    (TRAIN_ROW + ":  50%|█████     | 1/2 [00:09<00:09,  9.13s/it]", [ProgressUpdate(1, 2, 1, 2)]),
    (TRAIN_ROW.replace("0/1 ", "4/299 ") + ":  50%|#####     | 1/2 [00:09<00:09,  9.13s/it]",
     [ProgressUpdate(5, 300, 1, 2)]),  # ascii bar; epoch 4 of 0..299
    (TRAIN_ROW, []),  # trimmed to $COLUMNS: losses held, no progress
    (("               Class      Images      Labels           P           R      mAP@.5  mAP@.5:.95: 100%|"
      "██████████| 1/1 [00:00<00:00,  5.35it/s]"), []),
    ("  3/10 files downloaded in 2 s from the mirror", []),  # looks like a row's start, is not
    ("                 all           8          24     0.00375       0.136     0.00092    0.000152",
     [MetricUpdate(1, VAL[0])]),
    ("                 red           8          14      0.0024      0.0714     0.00022    8.79e-05", []),
    ("traffic light           8          14      0.0024      0.0714     0.00022    8.79e-05", []),
    ("              allium           8          14      0.0024      0.0714     0.00022    8.79e-05", []),
    ("2 epochs completed in 0.009 hours.", []),
    ("Optimizer stripped from /tmp/y7/runs/r/weights/last.pt, 12.2MB", []),
    ("", []),
]


@pytest.mark.parametrize("text, expected", LINE_CASES)
def test_line_table(text, expected):
    parser = build_parser("yolov7")
    assert parser.feed_line(Line(text, True)) == expected


def test_train_row_values_and_nan():
    parser = build_parser("yolov7")
    parser.feed_line(Line("       2/9        0G       nan   0.00741   0.01205       nan        29        64", False))
    [update] = parser.finish()
    assert update.step == 3 and update.values["train/obj_loss"] == 0.00741
    assert update.values["train/loss"] != update.values["train/loss"]  # nan kept: the run diverged


def test_unreadable_number_in_a_train_row_is_skipped():
    parser = build_parser("yolov7")
    parser.feed_line(Line("       0/1        0G     1.2.3   0.00741   0.01205   0.06359        29        64", True))
    assert parser.finish() == [MetricUpdate(1, {"train/obj_loss": 0.00741, "train/cls_loss": 0.01205,
                                                "train/loss": 0.06359})]


def test_no_events_from_repeated_finish():
    parser = build_parser("yolov7")
    parser.parse_text(LOG)
    assert parser.finish() == []
