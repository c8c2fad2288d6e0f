"""PaddleDetection (PP-YOLOE) parser, on a real log and on tables of single lines.

`data/ppyoloe_crn_s_5epochs.log` is the unedited stdout+stderr of PaddlePaddle/PaddleDetection @ 666f597
(develop), paddlepaddle 3.3.1 on CPU: `tools/train.py -c CONFIG --eval` with a config like the one the
shipped `ppyoloe` spec writes (ppyoloe_crn_s_300e_coco.yml as `_BASE_`, 2 classes, 128 px, batch 2, lr 0.01,
40 epochs, `log_iter: 1`) on 8 train / 4 val images of shapes, cut before epoch 5 (index) starts. Epochs 0-2
end with pycocotools' table; epochs 3 and 4 found nothing (`Evaluation results empty`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from log_parsers import Line, MetricUpdate, ProgressUpdate, build_parser

LOG = (Path(__file__).parent / "data" / "ppyoloe_crn_s_5epochs.log").read_text(encoding="utf-8")

TRAIN_LINE = ("[12/07 06:53:26] ppdet.engine.callbacks INFO: Epoch: [0] [3/4] learning_rate: 0.009996 loss: 4.048482 "
              "loss_cls: 0.455462 loss_iou: 0.902767 loss_dfl: 2.672203 loss_l1: 5.283373 eta: 0:02:19 "
              "batch_cost: 0.8917 data_cost: 0.0003 ips: 2.2430 images/s")
TRAIN_VALUES = {"lr": 0.009996, "train/loss": 4.048482, "train/cls_loss": 0.455462, "train/iou_loss": 0.902767,
                "train/dfl_loss": 2.672203, "train/l1_loss": 5.283373, "train/images_per_s": 2.243}


def metrics(events):
    return [e for e in events if isinstance(e, MetricUpdate)]


def test_real_log_gives_one_metric_set_per_epoch():
    events = build_parser("ppyoloe").parse_text(LOG)
    updates = metrics(events)
    assert [u.step for u in updates] == [1, 2, 3, 4, 5]
    assert updates[0].values == pytest.approx({**TRAIN_VALUES, "val/mAP50-95": 0.002, "val/mAP50": 0.007,
                                               "val/mAP75": 0.0})
    assert [u.values.get("val/mAP50") for u in updates] == [0.007, 0.002, 0.001, None, None]
    assert updates[3].values["train/loss"] == 30.398296 and updates[4].values["lr"] == 0.009687
    progress = [e for e in events if isinstance(e, ProgressUpdate)]
    assert progress[:4] == [ProgressUpdate(1, None, step, 4) for step in (1, 2, 3, 4)]
    assert len(progress) == 20 and progress[-1] == ProgressUpdate(5, None, 4, 4)


@pytest.mark.parametrize("line,expected", [
    (TRAIN_LINE, []),  # held until the epoch's table or the next epoch
    (" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.412", []),
    (" Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.250",
     [MetricUpdate(1, {"val/mAP75": 0.25})]),
    (" Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = -1.000", []),
    (" Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.050", []),
    ("[12/07 06:53:40] ppdet.engine WARNING: Evaluation results empty, this may be due to training iterations "
     "being too few or not loading the correct weights.", []),
    ("Epoch: [x] [0/4] learning_rate: 0.1 loss: 1.0", []),
])
def test_single_lines(line, expected):
    assert [e for e in build_parser("ppyoloe").feed_line(Line(line, True)) if isinstance(e, MetricUpdate)] == expected


def test_a_table_goes_to_the_epoch_it_follows_with_that_epochs_train_values():
    parser = build_parser("ppyoloe")
    parser.feed(TRAIN_LINE + "\n")
    events = parser.feed(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.412\n"
                         " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.700\n"
                         " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.450\n")
    assert metrics(events) == [MetricUpdate(1, {**TRAIN_VALUES, "val/mAP50-95": 0.412, "val/mAP50": 0.7,
                                                "val/mAP75": 0.45})]
    assert metrics(parser.finish()) == []  # nothing held back twice


def test_an_epoch_without_a_table_is_emitted_at_the_next_epoch_and_at_finish():
    parser = build_parser("ppyoloe")
    assert metrics(parser.feed(TRAIN_LINE + "\n")) == []
    second = TRAIN_LINE.replace("Epoch: [0] [3/4]", "Epoch: [1] [0/4]").replace("loss: 4.048482", "loss: 3.5")
    assert metrics(parser.feed(second + "\n")) == [MetricUpdate(1, TRAIN_VALUES)]
    (last,) = metrics(parser.finish())
    assert last.step == 2 and last.values["train/loss"] == 3.5
