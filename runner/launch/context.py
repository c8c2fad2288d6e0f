"""What the code that prepares and starts a job's command is given: the job as read-only data, and
the command it prepared. A workload returns a `Command`; a launcher starts it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.launch.devices import Assignment


@dataclass(frozen=True)
class JobContext:
    job_id: str
    name: str
    spec: dict[str, Any]
    repo_spec: dict[str, Any] | None  # a custom repo's spec as validated at submit
    job_dir: Path
    log_path: Path
    assignment: Assignment
    token: str  # the child's reporter token (the store keeps only its hash)
    stop_preparing: threading.Event  # set when the job is cancelled or detached: an env build stops


@dataclass
class Command:
    """What a job runs: `argv` in `cwd` with `env` on top of the child environment, and what it
    runs in (a launcher whose node shares nothing with the daemon builds and fetches those)."""

    argv: list[str]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    pythonpath: list[str] = field(default_factory=list)
    env_spec: Any = None           # the env's spec (envs.EnvSpec)
    checkout: Path | None = None   # a repo's checkout
    work_tree: Path | None = None  # the job's own working tree of it (adapters.files.link_tree), made where it runs
