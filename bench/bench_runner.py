"""Runner overheads, measured against a baseline in the same script.

1. submit → child exec latency with a warm env (goal ≤ 0.5 s): from the SubmitJob call to the
   daemon's RUNNING event, which is stamped once the child has been exec'd.
2. wall time of a small timm training through visionyard (submit → SUCCEEDED) vs the same
   training run bare in the same venv (`python -m adapters.entrypoint --spec job.json`, no
   daemon) (goal ≤ 1.02×). Rounds alternate which goes first.

    uv run python bench/bench_runner.py [--rounds 3] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protos import visionyard_pb2 as pb  # noqa: E402
from runner.launch import jobdir  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402


def spec(dataset: Path, epochs: int, name: str) -> dict:
    return {"name": name, "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": 32, "dataset": {"path": str(dataset), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": 16, "device": "cpu"}}


def through_daemon(client, job_spec: dict) -> tuple[float, float, pb.Job]:
    started = time.time()
    job = client.submit(job_spec)
    exec_at = None
    for event in client.watch(job.id):
        if event.WhichOneof("kind") == "status" and event.status.state == pb.RUNNING:
            exec_at = event.time
    final = client.get(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    return final.finished_at - started, exec_at - started, final


def bare(python: str, child_path: Path, job_json: dict, work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    (work / "checkpoints").mkdir(exist_ok=True)
    job_json = dict(job_json, job_dir=str(work), checkpoint_dir=str(work / "checkpoints"))
    (work / "job.json").write_text(json.dumps(job_json))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONYARD_")}
    env.update(PYTHONPATH=str(child_path), CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1")
    started = time.time()
    with open(work / "output.log", "ab") as log:
        subprocess.run([python, "-m", "adapters.entrypoint", "--spec", str(work / "job.json")], check=True,
                       env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-"))
    dataset = make_imagefolder(tmp / "data", per_class=60, val_per_class=15)
    envs = tmp / "envs"
    envs.mkdir()
    daemon = start_daemon(tmp / "home", envs)
    try:
        client = daemon.client
        print("warming the env (first build may take a minute)...", flush=True)
        _, _, warm = through_daemon(client, spec(dataset, 1, "warm"))
        python = str(Path(next(e.path for e in client.envs() if e.name == warm.env_name)) / "bin" / "python")
        job_json = json.loads(Path(warm.job_dir, jobdir.JOB_FILE).read_text())
        job_json["spec"]["training"]["epochs"] = args.epochs

        latencies = []
        for i in range(5):
            _, latency, _ = through_daemon(client, spec(dataset, 1, f"latency-{i}"))
            latencies.append(latency)

        runner_times, bare_times = [], []
        for i in range(args.rounds):
            order = ("runner", "bare") if i % 2 == 0 else ("bare", "runner")
            for which in order:
                if which == "runner":
                    runner_times.append(through_daemon(client, spec(dataset, args.epochs, f"wall-{i}"))[0])
                else:
                    bare_times.append(bare(python, tmp / "home" / "child-path", job_json, tmp / f"bare-{i}"))
    finally:
        daemon.stop()

    r, b = statistics.median(runner_times), statistics.median(bare_times)
    print(f"\nsubmit → child exec (warm env), median of {len(latencies)}: {statistics.median(latencies):.3f} s "
          f"(min {min(latencies):.3f}, max {max(latencies):.3f})  goal ≤ 0.5 s")
    print(f"training wall time, {args.epochs} epochs resnet18 32px, {args.rounds} rounds:")
    print(f"  through visionyard  median {r:.2f} s  {['%.2f' % t for t in runner_times]}")
    print(f"  bare in the same env median {b:.2f} s  {['%.2f' % t for t in bare_times]}")
    print(f"  ratio {r / b:.3f}×  goal ≤ 1.02×")


if __name__ == "__main__":
    main()
