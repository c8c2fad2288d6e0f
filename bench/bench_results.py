"""`visionyard results` of a job with 300 validated epochs and 1,000 classes (goal: ≤ 1 s, matrix included).

A daemon's servicer on a real gRPC server over a unix socket (``tests/runner/predict_served.py``, as the
daemon serves it) with one job whose job dir holds what its training wrote (``ResultsWriter``): the index of
300 validations, and the records of the best and the last epoch (1,000 classes: a 1,000 x 1,000 confusion
matrix, per-class rows). Timed, in alternating order per round:

- ``Client.results(job)`` in this process (the RPC, the record read and sent, the answer parsed);
- the whole command ``visionyard results JOB`` (a new process: imports, the call, the table) and
  ``visionyard results JOB --json`` (every class and the whole matrix printed).

    uv run python bench/bench_results.py [--rounds 7] [--classes 1000] [--epochs 300]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.evaluation.classification import classification_results  # noqa: E402
from adapters.evaluation.record import ResultsWriter, ValidationRecord  # noqa: E402
from runner.client import Client  # noqa: E402
from runner.daemon.predictions import PredictLimits  # noqa: E402
from runner.daemon.workers import WorkerLimits  # noqa: E402
from tests.runner.predict_served import Served  # noqa: E402


def write_results(job_dir: Path, job_id: str, classes: int, epochs: int) -> None:
    rng = np.random.default_rng(0)
    names = [f"class {i}" for i in range(classes)]
    writer = ResultsWriter(job_dir, "image_classification")
    for epoch in range(1, epochs + 1):
        matrix = np.diag(rng.integers(20, 50, classes)) + rng.integers(0, 2, (classes, classes)) * (epoch % 3)
        evaluation = classification_results(matrix, names)
        if epoch not in (epochs // 2, epochs):  # only the best and last records are kept: write just the index
            evaluation.confusion_matrix, evaluation.per_class = None, []
        writer.write(ValidationRecord.of(evaluation, task="image_classification", epoch=epoch, step=epoch * 100,
                                         source="training", job=job_id,
                                         metrics={**evaluation.metrics, "val/loss": 1.0 / epoch,
                                                  "val/accuracy": 0.9 if epoch == epochs // 2 else 0.5}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="vy-bench-results-"))
    served = Served(home, PredictLimits(), WorkerLimits())
    job = served.store.create_job({"framework": "timm", "task": "image_classification", "model": "resnet18"},
                                  "results-bench", args.epochs)
    job_dir = served.paths.job_dir(job.id)
    job_dir.mkdir(parents=True)
    served.store.update(job.id, job_dir=str(job_dir))
    started = time.perf_counter()
    write_results(job_dir, job.id, args.classes, args.epochs)
    print(f"wrote {args.epochs} validations of {args.classes} classes in {time.perf_counter() - started:.1f} s; "
          f"best record {(job_dir / 'results' / 'val' / f'epoch-{args.epochs // 2:04d}.json').stat().st_size / 2**20:.1f} MiB")
    client = Client(served.address)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "runner.cli", "results", job.id, "--address", served.address]
    times: dict[str, list[float]] = {"Client.results": [], "visionyard results": [], "visionyard results --json": []}

    def run(side: str) -> None:
        started = time.perf_counter()
        if side == "Client.results":
            reply = client.results(job.id)
            assert reply.result.epoch == args.epochs // 2 and len(reply.epochs) == args.epochs
            assert len(reply.result.confusion_matrix.counts) == args.classes ** 2
        else:
            done = subprocess.run(command + (["--json"] if side.endswith("--json") else []), env=env,
                                  capture_output=True, text=True, cwd=home)
            assert done.returncode == 0, done.stderr
        times[side].append(time.perf_counter() - started)

    for side in times:  # warm: page cache, the first connection
        run(side)
    for r in range(args.rounds):
        for side in (list(times) if r % 2 == 0 else list(reversed(times))):
            run(side)
    client.close()
    print(f"\nresults of a job with {args.epochs} epochs and {args.classes} classes, {args.rounds} rounds "
          "(alternating order), seconds:")
    for side, values in times.items():
        values = values[1:]
        print(f"  {side:<26} median {statistics.median(values):6.3f}  min {min(values):6.3f}  max {max(values):6.3f}"
              "   goal <= 1 s")


if __name__ == "__main__":
    main()
