"""Run a command in an env as a child process, watch it, stop it.

The child gets its own session (process group), its stdout+stderr appended to a log file
(a file, never a pipe: the child can't block on a full pipe and the log survives a daemon
restart), and learns who it is through environment variables passed with `env=`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from log_parsers.base import Line, LineSplitter

log = logging.getLogger("visionyard.launcher")

TERMINATE_GRACE_SECONDS = 10.0
DISTRIBUTED_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")


@dataclass
class ExitStatus:
    code: int | None      # exit code when the child exited
    signal: int | None    # signal number when a signal killed it

    @property
    def ok(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
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
    """A running child process and its process group."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log_path: Path):
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def wait(self, timeout: float | None = None) -> ExitStatus:
        rc = self.popen.wait(timeout)
        kill_group(self.pid, signal.SIGKILL)  # whatever the child left behind in its group goes too
        return ExitStatus(code=rc if rc >= 0 else None, signal=-rc if rc < 0 else None)

    def terminate(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """SIGTERM to the whole group, SIGKILL after `grace` seconds."""
        terminate_group(self.pid, grace, lambda: self.popen.poll() is not None)


def kill_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), to tell our child from a later process that
    reuses its pid; None when it is gone or /proc is unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[19])


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in a process group, read from /proc."""
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    if os.path.isdir("/proc/self"):
        return bool(group_members(pgid))
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_group(pgid: int, grace: float, exited: Callable[[], bool] | None = None) -> None:
    if not kill_group(pgid, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if (exited() if exited else not group_alive(pgid)):
            break
        time.sleep(0.05)
    kill_group(pgid, signal.SIGKILL)


class LogTailer(threading.Thread):
    """Follows a growing log file and hands its lines to `sink` in batches.

    Lines are split on \\n, \\r\\n and \\r (a progress-bar refresh is a line with final=False);
    a partial last line waits for the rest, and is flushed when the tailer stops.
    """

    def __init__(self, path: Path, sink: Callable[[list[Line]], None], interval: float = 0.1,
                 read_size: int = 1 << 20):
        super().__init__(name=f"tail-{path.parent.name}", daemon=True)
        self.path, self.sink, self.interval, self.read_size = path, sink, interval, read_size
        self._stop_event = threading.Event()
        self._offset = 0
        self._splitter = LineSplitter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.drain()
            self._stop_event.wait(self.interval)
        self.drain(final=True)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join()

    def drain(self, final: bool = False) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                while chunk := f.read(self.read_size):
                    self._offset += len(chunk)
                    self._emit(self._splitter.feed(chunk))
        except FileNotFoundError:
            return
        if final:
            self._emit(self._splitter.flush())

    def _emit(self, lines: list[Line]) -> None:
        if not lines:
            return
        try:
            self.sink(lines)
        except Exception:  # a bad line must not stop the tail: later lines and metrics still count
            log.exception("handling %d log line(s) of %s failed", len(lines), self.path)
