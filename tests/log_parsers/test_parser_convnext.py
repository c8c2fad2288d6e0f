"""ConvNeXt parser, on a real log and on tables of single lines.

`data/convnext_tiny_2epochs.log` is the unedited stdout+stderr of facebookresearch/ConvNeXt
@ 048efce `main.py --model convnext_tiny --data_set image_folder --nb_classes 5 --input_size 32
--batch_size 2 --epochs 2 --warmup_epochs 0 --mixup 0 --cutmix 0 --device cpu --num_workers 0`
(timm 0.4.12, torch 2.15, the torch._six / cuda.synchronize shim) on 20 train / 15 val images.
Its log.txt: epoch 0 train_loss 5.3702 test_acc1 53.333 test_acc5 100 test_loss 3.6254;
epoch 1 train_loss 3.4582 test_acc1 60.0 test_acc5 100 test_loss 1.7061.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from log_parsers import Line, MetricUpdate, ProgressUpdate, build_parser

LOG = (Path(__file__).parent / "data" / "convnext_tiny_2epochs.log").read_text(encoding="utf-8")

EPOCHS = [
    {"train/loss": 5.3702, "lr": 0.002313, "val/accuracy": 0.53333, "val/top5": 1.0, "val/loss": 3.625},
    {"train/loss": 3.4582, "lr": 0.000026, "val/accuracy": 0.60, "val/top5": 1.0, "val/loss": 1.706},
]


def metrics(events):
    return [e for e in events if isinstance(e, MetricUpdate)]


def same(events, expected) -> bool:
    """Equal events, metric values compared with pytest.approx (53.333 / 100 is not exact)."""
    return len(events) == len(expected) and all(
        type(a) is type(b) and (a == b if isinstance(a, ProgressUpdate) else
                                a.step == b.step and a.values == pytest.approx(b.values))
        for a, b in zip(events, expected))


def parse(text: str):
    return build_parser("convnext").parse_text(text)


def test_real_log_gives_one_metric_set_per_epoch():
    events = parse(LOG)
    updates = metrics(events)
    assert [u.step for u in updates] == [1, 2]
    for update, expected in zip(updates, EPOCHS):
        assert update.values == pytest.approx(expected)
    assert [e for e in events if isinstance(e, ProgressUpdate)] == [
        ProgressUpdate(1, 2, 1, 10), ProgressUpdate(1, 2, 10, 10),  # total epochs from "Start training for 2 epochs"
        ProgressUpdate(2, 2, 1, 10), ProgressUpdate(2, 2, 10, 10),
    ]


def test_without_validation_train_metrics_come_at_next_epoch_and_finish():
    text = "\n".join(line for line in LOG.split("\n")
                     if not line.startswith(("Test:", "* Acc@1", "Accuracy of", "Max accuracy")))
    parser = build_parser("convnext")
    events = parser.feed(text + "\n")
    first = metrics(events)
    assert [u.step for u in first] == [1]
    assert first[0].values == pytest.approx({"train/loss": 5.3702, "lr": 0.002313})
    assert events.index(first[0]) < events.index(ProgressUpdate(2, 2, 1, 10))
    last = parser.finish()
    assert [u.step for u in last] == [2] and last[0].values == pytest.approx({"train/loss": 3.4582, "lr": 0.000026})


TRAIN_LINE = ("Epoch: [0]  [ 9/10]  eta: 0:00:01  lr: 0.002313  min_lr: 0.001000  loss: 4.6589 (5.3702)  "
              "class_acc: 0.0000 (0.2000)  weight_decay: 0.0500 (0.0500)  time: 1.4118  data: 0.0110")


def run(*texts: str):
    parser = build_parser("convnext")
    events = []
    for text in texts:
        events += parser.feed_line(Line(text, True))
    return events, parser.finish()


LINE_CASES = [
    # (lines, events while reading, events at finish)
    ([TRAIN_LINE], [ProgressUpdate(1, None, 10, 10)], [MetricUpdate(1, {"train/loss": 5.3702, "lr": 0.002313})]),
    (["Start training for 300 epochs", TRAIN_LINE.replace("[0]", "[41]")],
     [ProgressUpdate(42, 300, 10, 10)], [MetricUpdate(42, {"train/loss": 5.3702, "lr": 0.002313})]),
    ([TRAIN_LINE + "  max mem: 3512"], [ProgressUpdate(1, None, 10, 10)],
     [MetricUpdate(1, {"train/loss": 5.3702, "lr": 0.002313})]),
    (["[default0]:" + TRAIN_LINE], [ProgressUpdate(1, None, 10, 10)],  # torchrun's prefix
     [MetricUpdate(1, {"train/loss": 5.3702, "lr": 0.002313})]),
    (["Epoch: [0]  [   0/5004]  eta: 1 day, 2:03:04  lr: 0.000000  min_lr: 0.000000  loss: nan (nan)"],
     [ProgressUpdate(1, None, 1, 5004)], None),  # nan loss is kept (checked below)
    (["Epoch: [0] Total time: 0:00:14 (1.4119 s / it)"], [], []),
    ([("Test:  [4/5]  eta: 0:00:01  loss: 0.7571 (3.6254)  acc1: 66.6667 (53.3333)  acc5: 100.0000 (100.0000)"
       "  time: 1.1497  data: 0.0013")], [], []),
    (["Test: Total time: 0:00:05 (1.1499 s / it)"], [], []),
    (["* Acc@1 53.333 Acc@5 100.000 loss 3.625"],  # eval-only run: no epoch seen
     [MetricUpdate(1, {"val/accuracy": 0.53333, "val/top5": 1.0, "val/loss": 3.625})], []),
    (["Accuracy of the model on the 15 test images: 53.3%", "Max accuracy: 53.33%"], [], []),
    (["Averaged stats: lr: 0.002313  min_lr: 0.002313  loss: 4.6589 (5.3702)"], [], []),  # no epoch held
]


@pytest.mark.parametrize("lines, during, at_finish", LINE_CASES)
def test_line_table(lines, during, at_finish):
    events, final = run(*lines)
    assert same(events, during)
    if at_finish is not None:
        assert same(final, at_finish)


def test_nan_loss_is_reported():
    _, [update] = run("Epoch: [0]  [0/5]  eta: 0:00:01  lr: 0.1  min_lr: 0.1  loss: nan (nan)")
    assert update.values["train/loss"] != update.values["train/loss"]


def test_averaged_stats_win_over_the_last_line():
    """In distributed runs only `Averaged stats` holds the all-reduced global average."""
    events, _ = run(TRAIN_LINE, "Epoch: [0] Total time: 0:00:14 (1.4119 s / it)",
                    "Averaged stats: lr: 0.002313  min_lr: 0.002313  loss: 4.6589 (5.1000)  class_acc: 0.0 (0.2)",
                    "* Acc@1 53.333 Acc@5 100.000 loss 3.625")
    assert same(metrics(events), [MetricUpdate(1, {"train/loss": 5.1, "lr": 0.002313, "val/accuracy": 0.53333,
                                                   "val/top5": 1.0, "val/loss": 3.625})])


def test_ema_evaluation_does_not_overwrite_the_model_one():
    events, final = run(TRAIN_LINE, "* Acc@1 53.333 Acc@5 100.000 loss 3.625",
                        "Accuracy of the model on the 15 test images: 53.3%", "Max accuracy: 53.33%",
                        "* Acc@1 40.000 Acc@5 100.000 loss 4.000",
                        "Accuracy of the model EMA on 15 test images: 40.0%")
    updates = metrics(events)
    assert len(updates) == 1 and updates[0].values["val/accuracy"] == pytest.approx(0.53333)
    assert final == []
