"""The training controls (``adapters.controls``) as Ultralytics' own arguments and hooks.

- mixed precision → its ``amp`` argument (``False``, ``True`` for fp16 after its AMP check, ``"bf16"``; its
  autocast takes bf16 on CUDA only, so bf16 on the CPU is refused);
- gradient accumulation N → its nominal batch size ``nbs = batch x N`` (it accumulates ``nbs / batch``
  batches per optimizer step and scales weight decay by ``batch x accumulate / nbs``, here 1);
- gradient clipping → the max norm of its optimizer step (10.0 fixed in its code; :func:`clip_at`);
- warmup epochs → its ``warmup_epochs``; left out: its own 3.0;
- early stopping → visionyard's (:class:`adapters.controls.EarlyStopper` in the adapter's epoch callback), so
  its own ``patience`` on fitness is turned off;
- EMA → always on (its trainer validates and saves the EMA); ``ema: false`` is refused at submit.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.controls import ControlUnavailable, resolve_precision
from adapters.job import TrainingSpec
from adapters.ultralytics.catalog import BF16_ON_CPU

log = logging.getLogger("visionyard.ultralytics")
AMP = {"no": False, "fp16": True, "bf16": "bf16"}


def bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def train_arguments(training: TrainingSpec, device: str) -> dict[str, Any]:
    """The ``model.train`` arguments of the controls (``ControlUnavailable`` for fp16 on a CPU)."""
    precision = resolve_precision(training.mixed_precision, device, bf16_supported)
    if precision == "bf16" and not device.startswith("cuda"):
        raise ControlUnavailable(f"training.mixed_precision is bf16: {BF16_ON_CPU}")
    args: dict[str, Any] = {"amp": AMP[precision], "nbs": training.batch_size * max(training.gradient_accumulation, 1),
                            "patience": 0}
    if training.warmup_epochs is not None:
        args["warmup_epochs"] = float(training.warmup_epochs)
    return args


def clip_at(trainer, max_norm: float) -> None:
    """Make ``trainer``'s optimizer step clip the gradient norm at ``max_norm`` (0: not at all) instead of its
    fixed 10.0: its own ``optimizer_step``, with that one number changed."""
    import torch

    log.info("gradient norm clipped at %g%s", max_norm, " (0: not clipped)" if max_norm <= 0 else "")

    def optimizer_step() -> None:
        trainer.scaler.unscale_(trainer.optimizer)
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), max_norm=max_norm)
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()
        trainer.optimizer.zero_grad()
        if trainer.ema:
            trainer.ema.update(trainer.model)

    trainer.optimizer_step = optimizer_step
