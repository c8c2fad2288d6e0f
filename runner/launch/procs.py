"""Processes as /proc shows them: whether a pid lives, and when it started (which tells a reused pid
apart). The supervisor (runner/payload/supervisor.py, standard library only, run by path) reads
/proc the same way; a test holds the two to the same answers."""

from __future__ import annotations

import os
from pathlib import Path

#: What runs outside the daemon, found by path: the job's supervisor, a Ray node's agent.
PAYLOAD = Path(__file__).resolve().parent.parent / "payload"
SUPERVISOR = PAYLOAD / "supervisor.py"
NODE_AGENT = PAYLOAD / "node_agent.py"


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot; None when there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def rss_bytes(pid: int) -> int:
    """The resident memory of `pid` in bytes; 0 when there is no such process."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE")
