"""The training controls: one set of ``training:`` settings with one meaning for every framework.

A job spec's ``training`` section may set::

    mixed_precision: auto | no | fp16 | bf16   # auto (default): bf16 on a CUDA GPU that supports it, else no
    gradient_accumulation: 4                   # batches per optimizer step (default 1)
    gradient_clip: 1.0                         # max gradient norm; 0: off; left out: the framework's own
    early_stopping: {patience: 5, min_delta: 0.0}   # on the task's primary metric; left out: never
    warmup_epochs: 1                           # left out: the framework's own
    ema: true                                  # an EMA of the weights; left out: the framework's own

Each framework's catalog says how it honours each one (:class:`Control`); a spec asking for a
control, or a value of it, that its framework cannot honour is refused when it is submitted, with
the reason (:func:`refusals`), never silently ignored. Early stopping is visionyard's own
(:class:`EarlyStopper`), fed the same primary metric the recorder tracks, so it means the same
for every framework; the run then ends SUCCEEDED with :func:`EarlyStopper.note` as its message.

Standard library only: the host validates specs with it, the child trains with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MIXED_PRECISION = "mixed_precision"
GRADIENT_ACCUMULATION = "gradient_accumulation"
GRADIENT_CLIP = "gradient_clip"
EARLY_STOPPING = "early_stopping"
WARMUP_EPOCHS = "warmup_epochs"
EMA = "ema"
CONTROLS = (MIXED_PRECISION, GRADIENT_ACCUMULATION, GRADIENT_CLIP, EARLY_STOPPING, WARMUP_EPOCHS, EMA)
PRECISIONS = ("auto", "no", "fp16", "bf16")
#: What a job spec that leaves a control out gets, whatever its framework (None: the framework's own).
CONTROL_DEFAULTS: dict[str, Any] = {MIXED_PRECISION: "auto", GRADIENT_ACCUMULATION: 1, GRADIENT_CLIP: None,
                                    EARLY_STOPPING: None, WARMUP_EPOCHS: None, EMA: None}

FP16_NEEDS_CUDA = ("training.mixed_precision is fp16, which needs a CUDA GPU (its loss scaling and fp16 kernels are "
                   "GPU-only); on the CPU use bf16 (or no), or run on device: cuda")


class ControlUnavailable(RuntimeError):
    """A training control the job's device cannot honour (fp16 on a CPU)."""


@dataclass(frozen=True)
class Control:
    """How one framework honours one control. ``refuse(value, training)`` returns why a value can't be
    honoured with the rest of ``training`` (its device, say; None: it can); ``supported`` False refuses
    every value."""

    name: str
    how: str
    default: str = ""
    supported: bool = True
    refuse: Callable[[Any, dict[str, Any]], str | None] | None = None

    def problem(self, value: Any, training: dict[str, Any]) -> str | None:
        if not self.supported:
            return self.how
        return self.refuse(value, training) if self.refuse is not None else None


def refusals(controls: dict[str, Control], training: dict[str, Any], framework: str) -> list[tuple[str, str]]:
    """``(field, message)`` for each control ``training`` sets that ``controls`` can't honour."""
    problems = []
    for name in CONTROLS:
        value = training.get(name)
        if value is None or (name == MIXED_PRECISION and value == "auto") or (name == GRADIENT_ACCUMULATION
                                                                              and value == 1):
            continue
        control = controls.get(name)
        why = f"{framework} has no such control" if control is None else control.problem(value, training)
        if why:
            problems.append((f"training.{name}", f"{why} (see `visionyard schema {framework}`)"))
    return problems


def resolve_precision(requested: str | None, device: str, bf16_supported: Callable[[], bool]) -> str:
    """``training.mixed_precision`` on ``device`` (``cpu`` or ``cuda:N``) → ``no``, ``fp16`` or ``bf16``.

    ``auto`` is bf16 on a CUDA GPU that supports it, else no. fp16 on the CPU raises
    :class:`ControlUnavailable`; bf16 on the CPU is allowed (torch's CPU autocast runs it).
    ``bf16_supported`` is asked only for a CUDA device.
    """
    value = requested or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"training.mixed_precision is {value!r}; use one of {', '.join(PRECISIONS)}")
    on_cuda = device.startswith("cuda")
    if value == "auto":
        return "bf16" if on_cuda and bf16_supported() else "no"
    if value == "fp16" and not on_cuda:
        raise ControlUnavailable(FP16_NEEDS_CUDA)
    return value


@dataclass(frozen=True)
class EarlyStopping:
    patience: int
    min_delta: float = 0.0

    @classmethod
    def of(cls, value: Any) -> EarlyStopping | None:
        """``training.early_stopping`` as given (a dict, or None) → an EarlyStopping, or None when off."""
        if not value:
            return None
        patience = int(value.get("patience") or 0)
        return cls(patience, float(value.get("min_delta") or 0.0)) if patience > 0 else None


class EarlyStopper:
    """Stops a run when the task's primary metric has not improved by more than ``min_delta`` for
    ``patience`` epochs in a row. ``update`` takes each epoch's value and says whether to stop; an
    epoch without the metric (a NaN, a missing value) counts as no improvement."""

    def __init__(self, rule: EarlyStopping, metric: str, higher_is_better: bool) -> None:
        self.rule, self.metric, self.higher = rule, metric, higher_is_better
        self.best: float | None = None
        self.best_epoch = 0
        self.stopped_at: int | None = None

    def restore(self, best: float | None, best_epoch: int) -> None:
        """Carry a resumed run's best forward."""
        self.best, self.best_epoch = best, int(best_epoch or 0)

    def update(self, epoch: int, value: float | None) -> bool:
        if value is not None and math.isfinite(value) and (
                self.best is None or (value - self.best if self.higher else self.best - value) > self.rule.min_delta):
            self.best, self.best_epoch = float(value), epoch
        if epoch - self.best_epoch >= self.rule.patience:
            self.stopped_at = epoch
            return True
        return False

    def note(self) -> str:
        """The run's end, in the words a user sees as the job's message."""
        delta = f" by more than {self.rule.min_delta:g}" if self.rule.min_delta else ""
        return (f"stopped early at epoch {self.stopped_at} (no improvement of {self.metric}{delta} for "
                f"{self.rule.patience} epochs)")


def describe(controls: dict[str, Control]) -> list[dict[str, Any]]:
    """Every control in order, as ``visionyard schema`` lists them."""
    out = []
    for name in CONTROLS:
        control = controls.get(name)
        if control is None:
            out.append({"name": name, "supported": False, "how": "not available", "default": ""})
        else:
            out.append({"name": name, "supported": control.supported, "how": control.how, "default": control.default})
    return out
