"""Children the daemon runs for a job on a client's behalf, in the job's env (an export, an evaluation):
output into a log, killed with their session when the client goes or past their time, a result folder
put in place whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc


def run_child(command, env_vars: dict[str, str], log: Path, context, what: str, timeout: float) -> int:
    """Run `command`, its output into `log`; killed (its whole session) when the client goes or it runs
    past `timeout` seconds, which aborts the call naming `what` ("the export")."""
    gone = threading.Event()
    context.add_callback(gone.set)
    with open(log, "ab") as out:
        proc = subprocess.Popen(command.argv, cwd=command.cwd, env=env_vars, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if gone.wait(0.2) or time.monotonic() > deadline:
                break
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED if not gone.is_set() else grpc.StatusCode.CANCELLED,
                          f"{what} ran past {timeout:.0f} s and was stopped" if not gone.is_set()
                          else f"{what} was cancelled")
    return proc.returncode


def last_error(log: Path, prefix: str) -> str:
    """The child's own reason: its last line starting with `prefix` (``export failed:``), else the log's last line."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    failed = [line for line in lines if line.startswith(prefix)]
    return (failed or lines or ["the child ended without a word"])[-1][:1000]


def replace_dir(source: Path, target: Path) -> None:
    """`source` renamed to `target`, whose old contents go (renamed aside first: never a half-removed target)."""
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}-{time.monotonic_ns()}")
        os.rename(target, old)
    os.rename(source, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def keep_failed(partial: Path, final: Path, suffix: str = ".failed") -> Path:
    """Keep a failed run's files as ``<name>.failed`` beside where it would have gone, replacing an older one."""
    kept = final.with_name(final.name + suffix)
    replace_dir(partial, kept)
    return kept
