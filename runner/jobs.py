"""One job from PREPARING to its final state: env, child process, log tail, outcome."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from envs.manager import EnvManager
from log_parsers.base import Line
from runner.devices import Assignment, DevicePool
from runner.launcher import Child, ExitStatus, LogTailer, child_environment, process_start_ticks
from runner.settings import Paths
from runner.store import JobRecord, JobState, JobStore
from runner.tracking import Tracker, flatten
from runner.workloads import PrepareError, Workload, workload_for

if TYPE_CHECKING:
    from custom_repos.git import RepoCache
    from custom_repos.registry import RepoRegistry

log = logging.getLogger("visionyard.jobs")
LOG_TAIL_LINES = 25
MAX_LOG_LINE = 4000  # characters of one log line kept in the event stream


@dataclass
class Runtime:
    """What a job needs from the daemon."""

    paths: Paths
    store: JobStore
    envs: EnvManager
    tracker: Tracker
    devices: DevicePool
    reporter_address: str
    threads_per_job: int | None = None  # OMP_NUM_THREADS for children; None keeps the daemon's
    repos: "RepoRegistry | None" = None
    repo_cache: "RepoCache | None" = None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    rows = [row for row in text.replace("\r", "\n").splitlines() if row.strip()]
    return "\n".join(rows[-lines:])


def _repo_tags(record: JobRecord) -> dict[str, str]:
    repo = record.repo_spec
    return {"repo": repo["name"], "repo.url": repo["url"], "repo.commit": repo["commit"]} if repo else {}


class JobExecution(threading.Thread):
    """Runs one job; `cancel()` may be called from any thread at any time."""

    def __init__(self, rt: Runtime, record: JobRecord, assignment: Assignment, on_done):
        super().__init__(name=f"job-{record.id}", daemon=True)
        self.rt, self.record, self.assignment, self.on_done = rt, record, assignment, on_done
        self.job_id = record.id
        self.job_dir = rt.paths.job_dir(record.id)
        self.log_path = self.job_dir / "output.log"
        self.cancel_requested = threading.Event()
        self.cancel_reason = "cancelled by user"
        self._child: Child | None = None
        self._lock = threading.Lock()
        self.workload: Workload | None = None
        self.extra_artifacts: list[Path] = []
        self._tailer: LogTailer | None = None

    def cancel(self, reason: str = "cancelled by user") -> None:
        with self._lock:
            if self.cancel_requested.is_set():
                return
            self.cancel_reason = reason
            self.cancel_requested.set()
            child = self._child
        if child is not None:
            threading.Thread(target=child.terminate, name=f"stop-{self.job_id}", daemon=True).start()

    def run(self) -> None:
        self._tailer = LogTailer(self.log_path, self._on_lines)
        final_state = JobState.FAILED
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
            self._tailer.start()
            final_state = self._run()
        except Exception as exc:  # a bug here must fail the job, never the daemon
            log.exception("job %s failed inside the runner", self.job_id)
            final_state = self._finish(JobState.FAILED, f"runner error: {type(exc).__name__}: {exc}")
        finally:
            self._tailer.stop()
            self.rt.devices.release(self.assignment)
            record = self.rt.store.get(self.job_id)
            best = [Path(record.best_checkpoint)] if record.best_checkpoint else []
            self.rt.tracker.end_run(self.job_id, record.state.value, [self.log_path, *best, *self.extra_artifacts],
                                    tags={"visionyard.state": record.state.value})
            self.on_done(self.job_id, final_state)

    def _on_lines(self, lines: list[Line]) -> None:
        self.rt.store.add_logs(self.job_id, [line.text[:MAX_LOG_LINE] for line in lines if line.final and line.text])
        if self.workload is not None:
            self.workload.on_lines(lines)

    def _run(self) -> JobState:
        store, spec = self.rt.store, self.record.spec
        store.update(self.job_id, job_dir=str(self.job_dir), device=self.assignment.device)
        self.rt.tracker.start_run(self.job_id, self.record.name, flatten(spec), {
            "framework": spec["framework"], "model": spec["model"], "task": spec["task"],
            "visionyard.job_id": self.job_id, **_repo_tags(self.record)})
        with open(self.log_path, "a", buffering=1) as job_log:
            try:
                workload = workload_for(self)
                command = workload.prepare(job_log)
            except PrepareError as exc:
                if self.cancel_requested.is_set():
                    return self._finish(JobState.CANCELLED, self.cancel_reason)
                job_log.write(f"[visionyard] {exc}\n")
                return self._finish(JobState.FAILED, f"{exc}\nlast log lines:\n{log_tail(self.log_path)}")
        pythonpath = [*command.pythonpath, *filter(None, [command.env.get("PYTHONPATH")])]
        env_vars = child_environment({
            **command.env,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "CUDA_VISIBLE_DEVICES": self.assignment.visible_devices,
            **({"OMP_NUM_THREADS": str(self.rt.threads_per_job)} if self.rt.threads_per_job else {}),
        })
        if not pythonpath:
            env_vars.pop("PYTHONPATH")
        with self._lock:
            if self.cancel_requested.is_set():
                return self._finish(JobState.CANCELLED, self.cancel_reason)
            self.workload = workload
            self._child = Child(command.argv, cwd=command.cwd, env=env_vars, log_path=self.log_path)
        store.transition(self.job_id, JobState.RUNNING, f"pid {self._child.pid} on {self.assignment.device}",
                         pid=self._child.pid, pid_start=process_start_ticks(self._child.pid))
        status = self._child.wait()
        return self._outcome(status)

    def _outcome(self, status: ExitStatus) -> JobState:
        self._tailer.stop()  # every line the child wrote reaches the parser before the verdict
        self.workload.collect()
        exit_code = status.code if status.code is not None else -(status.signal or 0)
        if self.cancel_requested.is_set():
            return self._finish(JobState.CANCELLED, self.cancel_reason, exit_code=exit_code)
        ok, why_not = self.workload.succeeded(status.ok)
        if ok:
            return self._finish(JobState.SUCCEEDED, "finished", exit_code=exit_code)
        record = self.rt.store.get(self.job_id)
        reason = status.describe() + why_not
        if record.error_report:
            reason += f": {record.error_report}"
        tail = log_tail(self.log_path)
        return self._finish(JobState.FAILED, f"child {reason}\nlast log lines:\n{tail}", exit_code=exit_code)

    def _finish(self, state: JobState, message: str, **fields) -> JobState:
        error = message if state is JobState.FAILED else ""
        self.rt.store.transition(self.job_id, state, message.split("\n")[0], error=error, **fields)
        return state
