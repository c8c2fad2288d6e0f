"""FIFO scheduling: queued jobs start in submission order while a slot (and device) is free."""

from __future__ import annotations

import logging
import threading

from runner.jobs import JobExecution, Runtime
from runner.launcher import group_alive, process_start_ticks, terminate_group
from runner.store import JobState

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

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def recover(self) -> None:
        """Jobs left PREPARING or RUNNING by a previous daemon: stop their processes, fail them."""
        for record in self.rt.store.list([JobState.PREPARING, JobState.RUNNING]):
            ours = record.pid and record.pid_start is not None and process_start_ticks(record.pid) == record.pid_start
            if ours and group_alive(record.pid):  # never a later process that reuses the pid
                terminate_group(record.pid, grace=5)
            self.rt.store.transition(record.id, JobState.FAILED, "the daemon stopped while the job was active",
                                     error="the daemon stopped while the job was active; resubmit it")

    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or active job; False when it is already final."""
        with self._lock:
            execution = self._running.get(job_id)
            if execution is not None:
                execution.cancel()
                return True
            return self.rt.store.transition(job_id, JobState.CANCELLED, "cancelled by user before it started")

    def shutdown(self, reason: str = "the daemon shut down", timeout: float = 30) -> None:
        self._stopping.set()
        self._wake.set()
        with self._lock:
            executions = list(self._running.values())
        for execution in executions:
            execution.cancel(reason)
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
                    self.rt.store.transition(record.id, JobState.FAILED, problem, error=f"training.device: {problem}")
                    continue
                assignment = self.rt.devices.acquire(device)
                if assignment is None:
                    return  # strict FIFO: the head waits for its GPU
                if not self.rt.store.transition(record.id, JobState.PREPARING, f"device {assignment.device}"):
                    self.rt.devices.release(assignment)
                    continue
                execution = JobExecution(self.rt, record, assignment, self._done)
                self._running[record.id] = execution
                execution.start()

    def _done(self, job_id: str, state: JobState) -> None:
        with self._lock:
            self._running.pop(job_id, None)
        self._wake.set()
