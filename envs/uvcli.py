"""Driving the uv binary: find it, resolve python versions, run a command with streamed output."""

from __future__ import annotations

import collections
import os
import re
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import TextIO

from envs.errors import EnvBuildCancelled, EnvBuildError

#: Seconds between SIGTERM and SIGKILL when a build is cancelled.
TERM_GRACE_SECONDS = 3.0
#: How many lines of uv's output a failure message carries.
TAIL_LINES = 20

_REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")

_versions: dict[tuple[str, str], str] = {}
_versions_lock = threading.Lock()


def find_uv() -> str:
    """The uv binary: the one installed in the host env (version pinned with it), else ``PATH``."""
    try:
        import uv  # the PyPI package that ships the binary

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise EnvBuildError(
            "uv not found: install the 'uv' package in the host env or put it on PATH"
        )
    return found


def uv_environ() -> dict[str, str]:
    """The environment for uv: ours (so ``UV_*`` settings apply) minus an active virtualenv.

    The envs are always named explicitly (``--python <env>/bin/python``); an inherited
    ``VIRTUAL_ENV`` (the daemon itself may run under ``uv run``) would only add warnings.
    """
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return env


def resolve_python_version(uv: str, request: str, cwd: Path) -> str:
    """The full version (``3.11.7``) uv picks for ``request`` (``3.11``), cached per process.

    ``--system`` leaves out virtualenvs (the host's own ``.venv`` included), because
    ``uv venv`` builds from the same base interpreters. The cache means a new interpreter
    installed while the daemon runs is seen after a restart.
    """
    cache_key = (uv, request)
    with _versions_lock:
        if cache_key in _versions:
            return _versions[cache_key]
    cmd = [uv, "python", "find", "--system", "--show-version", request]
    done = subprocess.run(
        cmd, cwd=cwd, env=uv_environ(), capture_output=True, text=True, check=False
    )
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-TAIL_LINES:]
        raise EnvBuildError(
            f"No Python interpreter matches {request!r} (`uv python find` exited with code "
            f"{done.returncode}):\n" + "\n".join(tail),
            command=cmd,
            returncode=done.returncode,
            output_tail=tail,
        )
    with _versions_lock:
        _versions[cache_key] = lines[-1]
    return lines[-1]


def run_streaming(
    cmd: list[str],
    *,
    cwd: Path,
    log: TextIO | None,
    cancel: threading.Event | None,
) -> tuple[int, list[str]]:
    """Run ``cmd`` with stdout+stderr merged, each line copied to ``log`` as it arrives.

    Returns the exit code and the last :data:`TAIL_LINES` lines. The command runs in its own
    session; when ``cancel`` is set its whole process group gets SIGTERM, then SIGKILL after
    :data:`TERM_GRACE_SECONDS`, and :class:`EnvBuildCancelled` is raised.
    """
    _write(log, "$ " + " ".join(cmd) + "\n")
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=uv_environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,
    )
    reader = threading.Thread(target=_pump, args=(proc, log, tail), daemon=True)
    reader.start()
    try:
        # The reader ends at EOF, i.e. when uv exits. Joining it (a lock wait) wakes at once,
        # where Popen.wait(timeout) would poll with sleeps and add up to 50 ms per command.
        while True:
            reader.join(timeout=0.1)
            if not reader.is_alive():
                try:
                    returncode = proc.wait(timeout=0.1)  # exited: returns at once
                    break
                except subprocess.TimeoutExpired:
                    pass  # closed its output but still running: keep watching for cancel
            if cancel is not None and cancel.is_set():
                _stop_group(proc)
                reader.join(timeout=TERM_GRACE_SECONDS)
                _write(log, "[visionyard] env build cancelled\n")
                raise EnvBuildCancelled(
                    f"Cancelled while running `{_short(cmd)}`",
                    command=cmd,
                    output_tail=list(tail),
                )
    except BaseException:
        if proc.poll() is None:  # e.g. KeyboardInterrupt in the caller: never leave uv running
            _stop_group(proc)
        raise
    return returncode, list(tail)


def _pump(proc: subprocess.Popen[str], log: TextIO | None, tail: collections.deque[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip("\n"))
        if log is None:
            continue
        try:
            _write(log, line if line.endswith("\n") else line + "\n")
        except (OSError, ValueError):
            log = None  # a broken job log must not stop us draining uv's pipe (it would block)
    proc.stdout.close()


def _stop_group(proc: subprocess.Popen[str]) -> None:
    for sig, grace in ((signal.SIGTERM, TERM_GRACE_SECONDS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
            # The leader is gone; SIGKILL whatever else is left in its group (a child it spawned).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        except subprocess.TimeoutExpired:
            continue


def _write(log: TextIO | None, text: str) -> None:
    if log is None:
        return
    log.write(text)
    log.flush()


def _short(cmd: list[str]) -> str:
    """``uv pip install`` rather than the full command line with temp paths."""
    head = [Path(cmd[0]).name] + [part for part in cmd[1:3] if not part.startswith("-")]
    return " ".join(head)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def mentioned_requirements(lines: list[str], tail: list[str]) -> list[str]:
    """The requirement lines whose project name uv's output mentions: the likely culprits."""
    text = _normalize("\n".join(tail))
    culprits = []
    for line in lines:
        match = _REQ_NAME_RE.match(line)
        if match is None:
            continue
        name = _normalize(match.group(1))
        if re.search(rf"(?<![a-z0-9-]){re.escape(name)}(?![a-z0-9-])", text):
            culprits.append(line.strip())
    return culprits
