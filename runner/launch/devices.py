"""Which devices a job gets: CPU, or a GPU handed to the child through CUDA_VISIBLE_DEVICES.

The child always sees its GPU as `cuda:0`; the daemon tracks which physical GPUs are taken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Assignment:
    device: str             # what the child uses: "cpu" or "cuda:0"
    visible_devices: str    # CUDA_VISIBLE_DEVICES for the child ("" hides every GPU)
    gpu: int | None = None  # physical GPU taken from the pool
    gpus: int = 0           # how many GPUs the job holds (a Ray cluster picks which)


def detect_gpus(explicit: str | None = None) -> list[int]:
    """GPU indices this runner may hand out: --gpus, else the daemon's CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    raw = explicit if explicit is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is not None:
        return [int(part) for part in raw.split(",") if part.strip().isdigit()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [i for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


class DevicePool:
    """The runner's GPUs, each held by one training job or one warm predict worker at a time.

    Training keeps priority: a job that finds no GPU free calls `reclaim` (the predict workers stop
    their idle GPU workers) and looks again; a predict worker takes a GPU only when one is free now
    (`take_gpu`), and runs on the CPU otherwise."""

    def __init__(self, gpus: list[int]):
        self.gpus = list(gpus)
        self._free = set(gpus)
        self._lock = threading.Lock()
        self.waiting = ""  # why the last `acquire` that returned None must wait
        self.reclaim: Callable[[], int] | None = None  # frees GPUs held by idle predict workers; how many

    def check(self, request: str) -> str | None:
        """Why `request` can never be met on this runner, or None when it can."""
        if request in ("cpu", "auto"):
            return None
        if not self.gpus:
            return (f"'{request}' asks for a GPU but this runner has none "
                    "(start the daemon with --gpus, or use device: cpu or auto)")
        if request.startswith("cuda:") and int(request.split(":")[1]) not in self.gpus:
            return f"'{request}' is not one of this runner's GPUs: {', '.join(f'cuda:{g}' for g in self.gpus)}"
        return None

    def acquire(self, request: str) -> Assignment | None:
        """An assignment for `request`, or None when the job must wait for a GPU (`waiting` says
        why). Idle predict workers on GPUs are stopped to make room (`reclaim`)."""
        found = self._acquire(request)
        if found is None and self.reclaim is not None and self.reclaim():
            found = self._acquire(request)
        return found

    def take_gpu(self, request: str = "cuda") -> Assignment | None:
        """A free GPU for a predict worker (`cuda` any, `cuda:N` that one), or None: none is free now."""
        with self._lock:
            return self._take(request)

    def _acquire(self, request: str) -> Assignment | None:
        if request == "cpu" or (request == "auto" and not self.gpus):
            return Assignment("cpu", "")
        with self._lock:
            found = self._take(request)
            self.waiting = "" if found else (f"waiting for GPU {request}: it is taken" if request.startswith("cuda:")
                                             else "waiting for a GPU: every GPU of this runner is taken")
            return found

    def _take(self, request: str) -> Assignment | None:
        """A free GPU for `request` (`cuda:N` that one, else the lowest free), taken; None when none is.
        Call with the lock held."""
        if request.startswith("cuda:"):
            wanted = int(request.split(":")[1])
            candidates = [wanted] if wanted in self._free else []
        else:
            candidates = sorted(self._free)
        if not candidates:
            return None
        self._free.discard(candidates[0])
        return Assignment("cuda:0", str(candidates[0]), candidates[0], gpus=1)

    def claim(self, gpu: int | None, visible_devices: str, device: str, gpus: int = 0) -> Assignment:
        """The assignment a job adopted after a restart already holds (its GPU is taken again)."""
        if gpu is not None:
            with self._lock:
                self._free.discard(gpu)
        return Assignment(device or "cpu", visible_devices, gpu, gpus=1 if gpu is not None else 0)

    def release(self, assignment: Assignment) -> None:
        if assignment.gpu is not None:
            with self._lock:
                self._free.add(assignment.gpu)
