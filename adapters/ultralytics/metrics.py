"""Ultralytics' metric names → the shared vocabulary (plain data and functions: host-testable).

``metrics/mAP50-95(B)`` → ``val/mAP50-95`` (boxes), ``(M)`` → ``val/mask_*``, ``(P)`` →
``val/pose_*``; ``metrics/accuracy_top1`` → ``val/accuracy``, ``_top5`` → ``val/top5``; loss items
keep their names under ``train/`` and ``val/`` (``train/box_loss``) and ``*/loss`` is their sum;
``lr`` is the first parameter group's learning rate. Ultralytics' ``fitness`` is not reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_BOX_METRIC = re.compile(r"^metrics/(precision|recall|mAP50|mAP50-95)\((B|M|P)\)$")
_PREFIX = {"B": "", "M": "mask_", "P": "pose_"}
_CLASSIFY = {"metrics/accuracy_top1": "val/accuracy", "metrics/accuracy_top5": "val/top5"}


def epoch_metrics(val_metrics: Mapping[str, float], train_losses: Mapping[str, float],
                  lr: Mapping[str, float]) -> dict[str, float]:
    """One epoch's metrics in our names.

    ``val_metrics`` is ``trainer.metrics``; ``train_losses`` is
    ``trainer.label_loss_items(trainer.tloss, prefix="train")``; ``lr`` is ``trainer.lr``.
    """
    out: dict[str, float] = {}
    val_losses = 0.0
    has_val_loss = False
    for key, value in val_metrics.items():
        value = float(value)
        if (match := _BOX_METRIC.match(key)) is not None:
            name, kind = match.groups()
            out[f"val/{_PREFIX[kind]}{name}"] = value
        elif key in _CLASSIFY:
            out[_CLASSIFY[key]] = value
        elif key.startswith("val/") and key.endswith("loss"):
            out[key] = value
            val_losses += value
            has_val_loss = True
    if has_val_loss and "val/loss" not in out:
        out["val/loss"] = val_losses
    train_total = 0.0
    for key, value in train_losses.items():
        name = key if key.startswith("train/") else f"train/{key}"
        out[name] = float(value)
        train_total += float(value)
    if train_losses and "train/loss" not in out:
        out["train/loss"] = train_total
    if lr:
        out["lr"] = float(next(iter(lr.values())))
    return {k: v for k, v in out.items() if math.isfinite(v)}
