"""How long a CLI command takes, whole process, against a running daemon (goal: ≤ 0.3 s for
every command), beside what a bare interpreter and the client's import cost on the same box.

Each round runs, in an order that rotates: `python -c pass` (the interpreter alone), `python -c
"import runner.client"`, `visionyard --version`, `list`, `status JOB`, `models`, `envs list --json`,
and `list` and `models` once more as a colour terminal 120 columns wide sees them (bold headers, coloured states;
`TTY_COMPATIBLE=1`), where the others print plain text to a pipe. The daemon's home holds a few
finished jobs, so `list` has rows to print.

    uv run python bench/bench_cli.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402


TERMINAL = {"TTY_COMPATIBLE": "1", "COLUMNS": "120"}


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-500:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    python = sys.executable
    visionyard = str(Path(python).with_name("visionyard"))
    with tempfile.TemporaryDirectory(prefix="vy-cli-bench-") as tmp:
        home = Path(tmp) / "home"
        (Path(tmp) / "envs").mkdir()
        daemon = start_daemon(home, Path(tmp) / "envs")  # no env is built: the jobs below are cancelled queued
        try:
            data = make_imagefolder(Path(tmp) / "data", per_class=2, val_per_class=1)
            jobs = [daemon.client.submit({"name": f"bench-{i}", "framework": "timm", "task": "image_classification",
                                          "model": "resnet18", "dataset": {"path": str(data), "format": "imagefolder"},
                                          "training": {"epochs": 1, "device": "cpu"}}).id for i in range(5)]
            for job in jobs:
                daemon.client.cancel(job)
            env = {**os.environ, "VISIONYARD_HOME": str(home)}
            os.environ.update(env)
            commands = {
                "python -c pass": ([python, "-c", "pass"], None),
                "import runner.client": ([python, "-c", "import runner.client"], None),
                "visionyard --version": ([visionyard, "--version"], None),
                "visionyard list": ([visionyard, "list"], None),
                "visionyard status": ([visionyard, "status", jobs[0]], None),
                "visionyard models": ([visionyard, "models", "--framework", "timm"], None),
                "visionyard envs list --json": ([visionyard, "envs", "list", "--json"], None),
                "list (colour terminal)": ([visionyard, "list"], TERMINAL),
                "models (colour terminal)": ([visionyard, "models", "--framework", "timm"], TERMINAL),
            }
            names = list(commands)
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(args.rounds):
                order = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in order:
                    times[name].append(timed(*commands[name]))
        finally:
            daemon.stop()
    print(f"{'command':28} {'median s':>9} {'q1':>7} {'q3':>7} {'min':>7} {'max':>7}  (n={args.rounds}, rotating order)")
    for name in names:
        values = times[name]
        q1, _, q3 = statistics.quantiles(values, n=4)
        print(f"{name:28} {statistics.median(values):9.3f} {q1:7.3f} {q3:7.3f} {min(values):7.3f} {max(values):7.3f}")


if __name__ == "__main__":
    main()
