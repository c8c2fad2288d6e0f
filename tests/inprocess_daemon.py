"""The real daemon (`runner.daemon.server.Daemon`: servers on unix sockets, servicers, scheduler, job
executions, store, supervisors) in the test's process, without building any env: each job's env
is a stand-in whose `python` runs `tests/fake_adapter.py`, a child that reports through the real
SDK. MLflow is left out (importing it and creating its store takes seconds): what the daemon asks
of tracking is recorded instead.

A test restarts the daemon on the same home (`stop()`, then a new `InProcessDaemon`): jobs outlive
it as they do a real one, and the next one adopts them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from envs.errors import EnvBuildCancelled, EnvBuildError
from protos import visionyard_pb2 as pb
from runner.client import Client
from runner.daemon.server import Daemon
from runner.launch.local import LocalLauncher
from runner.launch.procs import alive, start_ticks
from tests.fixtures import make_imagefolder
from tests.helpers import wait_for

FAKE_ADAPTER = Path(__file__).with_name("fake_adapter.py")
FINAL = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)
#: A word in a job's name that makes the launcher act as a daemon killed right after it started
#: the job's supervisor: the job's thread ends there, and the store still says PREPARING.
DIES_AT_LAUNCH = "daemon-dies-at-launch"
#: A word in a job's name that keeps it in PREPARING (its env "builds") until `release_envs()`.
SLOW_ENV = "slow-env"
#: A word in a job's name whose env build fails, as uv's does when a requirement can't be installed.
BROKEN_ENV = "broken-env"
BROKEN_ENV_ERROR = "Building env 'timm' failed: no solution for visionyard-no-such-package"


@dataclass
class FakeEnv:
    name: str
    path: Path
    python: Path
    reused: bool = True


def make_fake_env(folder: Path) -> Path:
    """A folder whose `bin/python` runs the fake adapter with this interpreter."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_ADAPTER}" "$@"\n')
    python.chmod(0o755)
    return folder


class FakeEnvLauncher(LocalLauncher):
    """The local launcher (supervisors, log files, `launch.json`), minus the env build: every env is
    the fake one. A job named with `SLOW_ENV` waits in its "build" until `release_envs()`, or
    until it is cancelled or the daemon stops (as `EnvManager.ensure` does); one named with
    `BROKEN_ENV` fails its build."""

    def __init__(self, devices, env: Path):
        super().__init__(devices)
        self.env = env
        self.prepared: list[str] = []  # job ids, once per env "build"
        self.envs_released = threading.Event()

    def ensure_env(self, envs, spec, job, log):
        self.prepared.append(job.job_id)
        log.write(f"[test] env {spec.name}: the fake adapter's, at {self.env}\n")
        if BROKEN_ENV in job.name.split():
            log.write("  x No solution found when resolving dependencies\n")
            raise EnvBuildError(BROKEN_ENV_ERROR)
        while SLOW_ENV in job.name.split() and not self.envs_released.wait(0.02):
            if job.stop_preparing.is_set():
                raise EnvBuildCancelled(f"Cancelled while building env {spec.name!r}")
        return FakeEnv(f"{spec.name}-fake", self.env, self.env / "bin" / "python")

    def start(self, command, env, job, launch):
        child = super().start(command, env, job, launch)
        if DIES_AT_LAUNCH in job.name.split():
            raise SystemExit("the daemon died right after starting the job's supervisor")
        return child


class RecordingTracker:
    """What the daemon asks of MLflow, recorded: runs started, metrics logged, runs ended."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started: list[str] = []
        self.metrics: dict[str, list[tuple[int, dict[str, float]]]] = {}
        self.ended: dict[str, tuple[str, list[Path], dict[str, str]]] = {}

    def start_run(self, job_id, run_name, params, tags) -> None:
        with self._lock:
            self.started.append(job_id)

    def attach(self, job_id, run_id) -> None:
        pass

    def log_metrics(self, job_id, step, values, when=None) -> None:
        with self._lock:
            self.metrics.setdefault(job_id, []).append((step, dict(values)))

    def end_run(self, job_id, state, artifacts, tags=None, results=None) -> None:
        with self._lock:
            self.ended[job_id] = (state, [Path(a) for a in artifacts], dict(tags or {}))

    def ended_run(self, job_id: str, timeout: float = 15) -> tuple[str, list[Path], dict[str, str]]:
        """How the job's run was ended: its state, artifacts and tags (the daemon ends it just after
        the job's final state is stored)."""
        return wait_for(lambda: self.ended.get(job_id), timeout=timeout, interval=0.02)

    def flush(self, timeout: float = 60) -> bool:
        return True

    def close(self, timeout: float = 30) -> None:
        pass


class InProcessDaemon:
    """A started `Daemon` on `home` whose jobs run the fake adapter, and a `Client` of it."""

    def __init__(self, home: Path, max_concurrent_jobs: int = 1, cancel_jobs_on_stop: bool = False):
        self.home = home
        self._umask = os.umask(0o022)  # the daemon sets the process's umask (0o077); put back at stop
        os.umask(self._umask)
        self._switch_interval = sys.getswitchinterval()
        try:
            self.daemon = Daemon(home, max_concurrent_jobs=max_concurrent_jobs, gpus="",
                                 cancel_jobs_on_stop=cancel_jobs_on_stop)
        except BaseException:
            self._restore_process()
            raise
        rt = self.daemon.runtime
        self.launcher = rt.launcher = FakeEnvLauncher(rt.devices, make_fake_env(home.parent / "fake-env"))
        self.daemon.tracker.close()  # idle: it never imported MLflow
        self.tracker = rt.tracker = self.daemon.tracker = RecordingTracker()
        self.daemon.start()
        self.client = Client(address=f"unix://{rt.paths.socket}")
        self._stopped = False

    def job_dir(self, job_id: str) -> Path:
        return self.daemon.paths.job_dir(job_id)

    def release_envs(self) -> None:
        self.launcher.envs_released.set()

    def stop(self) -> None:
        """Stop as `visionyard serve` does on SIGTERM: jobs go on (unless `cancel_jobs_on_stop`)."""
        if self._stopped:
            return
        self._stopped = True
        self.client.close()
        try:
            self.daemon.stop()
        finally:
            self._restore_process()

    def _restore_process(self) -> None:
        os.umask(self._umask)
        sys.setswitchinterval(self._switch_interval)

    # ------------------------------------------------------------ what a test waits for

    def wait_state(self, job_id: str, *states: int, timeout: float = 15) -> pb.Job:
        return wait_for(lambda: (job := self.client.get(job_id)).state in states and job, timeout=timeout,
                        interval=0.02)

    def wait_final(self, job_id: str, timeout: float = 15) -> pb.Job:
        return self.wait_state(job_id, *FINAL, timeout=timeout)


def dataset(root: Path) -> Path:
    """The smallest imagefolder a timm spec validates against."""
    return make_imagefolder(root, per_class=2, val_per_class=1, size=8)


def fake_job(data: Path, name: str, epochs: int = 2) -> dict:
    """A timm job spec; its `name` says what the fake adapter does (see `tests/fake_adapter.py`)."""
    return {"name": name, "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": 32, "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": 2, "device": "cpu"}}


def events(client: Client, job_id: str, **options) -> list[pb.JobEvent]:
    """The job's events stored so far."""
    return list(client.watch(job_id, snapshot=True, **options))


def metric_steps(client: Client, job_id: str) -> list[int]:
    return [e.metrics.step for e in events(client, job_id) if e.WhichOneof("kind") == "metrics"]


def status_messages(client: Client, job_id: str) -> list[tuple[str, str]]:
    return [(pb.JobState.Name(e.status.state), e.status.message) for e in events(client, job_id)
            if e.WhichOneof("kind") == "status"]


def job_pids(job_dir: Path, timeout: float = 15) -> list[int]:
    """The pids a `spawn` job wrote (its child and the two processes that tried to escape)."""
    path = job_dir / "pids"
    wait_for(path.exists, timeout=timeout, interval=0.02)
    return [int(p) for p in path.read_text().split()]


def gone(pids: list[int], timeout: float = 15) -> bool:
    """Whether every pid has ended within `timeout` s (a zombie counts as ended). A supervisor a
    stopped daemon of this process had started is reaped here, as init reaps it when the daemon is
    a process of its own that is gone: a later daemon must not find it as a zombie."""
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours, or reaped already
            pass
    return True


def end_leftover_jobs(home: Path, timeout: float = 15) -> None:
    """Stop what jobs on `home` still run once their daemon has stopped (it leaves them running):
    SIGTERM to each supervisor, which stops everything of its job; SIGKILL to what is left."""
    supervisors, others = [], []
    for job_dir in (home / "jobs").glob("*"):
        try:
            record = json.loads((job_dir / "supervisor.json").read_text())
        except (OSError, ValueError):
            continue
        if start_ticks(record["supervisor_pid"]) == record["supervisor_start"]:
            supervisors.append(record["supervisor_pid"])
        if (job_dir / "pids").exists():
            others += [int(p) for p in (job_dir / "pids").read_text().split()]
    for pid in supervisors:
        os.kill(pid, signal.SIGTERM)
    if not gone(supervisors + others, timeout):
        for pid in supervisors + others:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
