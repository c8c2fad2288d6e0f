"""Fallback parser for common log shapes, for repos nobody wrote a parser for.

Reads three shapes:

- `key=value` pairs: `epoch=3 loss=0.412 lr=1e-4 val_acc=0.91`
- `key: value` pairs: `Epoch: 3  loss: 0.412  val_acc: 91.0%`
- Python dict / JSON lines, as the HF Trainer prints them: `{'loss': 0.6931, 'learning_rate':
  5e-05, 'epoch': 1.0}`, also its newer string-formatted `{'loss': '0.6931', 'epoch': '1'}`.

Conservative on purpose: a line yields metrics only when at least one of its keys is a known
one (KNOWN_KEYS; every HF Trainer dict has one: loss, eval_loss, learning_rate, train_loss), so a
printed config (`{'seed': 42, 'workers': 8}`) is not a metric. On such a line every other
numeric key becomes `custom/<key>`. A key may be two words: a qualifier first word joins it
(`val loss: 0.5` is val_loss, `Train Acc: 90%` is train_acc), any other first word is dropped. Known keys map to the shared vocabulary, case-insensitively. A value
directly followed by `%` is divided by 100. A value glued to more text (`0:00:05`, `3/10`,
`12.3s`) is not a value. The HF end-of-training summary (a dict with `train_runtime`) reports
the average loss over the whole run: its keys all go to `custom/` so they do not overwrite the
last epoch's `train/loss`.

Epochs (`epoch` key, or `epoch N/M` / `Epoch [N/M]`, which also gives the total): metrics go to
the step of the last epoch seen (1 before any). A fractional epoch is HF-style progress (0.5 =
half way through epoch 1), so step = ceil(epoch). An integer epoch is a count; it counts from 0
if the first integer epoch of the log is 0, and then step = epoch + 1, else step = epoch.
`epoch N/M` also yields a ProgressUpdate.
"""

from __future__ import annotations

import math
import re

from log_parsers.base import LOOSE_NUMBER as N
from log_parsers.base import Event, Line, LogParser, MetricUpdate
from log_parsers.registry import register_parser

__all__ = ["GenericParser", "KNOWN_KEYS", "might_name_a_known_key"]

_VOCABULARY = {
    "train/loss": ("loss", "train_loss", "training_loss", "train/loss"),
    "val/loss": ("eval_loss", "val_loss", "valid_loss", "validation_loss", "test_loss", "val/loss"),
    "val/accuracy": ("eval_accuracy", "eval_acc", "val_acc", "val_accuracy", "valid_acc", "test_acc",
                     "test_accuracy", "accuracy", "acc1", "top1", "val_top1", "val/accuracy"),
    "val/top5": ("eval_top5", "val_top5", "val_acc5", "acc5", "top5", "test_acc5", "val/top5"),
    "val/f1": ("eval_f1", "val_f1", "f1", "val/f1"),
    "val/precision": ("eval_precision", "val_precision", "precision", "val/precision"),
    "val/recall": ("eval_recall", "val_recall", "recall", "val/recall"),
    "val/mAP50": ("map50", "eval_map50", "eval_map_50", "val_map50", "map_50", "map@.5", "map@0.5",
                  "map_0.5", "val/map50"),
    "val/mAP50-95": ("map", "map50-95", "eval_map", "val_map", "map@.5:.95", "map_0.5:0.95",
                     "map50_95", "val/map50-95"),
    "val/mIoU": ("miou", "mean_iou", "eval_mean_iou", "val_miou", "val/miou"),
    "val/pixel_accuracy": ("pixel_accuracy", "eval_overall_accuracy", "val/pixel_accuracy"),
    "val/psnr": ("psnr", "eval_psnr", "val_psnr", "val/psnr"),
    "val/ssim": ("ssim", "eval_ssim", "val_ssim", "val/ssim"),
    "val/cer": ("cer", "eval_cer", "val_cer", "val/cer"),
    "lr": ("lr", "learning_rate"),
}
# lower-case log key -> metric name
KNOWN_KEYS: dict[str, str] = {key: metric for metric, keys in _VOCABULARY.items() for key in keys}
# Position keys besides `epoch`: ignored, never turned into metrics.
_POSITION_KEYS = frozenset({"step", "global_step", "iter", "iteration"})

# `key=value` / `key: value`. A key may be two words; a first word that is a qualifier
# ("val loss: 0.5", "Train Acc: 90%") joins the key (val_loss, train_acc), any other is dropped.
# Possessive quantifiers: a key never gives characters back, which keeps findall linear.
_PAIR = re.compile(rf"(?<![\w./@-])([A-Za-z_][\w./@()-]*+(?: [A-Za-z_][\w./@()-]*+)?)\s*+[=:]\s*+({N})(%?)"
                   r"(?![\w.:/%])")
_DICT_PAIR = re.compile(rf"""['"]([^'"]++)['"]\s*+:\s*+['"]?+({N})['"]?+()(?=\s*[,}}])""")
_EPOCH_OF = re.compile(r"(?i)(?<![\w])epoch\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)")
_QUALIFIERS = frozenset({"train", "training", "val", "valid", "validation", "test", "eval"})
_NOT_METRIC_CHARS = re.compile(r"[^\w\-.:/]")
_MAX_CACHED_KEYS = 10_000


def might_name_a_known_key(lower: str) -> bool:
    """A prefilter on the lower-cased line: False when no known key (or `epoch`) can be in it.

    Every key of KNOWN_KEYS contains one of these stems (a test checks it); a chain of `in`
    tests costs a fraction of the pair regex, which then runs only on lines that may qualify.
    """
    return ("loss" in lower or "acc" in lower or "lr" in lower or "epoch" in lower or "map" in lower
            or "learning" in lower or "top" in lower or "prec" in lower or "recall" in lower or "f1" in lower
            or "iou" in lower or "psnr" in lower or "ssim" in lower or "cer" in lower)


# What a raw key is, cached per parser: (metric name, kind).
_EPOCH, _POSITION, _KNOWN, _CUSTOM = 0, 1, 2, 3


@register_parser("generic")
class GenericParser(LogParser):
    def __init__(self) -> None:
        super().__init__()
        self._step = 1
        self._zero_based: bool | None = None  # decided by the first integer epoch
        self._total_epochs: int | None = None
        self._keys: dict[str, tuple[str, int]] = {}
        self._epoch_text = ""  # the last `epoch` value read (HF repeats it on many lines)

    def parse_line(self, line: Line) -> list[Event]:
        text = line.text
        events: list[Event] = []
        if ("poch" in text or "POCH" in text) and "/" in text:
            match = _EPOCH_OF.search(text)
            if match is not None:
                self._total_epochs = int(match.group(2))
                self._set_epoch(match.group(1))
                progress = self._progress(self._step, self._total_epochs, None, None)
                if progress is not None:
                    events.append(progress)
        if ":" not in text and "=" not in text:
            return events
        is_dict = text[-1] == "}" and ("{'" in text or '{"' in text)
        if not is_dict and not might_name_a_known_key(text.lower()):
            return events  # the cheap test first: most log lines carry no metric
        pairs = (_DICT_PAIR if is_dict else _PAIR).findall(text)
        if not pairs:
            return events
        keys = self._keys
        known = False
        epoch_text = None
        values: dict[str, float] = {}
        for key, number, percent in pairs:
            entry = keys.get(key) or self._classify(key)
            kind = entry[1]
            if kind >= _KNOWN:
                try:
                    value = float(number)
                except ValueError:  # "1.2.3" passes the loose number pattern
                    continue
                values[entry[0]] = value / 100.0 if percent else value
                if kind == _KNOWN:
                    known = True
            elif kind == _EPOCH:
                epoch_text = number
        if epoch_text is not None and epoch_text != self._epoch_text:
            self._epoch_text = epoch_text
            self._set_epoch(epoch_text)
        if known and values:
            if is_dict and "train_runtime" in text:
                values = self._summary(pairs)
            events.append(MetricUpdate(self._step, values))
        return events

    def _classify(self, raw: str) -> tuple[str, int]:
        """(metric name, kind) of a raw key: known, `custom/<key>`, or a position key; cached."""
        key = raw
        if " " in key:
            first, _, last = key.partition(" ")
            key = f"{first}_{last}" if first.lower() in _QUALIFIERS else last
        lower = key.lower()
        if lower == "epoch":
            entry = ("", _EPOCH)
        elif lower in _POSITION_KEYS:
            entry = ("", _POSITION)
        elif lower in KNOWN_KEYS:
            entry = (KNOWN_KEYS[lower], _KNOWN)
        else:
            entry = ("custom/" + _NOT_METRIC_CHARS.sub("_", key), _CUSTOM)
        if len(self._keys) < _MAX_CACHED_KEYS:
            self._keys[raw] = entry
        return entry

    def _summary(self, pairs: list[tuple[str, str, str]]) -> dict[str, float]:
        """HF's end-of-training summary: every key custom (its train_loss is a whole-run mean)."""
        values = {}
        for key, number, _ in pairs:
            if self._classify(key)[1] >= _KNOWN:
                try:
                    values["custom/" + _NOT_METRIC_CHARS.sub("_", key)] = float(number)
                except ValueError:
                    pass
        return values

    def _set_epoch(self, text: str) -> None:
        try:
            value = float(text)
        except ValueError:
            return
        if not math.isfinite(value) or value < 0:
            return
        if value.is_integer() and "." not in text and "e" not in text.lower():
            if self._zero_based is None:
                self._zero_based = value == 0
            step = int(value) + 1 if self._zero_based else int(value)
        else:
            step = math.ceil(value)
        self._step = max(1, step)
