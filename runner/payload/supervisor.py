"""The per-job supervisor: starts a job's command, stays its parent, outlives the daemon.

    python -I -S supervisor.py JOB_DIR GRACE_SECONDS -- COMMAND...

The daemon starts one per job in a session of its own, with the job's environment, working
directory and log file (stdout and stderr) already set. The supervisor

- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever the command spawns, even a
  process that calls ``setsid`` or double-forks, stays among its descendants;
- starts the command in a new session; the command dies with the supervisor
  (``PR_SET_PDEATHSIG``), so killing the supervisor never leaves the job running unwatched;
- records who it is and who the command is in ``JOB_DIR/supervisor.json``, and how the command
  ended in ``JOB_DIR/exit.json`` (both written atomically; ``lost``: see below), so a daemon that
  was down while the job ran still learns the outcome;
- on SIGTERM or SIGINT (a cancel) sends SIGTERM to every descendant, waits ``GRACE_SECONDS``,
  then SIGKILLs whatever is left until nothing is; when the command ends by itself, anything it
  left behind is killed;
- exits with the command's exit code (128 + signal when a signal ended it).

Started with ``VISIONYARD_SUPERVISOR_BOUND=1`` (on a Ray node: under Ray's job supervisor, or the node
agent), it does not outlive its parent: when the parent is gone (the process that started it exited
and it was handed to another) or sends SIGHUP, it stops the job as on SIGTERM and records it as lost,
not cancelled. Nothing else would ever stop the job there: Ray fails a job whose node or head went
away, and no daemon adopts its processes.

Standard library only, imported by nothing: it runs in the daemon's interpreter with ``-I -S``
so that it starts in milliseconds and ignores the job's ``PYTHON*`` variables.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum, ~8 ms of start-up
import os
import sys
import time

# The daemon's names for these (runner/launch/jobdir.py, runner/launch/local.py); a test holds them equal.
SUPERVISOR_RECORD = "supervisor.json"
EXIT_RECORD = "exit.json"
TOKEN_ENV = "VISIONYARD_SUPERVISOR_TOKEN"  # identifies the job's supervisor in /proc/PID/environ
BOUND_ENV = "VISIONYARD_SUPERVISOR_BOUND"  # "1": the job stops when the supervisor's parent is gone
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.5
WATCHED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: no subreaper, the session still groups the job
        pass


def start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2:].split()[19])


def alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2:].split()[0] != "Z"


def descendants(root: int) -> list[int]:
    """Live (non-zombie) processes below `root`, read from /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), ()):
            found.append(pid)
            todo.append(pid)
    return found


def to_json(record: dict) -> str:
    """A flat dict of numbers, booleans and None as JSON (no `json` import: start-up time)."""
    def value(v):
        return "null" if v is None else ("true" if v is True else "false" if v is False else repr(v))
    return "{" + ", ".join(f'"{key}": {value(v)}' for key, v in record.items()) + "}"


def write_atomically(path: str, record: dict) -> bool:
    tmp = f"{path}.tmp"
    for attempt in range(5):
        try:
            with open(tmp, "w") as f:
                f.write(to_json(record))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return True
        except OSError as exc:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            say(f"could not write {path} ({exc}); attempt {attempt + 1} of 5")
            time.sleep(0.2 * (attempt + 1))
    return False


def say(message: str) -> None:
    try:
        os.write(2, f"[visionyard supervisor] {message}\n".encode())
    except OSError:
        pass


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def spawn(argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:  # the command: its own session, unblocked signals, dies with the supervisor
        try:
            os.setsid()
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            env = dict(os.environ)
            env.pop(TOKEN_ENV, None)
            env.pop(BOUND_ENV, None)
            os.execvpe(argv[0], argv, env)
        except BaseException as exc:  # noqa: BLE001 (the forked child must never return)
            say(f"could not start {argv[0]}: {exc}")
        os._exit(127)
    return pid


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        say("usage: supervisor.py JOB_DIR GRACE_SECONDS -- COMMAND...")
        return 2
    job_dir, grace, command = argv[0], float(argv[1]), argv[3:]
    signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)  # handled synchronously below
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    me = os.getpid()
    parent = os.getppid() if os.environ.get(BOUND_ENV) == "1" else None
    child = spawn(command)
    write_atomically(os.path.join(job_dir, SUPERVISOR_RECORD), {
        "supervisor_pid": me, "supervisor_start": start_ticks(me),
        "child_pid": child, "child_start": start_ticks(child)})
    status: int | None = None
    cancelled_at: float | None = None
    killing = lost = False
    while True:
        while True:  # reap everything that ended: the command and any orphan we adopted
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == child:
                status = raw
        if status is not None and cancelled_at is None and not killing:
            left = descendants(me)
            if left:
                say(f"the command ended; killing {len(left)} process(es) it left behind")
                killing = True
                signal_all(left, signal.SIGKILL)
            else:
                break
        if cancelled_at is not None or killing:
            left = descendants(me)
            if not left and status is not None:
                break
            if killing or time.monotonic() >= cancelled_at + grace:
                if not killing:
                    say(f"{len(left)} process(es) still running after {grace:g} s; sending SIGKILL")
                killing = True
                signal_all(left, signal.SIGKILL)
        info = signal.sigtimedwait(WATCHED, 0.05 if (cancelled_at is not None or killing) else POLL_SECONDS)
        stop = info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT)
        if parent is not None and not stop and cancelled_at is None and status is None:
            if info is not None and info.si_signo == signal.SIGHUP:
                say("the job was lost around it (SIGHUP from the process that started it)")
                stop = lost = True
            elif os.getppid() != parent:
                say(f"the process that started this job (pid {parent}) is gone")
                stop = lost = True
        if stop and cancelled_at is None:
            cancelled_at = time.monotonic()
            left = descendants(me)
            say(f"stopping the job: SIGTERM to {len(left)} process(es), SIGKILL after {grace:g} s")
            signal_all(left, signal.SIGTERM)
    code = os.waitstatus_to_exitcode(status)
    record = {"code": code if code >= 0 else None, "signal": -code if code < 0 else None,
              "cancelled": cancelled_at is not None and not lost, "lost": lost, "time": time.time()}
    write_atomically(os.path.join(job_dir, EXIT_RECORD), record)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
