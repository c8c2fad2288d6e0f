"""Datasets with link loops vs the daemon: their submits, then the daemon's memory, CPU and the
latency of a valid submit, against the same daemon's numbers before any loop was submitted.

Each looping dataset is an ImageFolder whose class ``0`` holds ``a -> ..`` and ``b -> ..`` (a walk
that follows every link never ends) and class ``1`` holds ``up -> ..``. The looping submits go in
at once, as many as the daemon has submit-check threads (4), so a check that kept running would
starve every later submit. Goals: each looping submit answers in about a valid submit's time,
the daemon's RSS stays near its baseline, it burns no CPU once they are answered, and a valid
submit afterwards is as quick as before.

    uv run python bench/bench_link_loops.py [--rounds 5] [--loops 4] [--per-class 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.client import ClientError  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402

CLASSES = {str(i): ((i * 70) % 256, (i * 130) % 256, (i * 190) % 256) for i in range(10)}
TICKS = os.sysconf("SC_CLK_TCK")


def spec(dataset: Path, name: str) -> dict:
    return {"name": name, "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": 32, "dataset": {"path": str(dataset), "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 16, "device": "cpu"}}


def looping_dataset(root: Path, per_class: int) -> Path:
    data = make_imagefolder(root, per_class=per_class, val_per_class=0, classes=CLASSES)
    for name in ("a", "b"):
        os.symlink("..", data / "train" / "0" / name)
    os.symlink("..", data / "train" / "1" / "up")
    return data


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS now, peak RSS) of the process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / TICKS  # utime + stime


def submit(client, job_spec: dict) -> tuple[float, str]:
    """(seconds to the answer, the outcome); an accepted job is cancelled at once (it needn't train)."""
    started = time.monotonic()
    try:
        job = client.submit(job_spec)
    except ClientError as exc:
        return time.monotonic() - started, f"{exc.code.name if exc.code else '?'}: {str(exc)[:80]}"
    took = time.monotonic() - started
    client.cancel(job.id)
    return took, f"accepted, {job.spec.num_classes} classes"


def spread(values: list[float]) -> str:
    return (f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, "
            f"n={len(values)})")


def burst(client, datasets: list[Path], label: str) -> tuple[list[tuple[float, str]], float]:
    """Submit one spec per dataset at once: (each one's answer, seconds until all were answered)."""
    answers: list[tuple[float, str]] = [(0.0, "")] * len(datasets)

    def send(i: int) -> None:
        answers[i] = submit(client, spec(datasets[i], f"{label}-{i}"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(datasets))]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, time.monotonic() - started


def settle(pid: int, timeout: float = 60) -> None:
    """Wait until the daemon is idle (under 5 % of a core over a second): MLflow's store is made
    after the first job, off the RPC threads."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        start = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - start < 0.05:
            return


def idle_cpu(pid: int, seconds: float = 3) -> float:
    start = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - start) / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="valid submits timed before and after")
    parser.add_argument("--loops", type=int, default=4, help="looping datasets submitted at once")
    parser.add_argument("--per-class", type=int, default=60, help="images per class (10 classes)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-loops-"))
    valid = [make_imagefolder(tmp / f"valid-{i}", per_class=args.per_class, val_per_class=0, classes=CLASSES)
             for i in range(args.loops)]
    loops = [looping_dataset(tmp / f"looping-{i}", args.per_class) for i in range(args.loops)]
    envs = tmp / "envs"
    envs.mkdir()
    daemon = start_daemon(tmp / "home", envs)
    pid = daemon.proc.pid
    report = {}
    try:
        client = daemon.client
        submit(client, spec(valid[0], "warm"))  # first-call costs (imports, catalogs, MLflow's store)
        settle(pid)
        report["before"] = [submit(client, spec(valid[0], f"before-{i}"))[0] for i in range(args.rounds)]
        settle(pid)
        report["rss_start"] = memory_mib(pid)[0]
        for name, datasets in (("valid", valid), ("looping", loops)):
            report[name] = burst(client, datasets, name)
            report[f"cpu_{name}"] = idle_cpu(pid)
            report[f"rss_{name}"] = memory_mib(pid)[0]
        report["after"] = [submit(client, spec(valid[0], f"after-{i}"))[0] for i in range(args.rounds)]
        report["rss_end"], report["peak"] = memory_mib(pid)
        report["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    finally:
        daemon.stop()

    for name in ("valid", "looping"):
        answers, all_answered = report[name]
        print(f"\n{args.loops} {name} datasets (10 classes x {args.per_class} images"
              f"{', 3 links to ..' if name == 'looping' else ''}) submitted at once: all answered after "
              f"{all_answered:.3f} s")
        for i, (took, outcome) in enumerate(answers):
            print(f"  {name}-{i}: {took:.3f} s  {outcome}")
        print(f"  then the daemon used {report[f'cpu_{name}'] * 100:.1f} % of a core over 3 s; RSS "
              f"{report[f'rss_{name}']:.0f} MiB")
    print(f"\nvalid submit before the bursts: {spread(report['before'])}")
    print(f"valid submit after the bursts:  {spread(report['after'])}  goal: as before")
    print(f"daemon RSS: {report['rss_start']:.0f} MiB at the start, {report['rss_end']:.0f} MiB at the end, peak "
          f"{report['peak']:.0f} MiB; {report['threads']} threads at the end")
    print("goals: the looping burst answers like the valid one (never the 60 s check limit), leaves the daemon "
          "idle, and adds no memory")


if __name__ == "__main__":
    main()
