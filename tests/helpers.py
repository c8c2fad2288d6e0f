"""Helpers the tests share: a real daemon in a temp home, waiting for a condition, a timm job spec,
free ports and certificates. Test modules import these from here, never from each other."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from protos import visionyard_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout=120, interval=0.1, why=None):
    """The first true value of `predicate()`, polled until `timeout` s; AssertionError after that,
    with what `why()` says about the state things were left in (a job's state and log, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s" + (f"; {why()}" if why else ""))


def states(events) -> list[str]:
    """The job states named by the status events among `events`, in order."""
    return [pb.JobState.Name(e.status.state) for e in events if e.WhichOneof("kind") == "status"]


def job_spec(data: Path, **over) -> dict:
    """A tiny timm classification job on the imagefolder `data` (two CPU epochs)."""
    spec = {"name": "colours", "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": 32, "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": 2, "batch_size": 8, "learning_rate": 0.003, "device": "cpu"},
            "advanced": {"optimizer": {"type": "adamw", "weight_decay": 0.01}, "scheduler": {"type": "cosine"},
                         "augmentation": {"random_flip": True}}}
    spec.update(over)
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str) -> None:
    made = subprocess.run(["openssl", *args], capture_output=True, text=True)
    assert made.returncode == 0, f"openssl could not make a certificate: {made.stderr[-200:]}"


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key for `name` (valid for localhost and 127.0.0.1)."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert))
    return cert, key


class DaemonProcess:
    """`visionyard serve` as a subprocess on `home`, with a client connected to it."""

    def __init__(self, home: Path, extra_args: list[str] = ()):
        self.home = home
        self.log_path = home / "daemon.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "serve", "--home", str(home), *extra_args],
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        from runner.client import Client

        self.address = f"unix://{home / 'daemon.sock'}"
        self.client = Client(address=self.address)
        self.client.wait_ready(timeout=60)

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def start_daemon(home: Path, envs_root: Path, extra_args: list[str] = (),
                 cancel_jobs_on_stop: bool = True) -> DaemonProcess:
    """A daemon on `home` whose envs are `envs_root`. Its `stop()` cancels running jobs, so that no
    test leaves a training behind (pass False for the default: jobs outlive the daemon)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "envs").exists():
        (home / "envs").symlink_to(envs_root, target_is_directory=True)
    flags = ["--cancel-jobs-on-stop"] if cancel_jobs_on_stop and "--cancel-jobs-on-stop" not in extra_args else []
    return DaemonProcess(home, [*extra_args, *flags])


def kill_daemon(daemon: DaemonProcess) -> None:
    """SIGKILL to the daemon's process group: no chance to clean up."""
    daemon.client.close()
    os.killpg(daemon.proc.pid, signal.SIGKILL)
    daemon.proc.wait()
    daemon._log.close()


def pid_of(daemon: DaemonProcess, job_id: str) -> int:
    """The pid of the job's supervisor, as its RUNNING event names it."""
    for event in daemon.client.watch(job_id, snapshot=True):
        if event.WhichOneof("kind") == "status" and event.status.state == pb.RUNNING:
            return int(event.status.message.split()[1])
    raise AssertionError("no RUNNING event with a pid")


FAKE_ADAPTER = ROOT / "tests" / "fake_adapter.py"


def fake_timm_envs(root: Path) -> Path:
    """An env root for `start_daemon` whose timm env, under the key the daemon computes for it, is
    a stand-in: its `python` runs `tests/fake_adapter.py` with this interpreter, a child that reports
    through the real SDK and does what its job's name says ("hold": wait after the first epoch for
    `go-on` in the job dir; see that file). For e2e tests of the daemon itself (slots, restarts,
    cancels, reports), where importing torch and training would only take time. Other envs (a custom
    repo's) are built in `root` as usual."""
    import json
    from datetime import UTC, datetime

    from envs.manager import MARKER, MARKER_FORMAT
    from envs.specs import get_spec
    from envs.uvcli import find_uv, resolve_python_version

    root.mkdir(parents=True, exist_ok=True)
    spec = get_spec("timm")
    version = resolve_python_version(find_uv(), spec.python, root)
    key = spec.key(version)
    env = root / f"{spec.name}-{key}"
    python = env / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_ADAPTER}" "$@"\n')
    python.chmod(0o755)
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    (env / MARKER).write_text(json.dumps({
        "format": MARKER_FORMAT, "name": env.name, "key": key, "spec": spec.to_dict(), "python_version": version,
        "requirements": sorted(spec.requirements), "overrides": sorted(spec.overrides),
        "installed": ["(a stand-in: tests/fake_adapter.py)"], "created_at": now, "last_used_at": now,
        "build_seconds": 0.0}))
    return root


def discard_daemon(daemon: DaemonProcess) -> None:
    """End a daemon whose clean stop is not what the test checks: cancel each job it has not
    finished, wait until the job is final (its processes gone), then SIGKILL the daemon. A clean
    stop would first wait for the daemon's MLflow thread to log and end every run (importing
    MLflow and creating its store take seconds on a busy machine), for runs no test reads."""
    from runner.client import ClientError
    from runner.spec.wire import TERMINAL_STATES

    if daemon.proc.poll() is not None:  # killed or stopped already
        daemon.client.close()
        daemon._log.close()
        return
    try:
        for job in daemon.client.list():
            if job.state not in TERMINAL_STATES:
                try:
                    daemon.client.cancel(job.id)
                except ClientError:  # it ended meanwhile
                    pass
                wait_for(lambda: daemon.client.get(job.id).state in TERMINAL_STATES, timeout=60,
                         why=lambda: f"job {job.id} still {pb.JobState.Name(daemon.client.get(job.id).state)}")
    finally:
        kill_daemon(daemon)
