"""The Ray backend against the local one, in the same script, on the same machine.

A local Ray head (2 CPUs, built in its own venv with uv) and two daemons sharing one env root:
`--backend local` and `--backend ray --ray-cpus-per-job 2` (so both give a job the same threads;
the Ray node keeps its envs and job dirs in a node home of its own, as a node that shares nothing
with the daemon does: the env is built there by the warm-up job, and results come back at the end).
Rounds alternate which backend goes first. For each job:

- submit → exec: from the SubmitJob call to the moment the job's supervisor started the
  command (its `supervisor.json` is written right then), with a warm env;
- wall: submit → SUCCEEDED for a small timm training; the command alone (the training, from the
  supervisor's start to its exit record), and command end → SUCCEEDED (on Ray, the checkpoints
  sent back from the node). The goal is a wall ratio ≤ 1.05×, the rest being Ray's own start-up
  and the results' way back, reported apart.

    uv run python bench/bench_ray.py [--rounds 5] [--epochs 3]
"""

from __future__ import annotations

import argparse
import shutil
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
from tests.e2e.test_security import free_port  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402
from tests.ray.conftest import RAY_REQUIREMENT, RayHead  # noqa: E402

from bench.bench_runner import spec  # noqa: E402
from bench.child_env import alternating_rounds  # noqa: E402


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def run(client, job_spec: dict, node_home: Path | None = None) -> tuple[float, float, float, float]:
    """(submit → exec, submit → SUCCEEDED, exec → command's end, command's end → SUCCEEDED), in
    seconds. The supervisor writes its record when the command starts and the exit record when it
    ends; `node_home`: where a Ray node ran the job (the records there are the node's own)."""
    started = time.time()
    job = client.submit(job_spec)
    for _ in client.watch(job.id):
        pass
    final = client.get(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    job_dir = node_home / "jobs" / job.id if node_home else Path(final.job_dir)
    executed = (job_dir / jobdir.SUPERVISOR_RECORD).stat().st_mtime
    ended = (job_dir / jobdir.EXIT_RECORD).stat().st_mtime
    return executed - started, final.finished_at - started, ended - executed, final.finished_at - ended


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-ray-"))
    venv = tmp / "ray-venv"
    subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], check=True)
    subprocess.run(["uv", "pip", "install", "-q", "-p", str(venv / "bin" / "python"), RAY_REQUIREMENT], check=True)
    head = RayHead(venv)
    began = time.monotonic()
    head.start()
    head_start = time.monotonic() - began
    dataset = make_imagefolder(tmp / "data", per_class=60, val_per_class=15)
    envs = tmp / "envs"
    envs.mkdir()
    daemons = {}
    try:
        daemons["local"] = start_daemon(tmp / "local", envs, ["--max-concurrent-jobs", "1"])
        daemons["ray"] = start_daemon(tmp / "ray", envs, ["--backend", "ray", "--ray-address", head.address,
                                                          "--listen", f"127.0.0.1:{free_port()}",
                                                          "--ray-cpus-per-job", "2",
                                                          "--ray-node-home", str(tmp / "node")])
        print("warming the env and both daemons...", flush=True)
        for name, daemon in daemons.items():
            run(daemon.client, spec(dataset, 1, f"warm-{name}"), tmp / "node" if name == "ray" else None)
        results = {name: [] for name in daemons}
        for i, which in alternating_rounds(args.rounds):
            name = "ray" if which == "visionyard" else "local"  # the baseline takes the bare side
            results[name].append(run(daemons[name].client, spec(dataset, args.epochs, f"{name}-{i}"),
                                     tmp / "node" if name == "ray" else None))
            print(f"round {i} {name}: exec {results[name][-1][0]:.2f} s, wall {results[name][-1][1]:.2f} s",
                  flush=True)
    finally:
        for daemon in daemons.values():
            daemon.stop()
        head.stop()
        shutil.rmtree(head.temp, ignore_errors=True)

    print(f"\nRay head start-up (ray start until its API answers): {head_start:.1f} s")
    print(f"resnet18 32px, {args.epochs} epochs, 2 threads, {args.rounds} rounds (alternating):")
    for name, rows in results.items():
        print(f"  {name:5}  submit → exec        {spread([r[0] for r in rows])}")
        print(f"         training (command)  {spread([r[2] for r in rows])}")
        print(f"         command end → done  {spread([r[3] for r in rows])}")
        print(f"         wall                {spread([r[1] for r in rows])}")
    ratio = [ray[1] / local[1] for ray, local in zip(results["ray"], results["local"])]
    training = [ray[2] / local[2] for ray, local in zip(results["ray"], results["local"])]
    print(f"wall ratio ray/local per round: median {statistics.median(ratio):.3f}× "
          f"(min {min(ratio):.3f}, max {max(ratio):.3f})  goal ≤ 1.05×")
    print(f"training (the command) ratio:   median {statistics.median(training):.3f}× "
          f"(min {min(training):.3f}, max {max(training):.3f})")
    extra = [ray[0] - local[0] for ray, local in zip(results["ray"], results["local"])]
    back = [ray[3] - local[3] for ray, local in zip(results["ray"], results["local"])]
    print(f"Ray's own start-up per job (submit → exec, ray minus local): median {statistics.median(extra):.2f} s")
    print(f"results back from the node (command end → done, ray minus local): median {statistics.median(back):.2f} s")


if __name__ == "__main__":
    main()
