"""Jobs that outlive the daemon: what adoption and the per-job supervisor cost.

1. Adoption latency (goal ≤ 2 s): a job trains; the daemon is killed with SIGKILL and started
   again on the same home; timed from spawning the new daemon process to the first metrics event
   of the adopted job that a client watching it receives. Two kinds of job, each killed
   ``--kills`` times: a custom repo (its metrics come from the log, tailed on from the stored
   offset) and a timm adapter job (its metrics come over gRPC from a reporter that has to
   reconnect). The new daemon's own start (imports, store, recover) is part of the time.
2. Supervisor cost (goal ≤ +20 ms): spawn → the command exec'd, through the supervisor
   (``Child.start``) vs the launcher without one (``subprocess.Popen`` in a new session, the
   log file as stdout: what the daemon did before), in alternating rounds. The command is
   ``date +%s.%N``, which prints the time it started at once.

    uv run python bench/bench_restarts.py [--kills 5] [--spawns 40] [--envs DIR]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from runner.launch.local import Child, child_environment  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402
from tests.repo_fixtures import toy_repo, toy_spec  # noqa: E402

ADOPT_GOAL_S, SUPERVISOR_GOAL_MS = 2.0, 20.0


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    v = [x * scale for x in values]
    return (f"median {statistics.median(v):.3f} {unit}  min {min(v):.3f}  max {max(v):.3f}  "
            f"[{', '.join(f'{x:.3f}' for x in v)}]")


def kill(daemon) -> None:
    daemon.client.close()
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    daemon._log.close()


def last_seq(client, job_id: str) -> int:
    seq = 0
    for event in client.watch(job_id, snapshot=True):
        seq = event.seq
    return seq


def adoption(home: Path, envs: Path, spec: dict, kills: int, between: float) -> list[float]:
    """Seconds from spawning a new daemon to the adopted job's next metrics event, per kill."""
    daemon = start_daemon(home, envs)
    job = daemon.client.submit(spec)
    deadline = time.monotonic() + 600
    while daemon.client.get(job.id).epoch < 1:
        if time.monotonic() > deadline or daemon.client.get(job.id).state not in (1, 2, 3):
            raise SystemExit(f"the job did not get going: {daemon.client.get(job.id).error}")
        time.sleep(0.1)
    times = []
    try:
        for _ in range(kills):
            time.sleep(between)
            seen = last_seq(daemon.client, job.id)
            kill(daemon)
            spawned = time.time()
            daemon = start_daemon(home, envs)
            for event in daemon.client.watch(job.id, after_seq=seen):
                if event.WhichOneof("kind") == "metrics":
                    times.append(time.time() - spawned)
                    break
            print(f"  adopted; next metrics after {times[-1]:.3f} s", flush=True)
    finally:
        daemon.client.cancel(job.id)
        daemon.client.wait(job.id)
        daemon.stop()
    return times


def spawn_to_exec(tmp: Path, supervised: bool) -> float:
    log = tmp / "spawn.log"
    log.write_bytes(b"")
    argv = ["date", "+%s.%N"]
    env = child_environment({})
    started = time.time()
    if supervised:
        Child.start(argv, tmp, env, log, tmp, "token").wait(30)
    else:
        with open(log, "ab") as out:
            popen = subprocess.Popen(argv, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        popen.wait(30)
    return float(log.read_text().split()[0]) - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="daemon kills per kind of job")
    parser.add_argument("--spawns", type=int, default=40, help="spawns of each kind (alternating)")
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in the temp dir)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-restarts-"))
    envs = (args.envs or tmp / "envs").absolute()
    envs.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)

    print(f"\nsupervisor cost: spawn → command exec'd, {args.spawns} of each, alternating", flush=True)
    with_sup, without = [], []
    for i in range(args.spawns):
        for supervised in (True, False) if i % 2 == 0 else (False, True):
            (with_sup if supervised else without).append(spawn_to_exec(tmp, supervised))
    extra_ms = (statistics.median(with_sup) - statistics.median(without)) * 1000
    print(f"  with the supervisor     {spread(with_sup, 'ms', 1000)}")
    print(f"  without (a bare Popen)  {spread(without, 'ms', 1000)}")

    print("\nadoption: daemon killed (SIGKILL) and started again → the adopted job's next metrics in watch",
          flush=True)
    data = make_imagefolder(tmp / "data", per_class=12, val_per_class=4)
    url, sha = toy_repo(tmp / "toy")
    (tmp / "toy.yaml").write_text(toy_spec(str(url), sha, name="toy"))
    home = tmp / "home"
    first = start_daemon(home, envs)
    first.client.add_repo(tmp / "toy.yaml")
    first.stop()
    toy = {"name": "toy", "framework": "custom", "repo": "toy", "model": "toy", "task": "image_classification",
           "dataset": {"path": str(data), "format": "imagefolder"},
           "training": {"epochs": 100000, "batch_size": 2, "device": "cpu"}, "advanced": {"epoch_seconds": 0.5}}
    print("custom repo (metrics from its log, every 0.5 s):", flush=True)
    repo_times = adoption(home, envs, toy, args.kills, between=1.0)
    with open(tmp / "env-build.log", "w") as build_log:
        EnvManager(envs).ensure(get_spec("timm"), log=build_log)
    timm = {"name": "timm", "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": 32, "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": 100000, "batch_size": 4, "device": "cpu"}}
    print("timm adapter (metrics over gRPC, an epoch every ~1 s):", flush=True)
    timm_times = adoption(home, envs, timm, args.kills, between=2.0)

    print("\nsummary")
    print(f"  supervisor: +{extra_ms:.1f} ms spawn → exec (median with − median without); goal ≤ +{SUPERVISOR_GOAL_MS:g} ms:"
          f" {'ok' if extra_ms <= SUPERVISOR_GOAL_MS else 'MISSED'}")
    for name, times in (("custom repo", repo_times), ("timm adapter", timm_times)):
        med = statistics.median(times)
        print(f"  adoption, {name}: {spread(times)}; goal ≤ {ADOPT_GOAL_S:g} s: {'ok' if med <= ADOPT_GOAL_S else 'MISSED'}")
    print(f"  load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
