"""YOLOv7 (WongKinYiu/yolov7 train.py) stdout+stderr -> one metric set per epoch.

What the log looks like (train.py and test.py at commit a207844):

- stderr, logging: a header `('\\n' + '%10s' * 8) % ('Epoch', 'gpu_mem', 'box', ...)` per epoch.
- stderr, tqdm with `\\r` repaints; the description is
  `('%10s' * 2 + '%10.4g' * 6) % ('%g/%g' % (epoch, epochs - 1), mem, box, obj, cls, total,
  labels, img_size)` with running means of the losses, followed by tqdm's
  `: 100%|██████████| 4/4 [00:02<00:00,  2.61s/it]`. The epoch counts from 0. tqdm's `n/N`
  counts batches *done*, so its `0/N` repaint is not a step; the last repaint (`N/N`, ended by
  `\\n`) carries the epoch's mean losses. If $COLUMNS is set tqdm trims the row to it, losing
  the `n/N` part: the losses are still read, only progress is lost.
- stderr, tqdm: the validation header `('%20s' + '%12s' * 6) % ('Class', 'Images', 'Labels',
  'P', 'R', 'mAP@.5', 'mAP@.5:.95')` + tqdm suffix.
- stdout, print: `('%20s' + '%12i' * 2 + '%12.3g' * 4) % ('all', seen, nt, mp, mr, map50, map)`,
  then per-class rows in the same format on the last epoch (not read). Validation is skipped
  with `--notest` except on the last epoch.

The train metrics of an epoch are held until its `all` row arrives and emitted with it as one
MetricUpdate (step = epoch + 1); without an `all` row they are emitted when the next epoch's
rows start, or at finish(). stdout and stderr are separate streams: with PYTHONUNBUFFERED (the
launcher sets it) they interleave in order, but if stdout is buffered the `all` rows arrive
late. So an `all` row belongs to the oldest epoch whose validation header (stderr) has not been
answered yet, not blindly to the current epoch; late rows then become a val-only update.
"""

from __future__ import annotations

import re
from collections import deque

from log_parsers.base import LOOSE_NUMBER, Event, Line
from log_parsers.base import NUMBER as N
from log_parsers.held_epochs import HeldEpochParser
from log_parsers.registry import register_parser

__all__ = ["YoloV7Parser"]

# The train row is most of the log (every tqdm repaint), so its regex is the hot path: a loose
# number (checked by float() when emitted), spaces only (tqdm pads with spaces) and possessive
# quantifiers make it ~2x cheaper than the strict NUMBER form.
_NUM = f"(?:{LOOSE_NUMBER})"
_TRAIN_ROW = re.compile(
    rf" *+(\d++)/(\d++) ++\S++ ++({_NUM}) ++({_NUM}) ++({_NUM}) ++({_NUM}) ++{_NUM} ++{_NUM}"
    r"(?:: *+\d++%\|[^|]*+\| *+(\d++)/(\d++))?"
)
_ALL_ROW = re.compile(rf"\s*all\s+\d+\s+\d+\s+({N})\s+({N})\s+({N})\s+({N})\s*$")
_VAL_HEADER = re.compile(r"\s*Class\s+Images\s+Labels\s+P\s+R\s+mAP@\.5")

_TRAIN_KEYS = ("train/box_loss", "train/obj_loss", "train/cls_loss", "train/loss")
_VAL_KEYS = ("val/precision", "val/recall", "val/mAP50", "val/mAP50-95")


def _values(keys: tuple[str, ...], texts: tuple[str, ...]) -> dict[str, float]:
    values = {}
    for key, text in zip(keys, texts):
        try:
            values[key] = float(text)
        except ValueError:  # "1.2.3" passes the loose train-row regex; skip it
            pass
    return values


@register_parser("yolov7")
class YoloV7Parser(HeldEpochParser):
    """Held record: the epoch's latest losses as printed (box, obj, cls, total)."""

    def __init__(self) -> None:
        super().__init__()
        self._val_pending: deque[int] = deque()   # epochs whose validation header came, `all` row not yet
        self._last_step = (-1, -1)                # fast dedupe of tqdm repaints before _progress

    def parse_line(self, line: Line) -> list[Event]:
        text = line.text
        match = _TRAIN_ROW.match(text)
        if match is not None:
            return self._train_row(match)
        if "all" in text:
            match = _ALL_ROW.match(text)
            if match is not None:
                return self._all_row(match.groups())
        if "Class" in text and _VAL_HEADER.match(text):
            epoch = self._epoch or 0
            if not self._val_pending or self._val_pending[-1] != epoch:
                self._val_pending.append(epoch)
        return []

    def _train_row(self, match: re.Match[str]) -> list[Event]:
        epoch_text, last_text, box, obj, cls, total, done, steps = match.groups()
        epoch = int(epoch_text)
        events = self._start_epoch(epoch) if epoch != self._epoch else []
        self._held = (box, obj, cls, total)
        if done is not None and done != "0":
            key = (epoch, int(done))
            if key != self._last_step:
                self._last_step = key
                progress = self._progress(epoch + 1, int(last_text) + 1, key[1], int(steps))
                if progress is not None:
                    events.append(progress)
        return events

    def _all_row(self, numbers: tuple[str, ...]) -> list[Event]:
        epoch = self._val_pending.popleft() if self._val_pending else (self._epoch or 0)
        return self._with_validation(_values(_VAL_KEYS, numbers), epoch)

    def _train_values(self, held: tuple[str, ...]) -> dict[str, float]:
        return _values(_TRAIN_KEYS, held)
