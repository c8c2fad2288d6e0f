"""Which device a job runs on: the device grammar, and one rule every adapter follows.

A job's ``training.device`` is ``auto`` (the first GPU this process sees, else the CPU), ``cpu``,
``cuda`` (the first GPU) or ``cuda:N`` (the N-th GPU *this process sees*: indices count within
``CUDA_VISIBLE_DEVICES``, so the daemon hands a job its GPU as ``cuda:0``). :func:`resolve_device`
turns it into ``cpu`` or ``cuda:N``, or raises :class:`DeviceUnavailable` saying what the
machine has and what would fix it, before a dataset is read or a model built.

Nothing here imports torch: what the process sees of CUDA is passed in (a :class:`CudaView`) or
probed by :func:`torch_cuda` only when a GPU could be the answer, so ``cpu`` costs no CUDA probe and
the host's spec checks use the grammar without torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

_ASSIGNED = r"cpu|cuda|cuda:\d+"
#: ``training.device`` as a job spec may give it.
DEVICE_RE = re.compile(rf"^(auto|{_ASSIGNED})$")
#: A device as the daemon assigns it to a job (``auto`` already resolved).
ASSIGNED_DEVICE_RE = re.compile(rf"^({_ASSIGNED})$")
SETTING = "training.device"


class DeviceUnavailable(RuntimeError):
    """``training.device`` names a device this process cannot use."""


@dataclass(frozen=True)
class CudaView:
    """What this process sees of CUDA."""

    devices: int                # CUDA devices torch can use (0 when CUDA is unavailable)
    built: bool = True          # torch in this env is built with CUDA
    visible: str | None = None  # CUDA_VISIBLE_DEVICES as set, None when unset

    @property
    def visible_devices(self) -> str:
        return "CUDA_VISIBLE_DEVICES is unset" if self.visible is None else f"CUDA_VISIBLE_DEVICES={self.visible!r}"


def torch_cuda() -> CudaView:
    """What torch in this process sees (imports torch: child env only)."""
    import torch

    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return CudaView(devices, built=torch.backends.cuda.is_built(), visible=os.environ.get("CUDA_VISIBLE_DEVICES"))


def resolve_device(requested: str | None, cuda: CudaView | Callable[[], CudaView] = torch_cuda) -> str:
    """``training.device`` → ``cpu`` or ``cuda:N``, or :class:`DeviceUnavailable` naming the fix.

    ``cuda`` is what the process sees, or a function that finds out (called unless ``requested``
    is ``cpu``). ``None`` or ``""`` means ``auto``.
    """
    device = requested or "auto"
    if not DEVICE_RE.match(device):
        raise DeviceUnavailable(f"{SETTING} is {device!r}: not a device; use auto, cpu, cuda or cuda:N")
    if device == "cpu":
        return "cpu"
    view = cuda() if callable(cuda) else cuda
    if device == "auto":
        return "cuda:0" if view.devices else "cpu"
    index = int(device.partition(":")[2] or 0)
    if not view.built:
        raise DeviceUnavailable(f"{SETTING} is {device!r} but torch in this env is built without CUDA "
                                f"({view.visible_devices}): use device: cpu or auto")
    if not view.devices:
        raise DeviceUnavailable(f"{SETTING} is {device!r} but this machine has no CUDA device "
                                f"(torch sees none; {view.visible_devices}): use device: cpu or auto")
    if index >= view.devices:
        seen = ", ".join(f"cuda:{i}" for i in range(view.devices))
        usable = "cuda:0" if view.devices == 1 else f"cuda:0 to cuda:{view.devices - 1}"
        raise DeviceUnavailable(f"{SETTING} is {device!r} but this process sees only {seen} "
                                f"({view.visible_devices}): use {usable}, cuda or auto")
    return f"cuda:{index}"
