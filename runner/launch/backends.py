"""One dispatch by backend name. A job's launch record (``launch.json``) names the backend that
started it; a restarted daemon finds the job again through that backend, whichever backend it
runs with now."""

from __future__ import annotations

import json
from pathlib import Path

from runner.launch.context import JobContext
from runner.launch.jobdir import SUPERVISOR_RECORD
from runner.launch.local import Child, read_exit_record

LOCAL, RAY = "local", "ray"


def backend_of(launch: dict) -> str:
    return launch.get("backend") or LOCAL


def attach(launch: dict, job: JobContext, launcher, pid: int | None, pid_start: int | None, token_hash: str):
    """The running command of a job a previous daemon started, or None when it has ended."""
    if backend_of(launch) == RAY:
        from runner.launch.ray.backend import attach as attach_ray

        return attach_ray(launch, job.job_dir, job.log_path, launcher, job.job_id, job.assignment)
    return Child.attach(pid, pid_start, job.job_dir, token_hash)


def started(launch: dict, job_dir: Path, token_hash: str) -> tuple[str, dict] | None:
    """Whether the command of a job a stopped daemon left PREPARING had started (it is RUNNING, or
    ran, really): why, and what the job's record takes; None when it never started."""
    if backend_of(launch) == RAY:
        from runner.launch.ray.backend import submitted

        if launch.get("submission_id") and submitted(launch):  # a head that doesn't answer: prepared again
            return "it was submitted to Ray before the daemon stopped", {}
        return None
    try:
        record = json.loads((job_dir / SUPERVISOR_RECORD).read_text())
    except (OSError, ValueError):
        return None
    pid, pid_start = record.get("supervisor_pid"), record.get("supervisor_start")
    if Child.attach(pid, pid_start, job_dir, token_hash) is None and read_exit_record(job_dir) is None:
        return None
    return "its command had started before the daemon stopped", {"pid": pid, "pid_start": pid_start}
