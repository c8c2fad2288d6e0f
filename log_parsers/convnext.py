"""ConvNeXt (facebookresearch/ConvNeXt main.py) stdout -> one metric set per epoch.

What the log looks like (main.py, engine.py, utils.py; plain prints, no `\\r`):

- `Start training for %d epochs` gives the total.
- Training, every 10th batch and the last (`MetricLogger.log_every`, delimiter two spaces):
  `Epoch: [k]  [ i/N]  eta: 0:00:05  lr: 0.000100  min_lr: 0.000100  loss: 2.3026 (2.3026)
  class_acc: ...  weight_decay: ...  time: 2.6123  data: 0.1234[  max mem: 0]` - k and i count
  from 0, `[i/N]` is right-aligned to the width of N and printed after batch i is done, each
  meter prints `median (global_avg)`, `lr`/`min_lr` just the value, `max mem` only with CUDA.
  Then `Epoch: [k] Total time: 0:00:05 (2.6123 s / it)` and `Averaged stats: lr: ...  loss:
  a (b)  ...`, whose global average is the one all-reduced across ranks: it wins when present.
- Validation: `Test:  [i/N]  ...` lines (not read), then
  `* Acc@1 20.000 Acc@5 60.000 loss 2.303`, `Accuracy of the model on the 15 test images:
  20.0%`, `Max accuracy: 20.00%`. With `--model_ema_eval` a second `* Acc@1` line follows for
  the EMA model; only the first of an epoch counts.

Per epoch (step = k + 1): `train/loss` and `lr` from the epoch's last training line, plus
`val/accuracy` and `val/top5` (Acc@1 / Acc@5 divided by 100) and `val/loss`, as one
MetricUpdate once the `* Acc@1` line arrives - or train-only when the next epoch starts or
at finish(), if the epoch had no validation. Markers are found with `in`/`search`, not at the
start of the line, so a launcher prefix (torchrun's `[default0]:`) does not hide them.
"""

from __future__ import annotations

import re

from log_parsers.base import NUMBER as N
from log_parsers.base import Event, Line
from log_parsers.held_epochs import HeldEpochParser
from log_parsers.registry import register_parser

__all__ = ["ConvNeXtParser"]

_TRAIN = re.compile(r"Epoch: \[(\d+)\]\s+\[\s*(\d+)/(\d+)\]")
_LR = re.compile(rf"(?<![\w])lr: ({N})")
_LOSS = re.compile(rf"(?<![\w])loss: (?:{N}) \(({N})\)")
_VAL = re.compile(rf"\* Acc@1 ({N}) Acc@5 ({N}) loss ({N})")
_START = re.compile(r"Start training for (\d+) epochs")


@register_parser("convnext")
class ConvNeXtParser(HeldEpochParser):
    """Held record: the epoch's last training line's text, parsed only when emitted."""

    def __init__(self) -> None:
        super().__init__()
        self._total: int | None = None
        self._averaged_text = ""           # the epoch's `Averaged stats:` line, which wins when present
        self._validated = False            # the epoch's `* Acc@1` already used (the next is EMA)
        self._last_step = (-1, -1)

    def parse_line(self, line: Line) -> list[Event]:
        text = line.text
        if "Epoch: [" in text:
            match = _TRAIN.search(text)
            return self._train_line(match, text) if match is not None else []
        if "* Acc@1" in text:
            match = _VAL.search(text)
            return self._val_line(match) if match is not None else []
        if "Averaged stats:" in text:
            if self._held is not None:
                self._averaged_text = text
        elif "Start training for" in text:
            match = _START.search(text)
            if match is not None:
                self._total = int(match.group(1))
        return []

    def _start_epoch(self, epoch: int) -> list[Event]:
        events = super()._start_epoch(epoch)
        self._validated, self._averaged_text = False, ""
        return events

    def _train_line(self, match: re.Match[str], text: str) -> list[Event]:
        epoch, done, steps = int(match.group(1)), int(match.group(2)) + 1, int(match.group(3))
        events = self._start_epoch(epoch) if epoch != self._epoch else []
        self._held = text
        key = (epoch, done)
        if key != self._last_step:
            self._last_step = key
            progress = self._progress(epoch + 1, self._total, done, steps)
            if progress is not None:
                events.append(progress)
        return events

    def _train_values(self, held: str) -> dict[str, float]:
        values = {}
        for text in (held, self._averaged_text):
            lr, loss = _LR.search(text), _LOSS.search(text)
            if loss is not None:
                values["train/loss"] = float(loss.group(1))
            if lr is not None:
                values["lr"] = float(lr.group(1))
        return values

    def _val_line(self, match: re.Match[str]) -> list[Event]:
        if self._validated:  # the EMA model's evaluation of the same epoch
            return []
        self._validated = True
        acc1, acc5, loss = match.groups()
        return self._with_validation({"val/accuracy": float(acc1) / 100.0, "val/top5": float(acc5) / 100.0,
                                      "val/loss": float(loss)})
