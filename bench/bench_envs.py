"""Benchmark the env manager on the real timm env (warm uv cache).

    uv run python bench/bench_envs.py [--rounds 3] [--hits 20]

(a) cache hit: ``ensure(timm)`` once the env exists — median of N calls in this process, plus
    the first call of a fresh process (which pays the one ``uv python find`` per process);
(b) fresh build through ``EnvManager.ensure`` vs raw ``uv venv`` + ``uv pip install`` of the
    same requirements into a plain temp dir, alternating which goes first, and the ratio of the
    medians (goal: <= 1.1x), plus the manager's own time outside the uv commands. With a warm
    cache uv hardlinks the ~5 GB timm env in about a second, so run-to-run noise (other work on
    the box) is larger than the manager's overhead; that last line is the stable number.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import envs.manager  # noqa: E402
from envs import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from envs.uvcli import find_uv, run_streaming, uv_environ  # noqa: E402

FRESH_PROCESS_HIT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
t0 = time.perf_counter()
from envs import EnvManager
from envs.specs import get_spec
t1 = time.perf_counter()
env = EnvManager(Path({root!r})).ensure(get_spec("timm"))
t2 = time.perf_counter()
assert env.reused
print(f"{{t1 - t0:.4f}} {{t2 - t1:.4f}}")
"""


def bench_cache_hit(work: Path, hits: int) -> dict[str, float]:
    spec = get_spec("timm")
    root = work / "hit-root"
    build = EnvManager(root).ensure(spec, log=io.StringIO())
    manager = EnvManager(root)
    timings = []
    for _ in range(hits):
        started = time.perf_counter()
        env = manager.ensure(spec)
        timings.append(time.perf_counter() - started)
        assert env.reused
    fresh = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS_HIT.format(repo=str(REPO), root=str(root))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {
        "first build (s)": build.build_seconds,
        "hit median (ms)": statistics.median(timings) * 1000,
        "hit max (ms)": max(timings) * 1000,
        "fresh process: import envs (ms)": float(fresh[0]) * 1000,
        "fresh process: first ensure (ms)": float(fresh[1]) * 1000,
    }


def build_with_manager(work: Path, tag: str) -> tuple[float, float]:
    """(wall seconds of ensure, seconds of it spent outside the uv commands themselves)."""
    root = work / f"mgr-{tag}"
    in_uv = []

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return run_streaming(*args, **kwargs)
        finally:
            in_uv.append(time.perf_counter() - started)

    os.sync()  # flush the previous build's writeback so it does not land on this timing
    envs.manager.run_streaming = timed
    started = time.perf_counter()
    try:
        with open(work / f"mgr-{tag}.log", "w") as log:
            env = EnvManager(root).ensure(get_spec("timm"), log=log)
    finally:
        envs.manager.run_streaming = run_streaming
    elapsed = time.perf_counter() - started
    assert not env.reused
    shutil.rmtree(root)
    return elapsed, elapsed - sum(in_uv)


def build_raw(work: Path, tag: str) -> float:
    uv, spec = find_uv(), get_spec("timm")
    target = work / f"raw-{tag}"
    reqs = work / f"raw-{tag}.txt"
    reqs.write_text("".join(r + "\n" for r in spec.requirements))
    os.sync()
    started = time.perf_counter()
    with open(work / f"raw-{tag}.log", "w") as log:
        for cmd in (
            [uv, "venv", "--python", spec.python, str(target)],
            [uv, "pip", "install", "--python", str(target / "bin" / "python"), "-r", str(reqs)],
        ):
            subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=uv_environ(), cwd=work, check=True
            )
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hits", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vy-bench-envs-") as tmp:
        work = Path(tmp)
        hit = bench_cache_hit(work, args.hits)
        print(f"(a) cache hit of ensure(timm), {args.hits} calls")
        for label, value in hit.items():
            print(f"    {label:<34} {value:10.2f}")

        manager_times, raw_times, overheads = [], [], []
        print(f"\n(b) fresh timm env, warm uv cache, {args.rounds} rounds (order alternates)")
        print(f"    {'round':<6} {'first':<8} {'manager (s)':>12} {'raw uv (s)':>12} {'ratio':>7}")
        for i in range(args.rounds):
            if i % 2 == 0:
                first = "manager"
                m, overhead = build_with_manager(work, str(i))
                r = build_raw(work, str(i))
            else:
                first = "raw"
                r = build_raw(work, str(i))
                m, overhead = build_with_manager(work, str(i))
            manager_times.append(m)
            overheads.append(overhead)
            raw_times.append(r)
            print(f"    {i:<6} {first:<8} {m:12.2f} {r:12.2f} {m / r:7.3f}")
        med_m, med_r = statistics.median(manager_times), statistics.median(raw_times)
        ratios = [m / r for m, r in zip(manager_times, raw_times, strict=True)]
        print(f"    {'median':<15} {med_m:12.2f} {med_r:12.2f} {med_m / med_r:7.3f}")
        print(f"    median of per-round ratios: {statistics.median(ratios):.3f} (goal <= 1.1)")
        print(
            f"    manager time outside uv (python version, lock, marker, rename): median "
            f"{statistics.median(overheads) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
