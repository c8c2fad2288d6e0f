"""What the framework benches share: the child's thread count and environment as the daemon sets them."""

from __future__ import annotations

import os

MAX_CONCURRENT_JOBS = 1  # the daemon's default; children get cores // this many threads


def threads() -> str:
    """``OMP_NUM_THREADS`` as the daemon sets it for its children (runner/daemon/server.py)."""
    return os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // MAX_CONCURRENT_JOBS))


def base_environ() -> dict[str, str]:
    """The bare runs' environment: this shell's, run the way Python runs by default, writing and
    reusing ``.pyc`` files (in the venv, warmed by the untimed warm-up run), as the daemon's children
    do in the home's shared ``pycache``, whatever ``PYTHONDONTWRITEBYTECODE`` says here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONYARD_", "VIRTUAL_ENV"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def alternating_rounds(rounds: int):
    """(round, "visionyard" | "bare") in the order the framework benches run them: the order flips
    every round, so neither side always goes first on a warming or cooling box."""
    for i in range(rounds):
        for which in ("visionyard", "bare") if i % 2 == 0 else ("bare", "visionyard"):
            yield i, which


def print_rates(rates: dict[str, list[float]], over: tuple[str, str], goal: str = "") -> None:
    """Each side's images/s (median, min, max over rounds), then the ratio ``over[0] / over[1]`` of the
    medians and of each round, and the `goal` it is held to, if any."""
    import statistics

    width = max(map(len, rates)) + 1
    for name, values in rates.items():
        print(f"  {name:<{width}} median {statistics.median(values):7.1f} images/s  min {min(values):7.1f}  "
              f"max {max(values):7.1f}")
    top, bottom = rates[over[0]], rates[over[1]]
    ratios = [t / b for t, b in zip(top, bottom, strict=True)]
    print(f"  {over[0]} / {over[1]} (median/median) {statistics.median(top) / statistics.median(bottom):.3f}x"
          f"{f'   goal {goal}' if goal else ''}; per round {', '.join(f'{r:.3f}' for r in ratios)}")
