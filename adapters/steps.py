"""Optimizer steps under the training controls, for an adapter that owns its loop (timm): mixed
precision, gradient accumulation, clipping and an EMA of the weights, as ``adapters.controls`` defines
them. Frameworks with their own loop translate the same controls to their own mechanism instead.

Per batch::

    with steps.autocast():
        loss = criterion(model(images), labels)
    steps.backward(loss, batch, batches)       # an optimizer step every N batches (and at the epoch's end)

Child env only (imports torch).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from adapters.controls import resolve_precision
from adapters.job import TrainingSpec

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def bf16_supported() -> bool:
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


class OptimizerSteps:
    """``training``'s controls for ``model`` and ``optimizer`` on ``device``; ``make_ema(model)`` builds
    the EMA when ``training.ema`` asks for one. :class:`adapters.controls.ControlUnavailable` when the
    device can't run the precision asked for (fp16 on a CPU)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 training: TrainingSpec, make_ema: Callable[[nn.Module], nn.Module] | None = None) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.precision = resolve_precision(training.mixed_precision, str(device), bf16_supported)
        self.dtype = DTYPES.get(self.precision)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.accumulate = max(int(training.gradient_accumulation), 1)
        self.clip = float(training.gradient_clip or 0.0)
        self.ema = make_ema(model) if training.ema and make_ema is not None else None
        #: The gradient norm before clipping at the latest clipped step (None without clipping).
        self.last_norm: float | None = None

    def autocast(self) -> AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def backward(self, loss: torch.Tensor, batch: int, batches: int) -> bool:
        """Accumulate ``loss`` of the epoch's ``batch``-th of ``batches`` batches (1-based); step the
        optimizer after every ``accumulate`` batches and after the last. True when it stepped.

        Each batch's loss is divided by the number of batches its step accumulates (fewer in a short
        last group), so a step's gradient is the mean over its batches, as one batch that large gives."""
        group_start = (batch - 1) // self.accumulate * self.accumulate
        in_group = min(self.accumulate, batches - group_start)
        self.scaler.scale(loss / in_group).backward()
        if batch - group_start < in_group:
            return False
        if self.clip > 0:
            self.scaler.unscale_(self.optimizer)
            self.last_norm = float(nn.utils.clip_grad_norm_(self.model.parameters(), self.clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        return True

    @property
    def eval_model(self) -> nn.Module:
        """The weights validation and checkpoints use: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model
