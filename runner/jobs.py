"""One job from PREPARING to its final state: env, child process, log tail, outcome."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from adapters.frameworks import get_catalog
from envs.manager import EnvManager
from envs.specs import get_spec as get_env_spec
from runner.devices import Assignment, DevicePool
from runner.launcher import Child, ExitStatus, LogTailer, child_environment
from runner.settings import Paths
from runner.store import JobRecord, JobState, JobStore
from runner.tracking import Tracker, flatten

log = logging.getLogger("visionyard.jobs")
LOG_TAIL_LINES = 25


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


def env_spec_for(spec: dict):
    return get_env_spec(get_catalog(spec["framework"]).env)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    rows = [row for row in text.replace("\r", "\n").splitlines() if row.strip()]
    return "\n".join(rows[-lines:])


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
        tailer = LogTailer(self.log_path, lambda lines: self.rt.store.add_logs(self.job_id, lines))
        final_state = JobState.FAILED
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
            tailer.start()
            final_state = self._run()
        except Exception as exc:  # a bug here must fail the job, never the daemon
            log.exception("job %s failed inside the runner", self.job_id)
            self._finish(JobState.FAILED, f"runner error: {type(exc).__name__}: {exc}")
        finally:
            tailer.stop()
            self.rt.devices.release(self.assignment)
            record = self.rt.store.get(self.job_id)
            artifacts = [Path(p) for p in (record.best_checkpoint, record.last_checkpoint) if p]
            self.rt.tracker.end_run(self.job_id, record.state.value, [self.log_path, *artifacts[:1]],
                                    tags={"visionyard.state": record.state.value})
            self.on_done(self.job_id, final_state)

    def _run(self) -> JobState:
        store, spec = self.rt.store, self.record.spec
        store.update(self.job_id, job_dir=str(self.job_dir), device=self.assignment.device)
        self.rt.tracker.start_run(self.job_id, self.record.name, flatten(spec), {
            "framework": spec["framework"], "model": spec["model"], "task": spec["task"],
            "visionyard.job_id": self.job_id})

        env_spec = env_spec_for(spec)
        with open(self.log_path, "a", buffering=1) as job_log:
            job_log.write(f"[visionyard] preparing env '{env_spec.name}'\n")
            try:
                env = self.rt.envs.ensure(env_spec, log=job_log, cancel=self.cancel_requested)
            except Exception as exc:
                if self.cancel_requested.is_set():
                    return self._finish(JobState.CANCELLED, self.cancel_reason)
                return self._finish(JobState.FAILED, f"environment '{env_spec.name}' could not be built: {exc}")
            job_log.write(f"[visionyard] env {env.name} {'reused' if env.reused else 'built'} at {env.path}\n")
        store.update(self.job_id, env_name=env.name)

        job_json = self.job_dir / "job.json"
        checkpoint_dir = self.job_dir / "checkpoints"
        checkpoint_dir.mkdir(exist_ok=True)
        job_json.write_text(json.dumps({
            "job_id": self.job_id, "job_dir": str(self.job_dir), "device": self.assignment.device,
            "checkpoint_dir": str(checkpoint_dir), "spec": spec}, indent=2))
        cmd = [str(env.python), "-m", "adapters.entrypoint", "--spec", str(job_json)]
        env_vars = child_environment({
            "PYTHONPATH": str(self.rt.paths.child_path),
            "VISIONYARD_REPORTER_ADDRESS": self.rt.reporter_address,
            "VISIONYARD_JOB_ID": self.job_id,
            "VISIONYARD_JOB_TOKEN": self.record.token,
            "CUDA_VISIBLE_DEVICES": self.assignment.visible_devices,
            **({"OMP_NUM_THREADS": str(self.rt.threads_per_job)} if self.rt.threads_per_job else {}),
        })
        with self._lock:
            if self.cancel_requested.is_set():
                return self._finish(JobState.CANCELLED, self.cancel_reason)
            self._child = Child(cmd, cwd=self.job_dir, env=env_vars, log_path=self.log_path)
        store.transition(self.job_id, JobState.RUNNING, f"pid {self._child.pid} on {self.assignment.device}",
                         pid=self._child.pid)
        status = self._child.wait()
        return self._outcome(status)

    def _outcome(self, status: ExitStatus) -> JobState:
        record = self.rt.store.get(self.job_id)
        exit_code = status.code if status.code is not None else -(status.signal or 0)
        if self.cancel_requested.is_set():
            return self._finish(JobState.CANCELLED, self.cancel_reason, exit_code=exit_code)
        if status.ok and record.result is not None:
            return self._finish(JobState.SUCCEEDED, "finished", exit_code=exit_code)
        reason = status.describe()
        if status.ok:
            reason += " without reporting a result"
        if record.error_report:
            reason += f": {record.error_report}"
        tail = log_tail(self.log_path)
        return self._finish(JobState.FAILED, f"child {reason}\nlast log lines:\n{tail}", exit_code=exit_code)

    def _finish(self, state: JobState, message: str, **fields) -> JobState:
        error = message if state is JobState.FAILED else ""
        self.rt.store.transition(self.job_id, state, message.split("\n")[0], error=error, **fields)
        return state
