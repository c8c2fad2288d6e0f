"""What the framework benches share: the child's thread count and environment as the daemon sets them."""

from __future__ import annotations

import os

MAX_CONCURRENT_JOBS = 1  # the daemon's default; children get cores // this many threads


def threads() -> str:
    """``OMP_NUM_THREADS`` as the daemon sets it for its children (runner/daemon.py)."""
    return os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // MAX_CONCURRENT_JOBS))


def base_environ(write_bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONYARD_", "VIRTUAL_ENV"))}
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env
