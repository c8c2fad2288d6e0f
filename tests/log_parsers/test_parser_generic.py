"""Generic fallback parser: a table of (lines, expected events)."""

from __future__ import annotations

import pytest

from log_parsers import Line, MetricUpdate, ProgressUpdate, build_parser


def run(*texts: str):
    parser = build_parser("generic")
    events = []
    for text in texts:
        events += parser.feed_line(Line(text, True))
    return events + parser.finish()


M = MetricUpdate

CASES = [
    # HF Trainer, float values (transformers 4.x)
    (["{'loss': 0.6931, 'grad_norm': 1.25, 'learning_rate': 5e-05, 'epoch': 0.5}"],
     [M(1, {"train/loss": 0.6931, "custom/grad_norm": 1.25, "lr": 5e-05})]),
    (["{'eval_loss': 0.69, 'eval_accuracy': 0.5, 'eval_runtime': 0.1, 'epoch': 1.0}"],
     [M(1, {"val/loss": 0.69, "val/accuracy": 0.5, "custom/eval_runtime": 0.1})]),
    (["{'loss': 0.6, 'epoch': 1.5}", "{'eval_loss': 0.5, 'epoch': 2.0}"],
     [M(2, {"train/loss": 0.6}), M(2, {"val/loss": 0.5})]),
    # HF Trainer, values formatted as strings (transformers 5: f"{v:.4g}"; epoch 1.0 prints as '1')
    (["{'loss': '0.6931', 'grad_norm': '1.25', 'learning_rate': '5e-05', 'epoch': '0.5'}",
      "{'eval_loss': '0.69', 'eval_accuracy': '0.5', 'epoch': '1'}",
      "{'loss': '0.6', 'epoch': '1.5'}", "{'eval_loss': '0.5', 'eval_accuracy': '0.75', 'epoch': '2'}"],
     [M(1, {"train/loss": 0.6931, "custom/grad_norm": 1.25, "lr": 5e-05}),
      M(1, {"val/loss": 0.69, "val/accuracy": 0.5}), M(2, {"train/loss": 0.6}),
      M(2, {"val/loss": 0.5, "val/accuracy": 0.75})]),
    # the end-of-training summary: its train_loss is a whole-run average, kept out of train/loss
    (["{'train_runtime': 12.5, 'train_samples_per_second': 8.0, 'train_loss': 0.55, 'epoch': 3.0}"],
     [M(3, {"custom/train_runtime": 12.5, "custom/train_samples_per_second": 8.0, "custom/train_loss": 0.55})]),
    # JSON lines; non-numeric values skipped
    (['{"epoch": 2, "val_acc": 0.9, "note": "best", "mAP50": 0.4}'],
     [M(2, {"val/accuracy": 0.9, "val/mAP50": 0.4})]),
    # key=value
    (["epoch=0 loss=0.9 lr=1e-3", "epoch=1 loss=0.5 val_loss=0.6 val_acc=0.8"],
     [M(1, {"train/loss": 0.9, "lr": 0.001}), M(2, {"train/loss": 0.5, "val/loss": 0.6, "val/accuracy": 0.8})]),
    (["epoch=1 loss=0.9", "epoch=2 loss=0.5"], [M(1, {"train/loss": 0.9}), M(2, {"train/loss": 0.5})]),
    (["step=100, train_loss=1.5e+00, map50=0.12, map=0.05, speed=3.2"],
     [M(1, {"train/loss": 1.5, "val/mAP50": 0.12, "val/mAP50-95": 0.05, "custom/speed": 3.2})]),
    # key: value, with % and junk that only looks like numbers
    (["Epoch: 3  Loss: 0.412  val_acc: 91.0%  eta: 0:00:05  time: 12.3s  lr: 0.01"],
     [M(3, {"train/loss": 0.412, "val/accuracy": 0.91, "lr": 0.01})]),
    (["Epoch [2/10] train_loss: 0.40 val_loss: 0.50 accuracy: 0.75"],
     [ProgressUpdate(2, 10), M(2, {"train/loss": 0.4, "val/loss": 0.5, "val/accuracy": 0.75})]),
    (["Epoch 0/9", "loss: 1.0", "Epoch 1/9", "Epoch 1/9", "loss: 0.5"],
     [ProgressUpdate(1, 9), M(1, {"train/loss": 1.0}), ProgressUpdate(2, 9), M(2, {"train/loss": 0.5})]),
    (["mIoU: 0.61 PSNR=30.5 ssim=0.9 cer=0.1 f1=0.7 precision=0.8 recall=0.6"],
     [M(1, {"val/mIoU": 0.61, "val/psnr": 30.5, "val/ssim": 0.9, "val/cer": 0.1, "val/f1": 0.7,
            "val/precision": 0.8, "val/recall": 0.6})]),
    (["Train Loss: 0.5  val loss: 0.25  Test Acc: 90%"],  # split qualifiers belong to the key
     [M(1, {"train/loss": 0.5, "val/loss": 0.25, "val/accuracy": 0.9})]),
    # conservative: nothing known, nothing emitted
    (["Namespace(batch_size=4, epochs=2, lr0=0.01)"], []),
    (["{'seed': 42, 'workers': 8, 'name': 'exp1'}"], []),  # a printed config, not metrics
    (["{'lr': 0.01, 'batch_size': 32}"], [M(1, {"lr": 0.01, "custom/batch_size": 32.0})]),
    (["seed: 42 workers: 8"], []),
    (["time: 12:30:45 started"], []),
    (["Downloading: 100%|####| 2.3M/2.3M"], []),
    (["Model = ConvNeXt("], []),
    ([""], []),
    (["epoch=5"], []),  # sets the epoch only
]


@pytest.mark.parametrize("lines, expected", CASES)
def test_generic_table(lines, expected):
    assert run(*lines) == expected


def test_unknown_keys_are_made_metric_safe():
    [update] = run("loss=1.0 acc@top3=0.5 mAP@.5=0.2")
    assert update.values == {"train/loss": 1.0, "custom/acc_top3": 0.5, "val/mAP50": 0.2}


def test_prefilter_lets_every_known_key_through():
    from log_parsers.generic import KNOWN_KEYS, might_name_a_known_key

    for key in [*KNOWN_KEYS, "epoch"]:
        assert might_name_a_known_key(key.lower()), key
    assert not might_name_a_known_key("[2024-05-01 12:00:33] info worker 3: prefetching shard 100")


@pytest.mark.parametrize("text, expected", [
    ("loss=1.2.3 lr=0.1", {"lr": 0.1}),              # not a number: skipped, the line still counts
    ("loss=-.5 lr=+1e-3", {"train/loss": -0.5, "lr": 0.001}),
    ("loss=nan", None),                               # kept as nan (checked below)
    ("loss=. lr=1e", None),                           # nothing readable: no update
])
def test_numbers(text, expected):
    events = run(text)
    if expected is not None:
        assert events == [M(1, expected)]
    elif "nan" in text:
        assert events[0].values["train/loss"] != events[0].values["train/loss"]
    else:
        assert events == []
