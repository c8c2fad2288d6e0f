"""One job from PREPARING to its final state: env, child process, log tail, outcome."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import sqlite3
import stat
import threading
import time
from pathlib import Path

from adapters.files import remove_partials
from log_parsers.base import Line
from runner.launch import backends
from runner.launch.context import JobContext
from runner.launch.devices import Assignment
from runner.launch.jobdir import CHECKPOINTS, LAUNCH_RECORD, LOG
from runner.launch.local import (Child, ExitStatus, LogTailer, process_start_ticks, read_exit_record,
                             replay_lines)
from runner.core import failures
from runner.core.failures import Cause
from runner.core.reports import apply_journal
from runner.core.runtime import Runtime
from runner.settings import LOW_DISK_BYTES
from runner.auth import hash_token
from runner.core.store import JobRecord, JobState
from runner.core.tracking import flatten
from runner.core.workloads import PrepareError, Workload, workload_for

log = logging.getLogger("visionyard.jobs")
LOG_TAIL_LINES = 25
MAX_LOG_LINE = 4000  # characters of one log line kept in the event stream


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


DETACHED = "DETACHED"  # the daemon stopped watching a job that goes on (adopted at its next start)
FINAL_RETRY_MAX_SECONDS = 30.0


class JobExecution(threading.Thread):
    """Runs one job, or adopts one a previous daemon started (`adopted=True`).

    `cancel()` and `detach()` may be called from any thread at any time.
    """

    def __init__(self, rt: Runtime, record: JobRecord, assignment: Assignment, on_done, adopted: bool = False):
        super().__init__(name=f"job-{record.id}", daemon=True)
        self.rt, self.record, self.assignment, self.on_done = rt, record, assignment, on_done
        self.adopted = adopted
        self.job_id = record.id
        self.job_dir = rt.paths.job_dir(record.id)
        self.log_path = self.job_dir / LOG
        self.cancel_requested = threading.Event()
        self.detach_requested = threading.Event()
        self.stop_preparing = threading.Event()  # cancel or detach: an env build stops
        self.cancel_reason = "cancelled by user"
        self.cancel_cause: Cause | None = None  # why, when not a plain cancel (a sweep's pruner)
        self._child: Child | None = None
        self._lock = threading.Lock()
        self.workload: Workload | None = None
        self.extra_artifacts: list[Path] = []
        self._tailer: LogTailer | None = None
        self.token = ""  # the child's reporter token, made at launch

    def cancel(self, reason: str = "cancelled by user", cause: Cause | None = None) -> None:
        with self._lock:
            if self.cancel_requested.is_set():
                return
            self.cancel_reason, self.cancel_cause = reason, cause
            self.cancel_requested.set()
            self.stop_preparing.set()
            child = self._child
        if child is not None:
            threading.Thread(target=child.terminate, name=f"stop-{self.job_id}", daemon=True).start()

    def detach(self) -> None:
        """Stop watching, leave the job running: the next daemon adopts it (a job still preparing
        stops preparing, and the next daemon prepares it again)."""
        self.detach_requested.set()
        self.stop_preparing.set()

    def run(self) -> None:
        self._tailer = LogTailer(self.log_path, self._on_lines, offset=self.record.log_offset)
        final_state: JobState | str = JobState.FAILED
        try:
            self.job_dir.mkdir(parents=True, exist_ok=True)
            self.log_path.touch()
            final_state = self._adopt() if self.adopted else self._run()
        except Exception as exc:  # a bug here must fail the job, never the daemon
            log.exception("job %s failed inside the runner", self.job_id)
            final_state = self._finish(JobState.FAILED, f"runner error: {type(exc).__name__}: {exc}",
                                       cause=Cause.RUNNER)
        finally:
            self._wrap_up(final_state)

    def _wrap_up(self, final_state: JobState | str) -> None:
        if final_state == DETACHED:
            if self._tailer.is_alive():
                self._tailer.stop(final=False)
            if self.workload is not None:
                self.workload.stop_watching(final=False)
            self.on_done(self.job_id, None)
            return
        if self._tailer.is_alive():
            self._tailer.stop()
        if self.workload is not None:
            self.workload.stop_watching()
        for partial in remove_partials(self.job_dir / CHECKPOINTS):  # torn by a kill or a full disk
            log.info("job %s: removed the interrupted write %s", self.job_id, partial)
        self.rt.devices.release(self.assignment)
        record = self.rt.store.get(self.job_id)
        best = [Path(record.best_checkpoint)] if record.best_checkpoint else []
        self.rt.tracker.end_run(self.job_id, record.state.value, [self.log_path, *best, *self.extra_artifacts],
                                tags=end_tags(record), results=(self.job_dir, record.spec.get("task", "")))
        self.on_done(self.job_id, final_state)

    def _on_lines(self, lines: list[Line], offset: int) -> None:
        """Log lines, what the repo's parser makes of them, and how far the log is read: together."""
        with self.rt.store.atomic():
            self.rt.store.add_logs(self.job_id, [line.text[:MAX_LOG_LINE] for line in lines
                                                 if line.final and line.text])
            if self.workload is not None and lines:
                self.workload.on_lines(lines)
            self.rt.store.update(self.job_id, log_offset=offset)

    def _run(self) -> JobState | str:
        store = self.rt.store
        self._tailer.start()
        self.token = secrets.token_hex(32)  # the child's: the store keeps only its hash
        store.update(self.job_id, job_dir=str(self.job_dir), device=self.assignment.device,
                     token=hash_token(self.token))
        self._start_tracking()
        with open(self.log_path, "a", buffering=1) as job_log:
            try:
                workload = workload_for(self._context(), self.rt)
                command = workload.prepare(job_log)
            except PrepareError as exc:
                if self.detach_requested.is_set():
                    return DETACHED
                if self.cancel_requested.is_set():
                    return self._finish(JobState.CANCELLED, self.cancel_reason)
                job_log.write(f"[visionyard] {exc}\n")
                return self._finish(JobState.FAILED, f"{exc}\nlast log lines:\n{log_tail(self.log_path)}",
                                    cause=exc.cause)
        launcher = self.rt.launcher
        pythonpath = [*command.pythonpath, *filter(None, [command.env.get("PYTHONPATH")])]
        env_vars = launcher.environment({
            **command.env,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            **({"OMP_NUM_THREADS": str(self.rt.threads_per_job)} if self.rt.threads_per_job else {}),
        }, self.assignment)
        if not pythonpath:
            env_vars.pop("PYTHONPATH")
        launch = {"gpu": self.assignment.gpu, "visible_devices": self.assignment.visible_devices,
                  "device": self.assignment.device, "gpus": self.assignment.gpus,
                  "workload": workload.saved_state(), **launcher.launch_record(self.job_id, self.log_path)}
        (self.job_dir / LAUNCH_RECORD).write_text(json.dumps(launch))
        with self._lock:
            if self.detach_requested.is_set():
                return DETACHED
            if self.cancel_requested.is_set():
                return self._finish(JobState.CANCELLED, self.cancel_reason)
            self.workload = workload
            self._child = launcher.start(command, env_vars, workload.job, launch)
        workload.watch_files()
        store.transition(self.job_id, JobState.RUNNING, launcher.describe(self._child, self.assignment),
                         pid=self._child.pid, pid_start=self._child.start_ticks,
                         placement=launcher.placement(self._child))
        status = self._child.wait(stop=self.detach_requested)
        return DETACHED if status is None else self._outcome(status)

    def _adopt(self) -> JobState | str:
        """A job a previous daemon started: watch it again if it runs, else judge how it ended."""
        record = self.record
        self._start_tracking()
        workload = workload_for(self._context(), self.rt)
        launch = read_launch_record(self.job_dir)
        workload.restore(launch.get("workload") or {})
        workload.replay(replay_lines(self.log_path, record.log_offset) if record.log_offset else iter(()))
        child = backends.attach(launch, workload.job, self.rt.launcher, record.pid, record.pid_start, record.token_hash)
        with self._lock:
            self.workload, self._child = workload, child
        self._tailer.start()
        workload.watch_files()
        if child is None:
            log.info("job %s ended while the daemon was down; harvesting it", self.job_id)
            status = read_exit_record(self.job_dir) or ExitStatus(None, None, known=False)
            if not status.known and record.pid and process_start_ticks(record.pid) == record.pid_start:
                # started by a version without supervisors: its process can't be watched again
                log.warning("job %s: its process %d predates supervisors; stopping it", self.job_id, record.pid)
                try:
                    os.killpg(record.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        else:
            log.info("job %s is still running (%s); adopted", self.job_id,
                     f"supervisor pid {child.pid}" if child.pid else child.describe())
            self.rt.store.add_logs(self.job_id, ["[visionyard] the daemon restarted; the job went on and is "
                                                 "watched again"])
            if self.cancel_requested.is_set():
                child.terminate()
            status = child.wait(stop=self.detach_requested)
        return DETACHED if status is None else self._outcome(status)

    def _context(self) -> JobContext:
        return JobContext(self.job_id, self.record.name, self.record.spec, self.record.repo_spec, self.job_dir,
                          self.log_path, self.assignment, self.token, self.stop_preparing)

    def _start_tracking(self) -> None:
        spec = self.record.spec
        if self.record.mlflow_run_id:  # a run a previous daemon made: logged on, ended by us
            self.rt.tracker.attach(self.job_id, self.record.mlflow_run_id)
            return
        self.rt.tracker.start_run(self.job_id, self.record.name, flatten(spec), {
            "framework": spec["framework"], "model": spec["model"], "task": spec["task"],
            "visionyard.job_id": self.job_id, **_repo_tags(self.record)})

    def _outcome(self, status: ExitStatus) -> JobState:
        self._tailer.stop()  # every line the child wrote reaches the parser before the verdict
        apply_journal(self.rt, self.job_id, self.job_dir)  # reports the daemon never received
        self.extra_artifacts = self.workload.collect()
        exit_code = status.code if status.code is not None else -(status.signal or 0)
        if not status.known:
            exit_code = None
        if self.cancel_requested.is_set() or status.cancelled:
            reason = self.cancel_reason if self.cancel_requested.is_set() else "cancelled while the daemon was down"
            cause = {"cause": self.cancel_cause} if self.cancel_requested.is_set() and self.cancel_cause else {}
            return self._finish(JobState.CANCELLED, reason, exit_code=exit_code, **cause)
        ok, why_not = self.workload.succeeded(status.ok)
        if ok:
            return self._finish(JobState.SUCCEEDED, self._result_note() or self.workload.note() or "finished",
                                exit_code=exit_code)
        record = self.rt.store.get(self.job_id)
        reason = status.describe() + why_not
        if record.error_report:
            reason += f": {record.error_report}"
        tail = log_tail(self.log_path)
        full = disk_full_note(self.job_dir, f"{record.error_report}\n{tail}")
        cause = failures.of_exit(known=status.known, signal=status.signal, error_report=record.error_report,
                                 log_tail=tail, disk_full=bool(full))
        return self._finish(JobState.FAILED, f"child {reason}{full}\nlast log lines:\n{tail}", exit_code=exit_code,
                            cause=cause)

    def _result_note(self) -> str:
        """How the run says it ended, when not at its last epoch ("stopped early at epoch 4 (...)")."""
        return str((self.rt.store.get(self.job_id).result or {}).get("note") or "")

    def _finish(self, state: JobState, message: str, **fields) -> JobState:
        """The final transition, retried until the store takes it (a full disk, a locked database):
        until then the job keeps its slot, so no other job starts in its place."""
        error = message if state is JobState.FAILED else ""
        delay = 0.5
        while True:
            try:
                if isinstance(fields.get("cause"), Cause):
                    fields["cause"] = fields["cause"].value
                self.rt.store.transition(self.job_id, state, message.split("\n")[0], error=error, **fields)
                return state
            except sqlite3.Error as exc:
                log.error("job %s: could not record its final state %s (%s); retrying in %.0f s",
                          self.job_id, state.value, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, FINAL_RETRY_MAX_SECONDS)


# What a write that found the disk full says: the OS (ENOSPC) and SQLite name it ...
DISK_FULL_MESSAGES = ("No space left on device", "[Errno 28]", "disk is full")
# ... torch's checkpoint writer does not: its stream fails short, and it says one of these
# (`[enforce fail at inline_container.cc:…] . unexpected pos N vs M`, `PytorchStreamWriter failed
# writing file data/12: file write failed`, libstdc++'s `basic_ios::clear: iostream error`).
# Its reader's errors (`PytorchStreamReader failed …`) are a bad file, not a full disk: not listed.
WRITE_FAILED_MESSAGES = ("PytorchStreamWriter failed", "unexpected pos", "file write failed", "basic_ios::clear",
                         "iostream error")
MAX_SIZED_FILES = 20_000  # files looked at to find a job's largest one


def disk_full_note(folder: Path, text: str) -> str:
    """When the job failed for want of disk space, which disk (and how full), for its error.

    A failed write's partial file is gone by now (see `adapters.files.atomic_path`), so the free
    space is about what the write found: a write failure that names no cause counts as a full disk
    when less is free than the job's largest file (a checkpoint, as a rule: what the write needed)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return ""
    full = free < LOW_DISK_BYTES or any(message in text for message in DISK_FULL_MESSAGES)
    if not full and any(message in text for message in WRITE_FAILED_MESSAGES):
        full = free < LOW_DISK_BYTES + largest_file_size(folder)
    return f" (the disk holding {folder} is full: {free / 2**20:.0f} MiB free)" if full else ""


def largest_file_size(folder: Path, max_files: int = MAX_SIZED_FILES) -> int:
    """The size of the largest regular file below `folder` (links not followed; at most `max_files`
    looked at)."""
    largest, seen = 0, 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            seen += 1
            if seen > max_files:
                return largest
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                largest = max(largest, info.st_size)
    return largest


def finish_tracking(rt: Runtime, record: JobRecord) -> None:
    """End the MLflow run of a job that ended while its run could not be (MLflow or the daemon
    down): created if it never was, caught up with the store's metrics, ended with its state."""
    if not record.mlflow_run_id:
        spec = record.spec
        rt.tracker.start_run(record.id, record.name, flatten(spec), {
            "framework": spec["framework"], "model": spec["model"], "task": spec["task"],
            "visionyard.job_id": record.id, **_repo_tags(record)})
    else:
        rt.tracker.attach(record.id, record.mlflow_run_id)
    job_dir = rt.paths.job_dir(record.id)
    artifacts = [job_dir / LOG, *([Path(record.best_checkpoint)] if record.best_checkpoint else [])]
    rt.tracker.end_run(record.id, record.state.value, artifacts, tags=end_tags(record),
                       results=(job_dir, record.spec.get("task", "")))


def end_tags(record: JobRecord) -> dict[str, str]:
    """The tags a job's MLflow run ends with: its state and, when it did not succeed, why."""
    return {"visionyard.state": record.state.value,
            **({"visionyard.failure_cause": record.cause} if record.cause else {})}


def read_launch_record(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / LAUNCH_RECORD).read_text())
    except (OSError, ValueError):
        return {}
