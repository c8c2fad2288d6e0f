"""Run a job's command under its supervisor, watch it, stop it, find it again after a restart.

The command runs under a per-job supervisor (runner/payload/supervisor.py) in a session of its own,
its stdout+stderr appended to a log file (a file, never a pipe: the child can't block on a full
pipe and the log survives a daemon restart), and learns who it is through environment variables
passed with `env=`. The supervisor, not the daemon, is the command's parent, so the job goes on
when the daemon stops; `Child.attach` finds it again, and `LogTailer` resumes the log where the
last daemon stopped reading.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from adapters.child_env import DISTRIBUTED_VARS
from log_parsers.base import Line, LineSplitter
from runner.auth import token_matches
from runner.launch.jobdir import EXIT_RECORD, SUPERVISOR_RECORD
from runner.launch.context import Command, JobContext
from runner.launch.procs import SUPERVISOR, alive
from runner.launch.procs import start_ticks as process_start_ticks  # when a pid started: tells a reuse apart

log = logging.getLogger("visionyard.launcher")

TERMINATE_GRACE_SECONDS = 10.0
TOKEN_ENV = "VISIONYARD_SUPERVISOR_TOKEN"  # names the job's supervisor in /proc/PID/environ (and its own copy)
BOUND_ENV = "VISIONYARD_SUPERVISOR_BOUND"  # "1": the supervisor stops the job once its parent is gone (Ray)
WAIT_POLL_SECONDS = 0.2  # how often a waiter looks at a process it is not the parent of


@dataclass
class ExitStatus:
    code: int | None      # exit code when the child exited
    signal: int | None    # signal number when a signal killed it
    cancelled: bool = False  # the supervisor was asked to stop it
    known: bool = True    # False: the job ended while no daemon watched and left no exit record
    note: str = ""        # how it ended, when neither a code nor a signal tells (e.g. a cluster lost it)

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.note:
            return self.note
        if not self.known:
            return "ended while the daemon was down and left no exit record"
        if self.signal is not None:
            try:
                return f"killed by signal {signal.Signals(self.signal).name}"
            except ValueError:
                return f"killed by signal {self.signal}"
        return f"exited with code {self.code}"


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """The daemon's environment minus distributed-launch variables, plus `extra`.

    When `extra` says where bytecode goes (``PYTHONPYCACHEPREFIX``, the home's shared cache), the
    child writes it there even if the daemon runs with ``PYTHONDONTWRITEBYTECODE``: otherwise every
    job would recompile the stdlib, torch and its framework at start.
    """
    env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_VARS and not k.startswith("VIRTUAL_ENV")}
    env.update(extra)
    if "PYTHONPYCACHEPREFIX" in extra:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Child:
    """A job's command, run by its supervisor (runner/payload/supervisor.py) in a session of its own.

    The daemon holds the supervisor, never the command: cancel is SIGTERM to the supervisor,
    which stops every descendant of the job; the outcome is the supervisor's exit record. A
    daemon that restarts re-attaches to a live supervisor with `attach`.
    """

    def __init__(self, pid: int, start: int | None, job_dir: Path, popen: subprocess.Popen | None = None,
                 grace: float = TERMINATE_GRACE_SECONDS):
        self.pid, self.start_ticks, self.job_dir, self.popen, self.grace = pid, start, job_dir, popen, grace

    @classmethod
    def start(cls, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path, job_dir: Path,
              token: str, grace: float = TERMINATE_GRACE_SECONDS) -> "Child":
        for stale in (EXIT_RECORD, SUPERVISOR_RECORD):
            (job_dir / stale).unlink(missing_ok=True)
        argv = [sys.executable, "-I", "-S", str(SUPERVISOR), str(job_dir), f"{grace:g}", "--", *cmd]
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(argv, cwd=cwd, env={**env, TOKEN_ENV: token}, stdin=subprocess.DEVNULL,
                                     stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(popen.pid, process_start_ticks(popen.pid), job_dir, popen, grace)

    @classmethod
    def attach(cls, pid: int | None, start: int | None, job_dir: Path, token_hash: str,
               grace: float = TERMINATE_GRACE_SECONDS) -> "Child | None":
        """The job's supervisor if it still runs: same pid, same start time, and in its environment
        the token whose hash the store keeps (never a later process that reuses the pid); else None."""
        if not pid or start is None or process_start_ticks(pid) != start:
            return None
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            return None
        prefix = f"{TOKEN_ENV}=".encode()
        tokens = [item[len(prefix):].decode(errors="replace") for item in environ if item.startswith(prefix)]
        if not tokens or not token_matches(tokens[0], token_hash):
            return None
        return cls(pid, start, job_dir, None, grace)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return process_start_ticks(self.pid) == self.start_ticks and alive(self.pid)

    def wait(self, timeout: float | None = None, stop: threading.Event | None = None) -> ExitStatus | None:
        """How the job ended; None when `timeout` passed or `stop` was set first. The wait sleeps on a
        pidfd, which wakes it the moment the supervisor exits (and to look at `stop` five times a
        second), rather than polling the process."""
        deadline = None if timeout is None else time.monotonic() + timeout
        exited = _ExitWatch(self.pid)
        try:
            while self.alive():
                if stop is not None and stop.is_set():
                    return None
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                exited.wait(WAIT_POLL_SECONDS if deadline is None else min(WAIT_POLL_SECONDS, deadline - now))
        finally:
            exited.close()
        return self.exit_status()

    def exit_status(self) -> ExitStatus:
        """The supervisor's exit record; its exit code when the record couldn't be written."""
        record = read_exit_record(self.job_dir)
        if record is not None:
            return record
        rc = self.popen.returncode if self.popen is not None else None
        if rc is None:
            return ExitStatus(None, None, known=False)
        if rc < 0:
            return ExitStatus(None, -rc)
        return ExitStatus(None, rc - 128) if 128 < rc <= 128 + 64 else ExitStatus(rc, None)

    def terminate(self, grace: float | None = None) -> None:
        """Ask the supervisor to stop the job (SIGTERM to everything in it, SIGKILL after its grace
        period); a supervisor that doesn't finish within grace + 10 s is killed, and the command
        with it (it dies with its supervisor)."""
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if self.wait(timeout=(self.grace if grace is None else grace) + 10) is None:
            log.warning("supervisor %d did not stop the job in time; killing it", self.pid)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class _ExitWatch:
    """Sleeps until a process exits or a timeout passes: on its pidfd where the kernel has them (Linux
    5.3+), which costs no wakeups while the process runs; else a plain sleep (the caller looks again)."""

    def __init__(self, pid: int) -> None:
        self._poll = self._fd = None
        try:
            self._fd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here, or the process is already gone
            return
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)

    def wait(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._poll is None:
            time.sleep(seconds)
        elif self._poll.poll(seconds * 1000):
            self._poll = None  # it has exited: later waits (if /proc still shows it) sleep instead of spinning

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = self._poll = None


def read_exit_record(job_dir: Path) -> ExitStatus | None:
    """How the supervisor said the command ended; None when there is no record, and an unknown
    end when the record is not one a supervisor writes."""
    try:
        record = json.loads((job_dir / EXIT_RECORD).read_text())
    except (OSError, ValueError):
        return None

    def number(key: str) -> int | None:
        value = record.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    if not isinstance(record, dict) or (number("code") is None and number("signal") is None):
        return ExitStatus(None, None, known=False, note=f"left an exit record the daemon can't read ({EXIT_RECORD})")
    if record.get("lost") is True:  # a bound supervisor (on a Ray node) whose parent, Ray's process, ended
        return ExitStatus(number("code"), number("signal"), known=False,
                          note="was lost: Ray ended the process that ran it on its node (the node's Ray stopped, "
                               "or lost its head), and the job was stopped there")
    return ExitStatus(number("code"), number("signal"), record.get("cancelled") is True)


class LogTailer(threading.Thread):
    """Follows a growing log file and hands its lines to `sink(lines, offset)` in batches.

    Lines are split on \\n, \\r\\n and \\r (a progress-bar refresh is a line with final=False);
    a partial last line waits for the rest, and is flushed when the tailer stops for good.
    `offset` is where a tailer started later (by a restarted daemon) must resume so that no line
    is handed over twice or skipped: the end of the last line boundary the sink has seen. Store
    it with what the lines produced, in one transaction.

    It looks every `interval` seconds while the log grows, and less often (up to every
    `idle_interval`) while it doesn't: a quiet training process is not woken ten times a second.
    """

    def __init__(self, path: Path, sink: Callable[[list[Line], int], None], interval: float = 0.1,
                 read_size: int = 1 << 20, offset: int = 0, idle_interval: float = 0.5):
        super().__init__(name=f"tail-{path.parent.name}", daemon=True)
        self.path, self.sink, self.interval, self.read_size = path, sink, interval, read_size
        self.idle_interval = max(interval, idle_interval)
        self._stop_event = threading.Event()
        self._final = True
        self._offset = self.safe_offset = offset
        self._held_cr = False  # the last chunk ended in \r: the splitter holds that line back
        self._splitter = LineSplitter()

    def run(self) -> None:
        wait = self.interval
        while not self._stop_event.is_set():
            wait = self.interval if self.drain() else min(wait * 2, self.idle_interval)
            self._stop_event.wait(wait)
        self.drain(final=self._final)

    def stop(self, final: bool = True) -> None:
        """Stop after a last read; `final=False` (the daemon detaches from a job that goes on)
        keeps a partial last line for the next tailer instead of handing it over now."""
        self._final = final
        self._stop_event.set()
        if self.is_alive():
            self.join()

    def drain(self, final: bool = False) -> bool:
        """Hand over what the log has gained; True when it had grown."""
        begun = self._offset
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                while chunk := f.read(self.read_size):
                    start, self._offset = self._offset, self._offset + len(chunk)
                    boundary = _last_boundary(chunk, self._held_cr)
                    self._held_cr = chunk.endswith(b"\r")
                    self._emit(self._splitter.feed(chunk), None if boundary is None else start + boundary)
        except FileNotFoundError:
            return False
        if final:
            self._emit(self._splitter.flush(), self._offset)
        return self._offset != begun

    def _emit(self, lines: list[Line], safe_offset: int | None) -> None:
        if safe_offset is not None:
            self.safe_offset = safe_offset
        if not lines and safe_offset is None:
            return
        try:
            self.sink(lines, self.safe_offset)
        except Exception:  # a bad line must not stop the tail: later lines and metrics still count
            log.exception("handling %d log line(s) of %s failed", len(lines), self.path)


def _last_boundary(chunk: bytes, after_cr: bool) -> int | None:
    """Bytes of `chunk` up to its last point where a line splitter holds nothing back: after a
    \\n, or after a \\r that a byte other than \\n follows (`after_cr`: the previous chunk ended
    in one); None when there is none."""
    newline = chunk.rfind(b"\n") + 1
    cr = chunk.rfind(b"\r", newline, len(chunk) - 1)  # no \n follows it: it is past the last one
    if cr >= 0:
        return cr + 1
    if newline:
        return newline
    return 0 if after_cr else None


def replay_lines(path: Path, upto: int, read_size: int = 1 << 20):
    """The lines of `path`'s first `upto` bytes (a line boundary), as a tailer handed them over:
    to rebuild a parser's state before tailing on from `upto`."""
    splitter = LineSplitter()
    chunk = b""
    with open(path, "rb") as f:
        left = upto
        while left > 0 and (chunk := f.read(min(read_size, left))):
            left -= len(chunk)
            yield from splitter.feed(chunk)
    if chunk.endswith(b"\r"):  # a boundary: what follows isn't \n, so that piece was a refresh
        yield from splitter.feed(b"-")


def ensure_env_here(envs, spec, job: JobContext, log):
    """The job's env, built (or reused) by this daemon's env manager."""
    env = envs.ensure(spec, log=log, cancel=job.stop_preparing)
    log.write(f"[visionyard] env {env.name} {'reused' if env.reused else 'built'} at {env.path}\n")
    return env


class LocalLauncher:
    """Jobs as processes of this machine, under their supervisors (the default backend)."""

    name = "local"

    def __init__(self, devices):
        self.devices = devices  # a DevicePool: this runner's GPUs

    def ensure_env(self, envs, spec, job: JobContext, log):
        return ensure_env_here(envs, spec, job, log)

    def reported_path(self, job_id: str, path: str) -> str:
        return path

    def environment(self, extra: dict[str, str], assignment) -> dict[str, str]:
        return child_environment({**extra, "CUDA_VISIBLE_DEVICES": assignment.visible_devices})

    def launch_record(self, job_id: str, log_path: Path) -> dict:
        return {"backend": self.name}

    def start(self, command: Command, env: dict[str, str], job: JobContext, launch: dict) -> Child:
        return Child.start(command.argv, cwd=command.cwd, env=env, log_path=job.log_path, job_dir=job.job_dir,
                           token=job.token)

    def describe(self, child: Child, assignment) -> str:
        return f"pid {child.pid} on {assignment.device}"

    def placement(self, child: Child) -> str:
        return f"pid {child.pid} on {socket.gethostname()}"
