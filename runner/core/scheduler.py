"""FIFO scheduling: queued jobs start in submission order while a slot (and device) is free.

Jobs outlive the daemon: at start, `recover()` adopts what a previous daemon left running (or
harvests what ended meanwhile) and prepares again the jobs it left preparing; at stop, jobs go on
unless the daemon was told to cancel them.
"""

from __future__ import annotations

import logging
import threading

from runner.core.jobs import JobExecution, read_launch_record
from runner.core.failures import Cause
from runner.core.runtime import Runtime
from runner.launch import backends
from runner.core.reports import apply_journal
from runner.core.store import JobState

log = logging.getLogger("visionyard.scheduler")


class Scheduler:
    def __init__(self, rt: Runtime, max_concurrent_jobs: int = 1):
        if max_concurrent_jobs < 1:
            raise ValueError("max_concurrent_jobs must be at least 1")
        self.rt = rt
        self.max_concurrent_jobs = max_concurrent_jobs
        self._running: dict[str, JobExecution] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._told: tuple[str, str] = ("", "")  # the job at the head of the queue, and why it waits

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def recover(self) -> None:
        """Jobs a previous daemon left active. RUNNING: adopted if the job still runs, else judged
        by how it ended. PREPARING: queued again at its place and prepared from the start (an env
        build or a clone is redone; the env cache makes that cheap) — unless its command had
        already started, which makes it RUNNING. Call before serving: a child's reports must find
        its journal applied."""
        records = sorted(self.rt.store.list([JobState.PREPARING, JobState.RUNNING]), key=lambda r: r.created_at)
        for record in records:
            job_dir = self.rt.paths.job_dir(record.id)
            if record.state is JobState.PREPARING and not self._started_meanwhile(record, job_dir):
                self.rt.store.transition(record.id, JobState.QUEUED,
                                         "the daemon restarted while the job was preparing; preparing it again")
                continue
            record = self.rt.store.get(record.id)
            apply_journal(self.rt, record.id, job_dir)
            launch = read_launch_record(job_dir)
            assignment = self.rt.devices.claim(launch.get("gpu"), launch.get("visible_devices", ""),
                                               launch.get("device") or record.device, int(launch.get("gpus") or 0))
            execution = JobExecution(self.rt, record, assignment, self._done, adopted=True)
            with self._lock:
                self._running[record.id] = execution
            execution.start()

    def _started_meanwhile(self, record, job_dir) -> bool:
        """A job left PREPARING whose supervisor had started (or which its Ray head knows): it is
        RUNNING (or ran) really."""
        started = backends.started(read_launch_record(job_dir), job_dir, record.token_hash)
        if started is None:
            return False
        why, fields = started
        self.rt.store.transition(record.id, JobState.RUNNING, why, **fields)
        return True

    def cancel(self, job_id: str, reason: str = "cancelled by user", cause: Cause | None = None) -> bool:
        """Cancel a queued or active job; False when it is already final. `reason` and `cause` say why
        (a sweep's pruner: `Cause.PRUNED`)."""
        with self._lock:
            execution = self._running.get(job_id)
            if execution is not None:
                execution.cancel(reason, cause)
                return True
            return self.rt.store.transition(job_id, JobState.CANCELLED, f"{reason} before it started",
                                            **({"cause": cause.value} if cause else {}))

    def shutdown(self, cancel_jobs: bool = False, reason: str = "the daemon shut down",
                 timeout: float = 30) -> None:
        """Stop scheduling. Active jobs go on (the next daemon adopts them), or with `cancel_jobs`
        are cancelled and waited for."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            executions = list(self._running.values())
        for execution in executions:
            if cancel_jobs:
                execution.cancel(reason)
            else:
                execution.detach()
        for execution in executions:
            execution.join(timeout)

    # ------------------------------------------------------------ internals

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._schedule()
            except Exception:
                log.exception("scheduling pass failed")
            self._wake.wait(1.0)
            self._wake.clear()

    def _schedule(self) -> None:
        with self._lock:
            while not self._stopping.is_set() and len(self._running) < self.max_concurrent_jobs:
                record = self.rt.store.next_queued()
                if record is None:
                    return
                device = record.spec["training"]["device"]
                problem = self.rt.devices.check(device)
                if problem:  # e.g. queued before a restart with fewer GPUs: fail it, don't block the queue
                    self.rt.store.transition(record.id, JobState.FAILED, problem, error=f"training.device: {problem}",
                                             cause=Cause.DEVICE.value)
                    continue
                assignment = self.rt.devices.acquire(device)
                if assignment is None:  # strict FIFO: the head waits for its GPU (or the cluster's CPUs)
                    self._tell_waiting(record.id, self.rt.devices.waiting)
                    return
                try:
                    moved = self.rt.store.transition(record.id, JobState.PREPARING, f"device {assignment.device}")
                except Exception:  # the store can't be written (a full disk): try again on the next pass
                    self.rt.devices.release(assignment)
                    raise
                if not moved:
                    self.rt.devices.release(assignment)
                    continue
                execution = JobExecution(self.rt, record, assignment, self._done)
                self._running[record.id] = execution
                execution.start()

    def _tell_waiting(self, job_id: str, why: str) -> None:
        """Say once in the job's log why it waits at the head of the queue (again when that changes)."""
        if why and self._told != (job_id, why):
            self._told = (job_id, why)
            self.rt.store.add_logs(job_id, [f"[visionyard] queued: {why}"])

    def _done(self, job_id: str, state: JobState | None) -> None:
        with self._lock:
            self._running.pop(job_id, None)
        self._wake.set()
