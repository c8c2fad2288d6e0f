"""Open watch streams vs everything else: GetJob latency and report-apply latency under load.

A real daemon runs a custom-repo job that prints a log line every ~0.2 s (and a metrics line
per 0.6 s epoch). With 0, 100 and 500 `WatchJob` streams open on it (include_logs: every event
goes to every stream; a separate process reads them on one asyncio loop), this measures
`GetJob` latency (p50/p99 of ``--calls`` calls, one per ~10 ms) over the daemon's socket, and the
latency of a child's `Report` (a batch with one metrics item, applied before the reply, every
``--report-every`` calls: ~4 a second, each one more event for every stream) over the reporter
socket, and the CPU the daemon and the watchers used. Goal: `GetJob` p99 < 100 ms with 500
streams, and reports applied without delay.

    uv run python bench/bench_watch_load.py [--streams 0,100,500] [--calls 1000] [--envs DIR]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protos import visionyard_pb2 as pb  # noqa: E402
from protos import visionyard_pb2_grpc as pb_grpc  # noqa: E402
from runner.launch.local import TOKEN_ENV  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402
from tests.repo_fixtures import toy_repo, toy_spec  # noqa: E402

GOAL_P99_MS = 100.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def supervisor_token(home: Path, job_id: str) -> str:
    """The job's token, from its supervisor's environment (the owner may read it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"supervisor.py" in cmdline and str(home / "jobs" / job_id).encode() in cmdline:
            for item in environ:
                if item.startswith(f"{TOKEN_ENV}=".encode()):
                    return item.split(b"=", 1)[1].decode()
    raise SystemExit("the job's supervisor was not found")


def consume_streams(address: str, job_id: str, count: int, ready, stop, nice: int = 0,
                    include_logs: bool = True) -> None:
    """In a process of its own, on one asyncio loop (the way a fleet of watchers on other machines
    costs this one nothing but the daemon's side): open `count` watch streams and read them until
    `stop` is set."""
    import asyncio

    import grpc.aio

    os.nice(nice)

    async def consume(stub) -> None:
        try:
            async for _ in stub.WatchJob(pb.WatchJobRequest(job_id=job_id, include_logs=include_logs)):
                pass
        except grpc.RpcError:
            pass

    async def run() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.RunnerStub(channel)
            tasks = [asyncio.create_task(consume(stub)) for _ in range(count)]
            await asyncio.sleep(0.5)
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", default="0,100,500")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--report-every", type=int, default=25)
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse")
    parser.add_argument("--no-logs", action="store_true",
                        help="watch without log lines (status, metrics, progress: what `submit --follow` shows)")
    parser.add_argument("--consumer-nice", type=int, default=0,
                        help="niceness of the watchers' process (10: as if the watchers ran on other machines)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-watch-"))
    envs = (args.envs or tmp / "envs").absolute()
    envs.mkdir(parents=True, exist_ok=True)
    data = make_imagefolder(tmp / "data", per_class=2, val_per_class=1)
    url, sha = toy_repo(tmp / "toy")
    (tmp / "toy.yaml").write_text(toy_spec(str(url), sha, name="toy"))
    home = tmp / "home"
    daemon = start_daemon(home, envs)
    results = []
    try:
        daemon.client.add_repo(tmp / "toy.yaml")
        job = daemon.client.submit({
            "name": "chatty", "framework": "custom", "repo": "toy", "model": "toy", "task": "image_classification",
            "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": 100000, "batch_size": 2, "device": "cpu"}, "advanced": {"epoch_seconds": 0.6}})
        while daemon.client.get(job.id).epoch < 1 or not daemon.client.get(job.id).mlflow_run_id:
            time.sleep(0.2)  # measured in steady state: the home's MLflow store made, the run started
        token = supervisor_token(home, job.id)
        runner = pb_grpc.RunnerStub(grpc.insecure_channel(daemon.address))
        reporter = pb_grpc.ReporterStub(grpc.insecure_channel(f"unix://{home / 'reporter.sock'}"))
        seq = 0
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        for count in (int(n) for n in args.streams.split(",")):
            context = multiprocessing.get_context("spawn")
            ready, stop = context.Event(), context.Event()
            opened = time.perf_counter()
            consumer = context.Process(target=consume_streams, args=(daemon.address, job.id, count, ready, stop,
                                                                          args.consumer_nice, not args.no_logs))
            consumer.start()
            ready.wait(120)
            opened = time.perf_counter() - opened
            time.sleep(2)
            gets, reports = [], []
            cpu = [cpu_seconds(daemon.proc.pid), cpu_seconds(consumer.pid)]
            measured = time.perf_counter()
            for i in range(args.calls):
                started = time.perf_counter()
                runner.GetJob(pb.GetJobRequest(job_id=job.id), timeout=30)
                gets.append((time.perf_counter() - started) * 1000)
                if i % args.report_every == 0:
                    seq += 1
                    batch = pb.ReportBatch(job_id=job.id, token=token, batch_seq=seq,
                                           items=[pb.ReportItem(metrics=pb.MetricsEvent(step=1, values={"x/bench": i}))])
                    started = time.perf_counter()
                    reporter.Report(batch, timeout=30)
                    reports.append((time.perf_counter() - started) * 1000)
                time.sleep(0.01)
            measured = time.perf_counter() - measured
            cpu = [(cpu_seconds(pid) - before) / measured for pid, before in zip((daemon.proc.pid, consumer.pid), cpu)]
            stop.set()
            results.append((count, gets, reports, opened))
            print(f"{count:4d} streams (opened in {opened:.1f} s): GetJob p50 {statistics.median(gets):6.1f} ms  "
                  f"p99 {percentile(gets, 0.99):6.1f} ms  max {max(gets):6.1f} ms | Report p50 "
                  f"{statistics.median(reports):6.1f} ms  p99 {percentile(reports, 0.99):6.1f} ms  "
                  f"max {max(reports):6.1f} ms | CPU: daemon {cpu[0]:.2f}, consumers {cpu[1]:.2f} cores", flush=True)
            consumer.join(30)
        daemon.client.cancel(job.id)
    finally:
        daemon.stop()
    worst = max(percentile(gets, 0.99) for count, gets, _, _ in results)
    print(f"goal: GetJob p99 < {GOAL_P99_MS:g} ms with every stream count: worst {worst:.1f} ms "
          f"{'ok' if worst < GOAL_P99_MS else 'MISSED'}; load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
