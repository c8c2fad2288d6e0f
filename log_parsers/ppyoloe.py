"""PaddleDetection (tools/train.py --eval, PP-YOLOE and its siblings) log -> one metric set per epoch.

What the log looks like (ppdet/engine/callbacks.py, ppdet/metrics/coco_utils.py at commit 666f597):

- Training, every ``log_iter`` batches and the last (``LogPrinter``, ppdet's logger):
  ``[12/07 06:52:57] ppdet.engine.callbacks INFO: Epoch: [0] [3/4] learning_rate: 0.000250 loss:
  4.143914 loss_cls: 0.514156 loss_iou: 0.887875 loss_dfl: 2.820140 loss_l1: 5.156222 eta: 0:00:00
  batch_cost: 0.1594 data_cost: 0.0002 ips: 12.5450 images/s``. The epoch and the step count from 0
  (``[3/4]`` is the 4th of 4 batches); the losses are the medians of a window of recent batches;
  the total number of epochs is never printed. Which ``loss_*`` parts appear depends on the model.
- Evaluation after each snapshot epoch: pycocotools' summary on stdout, twelve lines such as
  `` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.412``, the first
  three being AP, AP50 and AP75 over all areas. When the model found nothing, ppdet prints
  ``Evaluation results empty ...`` instead, and no table.

Per epoch (step = epoch + 1): from its last training line ``train/loss``, ``lr``,
``train/images_per_s`` and each ``loss_<part>`` as ``train/<part>_loss``; from its table ``val/mAP50-95``,
``val/mAP50`` and ``val/mAP75``, emitted with the train values as one MetricUpdate when the AP75 line
arrives, or train-only when the next epoch starts or at finish() (an epoch without a table).
"""

from __future__ import annotations

import re

from log_parsers.base import NUMBER as N
from log_parsers.base import Event, Line
from log_parsers.held_epochs import HeldEpochParser
from log_parsers.registry import register_parser

__all__ = ["PaddleDetectionParser"]

_TRAIN = re.compile(rf"Epoch: \[(\d+)\]\s*\[\s*(\d+)/(\d+)\]\s+learning_rate: ({N})\s+loss: ({N})")
_PARTS = re.compile(rf"\bloss_(\w+): ({N})")
_IPS = re.compile(rf"\bips: ({N}) images/s")
_AP = re.compile(rf"Average Precision\s+\(AP\) @\[ IoU=(0\.50:0\.95|0\.50|0\.75)\s+\|\s+area=\s*all\s+\|"
                 rf"\s+maxDets=\s*100 \] = ({N})")
_AP_KEYS = {"0.50:0.95": "val/mAP50-95", "0.50": "val/mAP50", "0.75": "val/mAP75"}


@register_parser("ppyoloe")
class PaddleDetectionParser(HeldEpochParser):
    """Held record: the epoch's latest training line's text, parsed only when emitted."""

    def __init__(self) -> None:
        super().__init__()
        self._val: dict[str, float] = {}  # the current table's lines so far

    def parse_line(self, line: Line) -> list[Event]:
        text = line.text
        if "Epoch: [" in text:
            match = _TRAIN.search(text)
            return self._train_line(match, text) if match is not None else []
        if "Average Precision" in text:
            match = _AP.search(text)
            return self._ap_line(match) if match is not None else []
        return []

    def _train_line(self, match: re.Match[str], text: str) -> list[Event]:
        epoch, done, steps = int(match.group(1)), int(match.group(2)) + 1, int(match.group(3))
        events = self._start_epoch(epoch) if epoch != self._epoch else []
        self._held, self._val = text, {}
        progress = self._progress(epoch + 1, None, done, steps)
        if progress is not None:
            events.append(progress)
        return events

    def _ap_line(self, match: re.Match[str]) -> list[Event]:
        key = _AP_KEYS[match.group(1)]
        self._val[key] = float(match.group(2))
        if key != "val/mAP75":  # the table's third line: AP and AP50 came before it
            return []
        values, self._val = self._val, {}
        return self._with_validation(values)

    def _train_values(self, held: str) -> dict[str, float]:
        match = _TRAIN.search(held)
        if match is None:
            return {}
        values = {"lr": float(match.group(4)), "train/loss": float(match.group(5))}
        for part, value in _PARTS.findall(held):
            values[f"train/{part}_loss"] = float(value)
        ips = _IPS.search(held)
        if ips is not None:
            values["train/images_per_s"] = float(ips.group(1))
        return values
