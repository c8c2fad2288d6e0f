"""A job's command on a Ray cluster, behind the same interface as a local `Child`.

The command is submitted through Ray's job submission API with the job's id as its submission id
(a resubmission is refused by Ray, so it is idempotent), and runs on the node under the same
per-job supervisor as locally (``exec`` makes the supervisor the process Ray signals): Ray's
stop sends SIGTERM, the supervisor stops every descendant within the job's grace period, and
Ray's SIGKILL (``RAY_JOB_STOP_WAIT_TIME_S``) comes only after that. The job's output reaches the
local log file through Ray's log stream (`RayLogPump`), so the log tailer, the parsers and the
stored offsets work as for a local job. How it ended: the supervisor's exit record once the
job dir has it (shared with the node, or sent back by the node agent), else Ray's status and exit code.
"""

from __future__ import annotations

import logging
import math
import shlex
import threading
import time
from http.client import HTTPException
from pathlib import Path
from typing import Callable

from runner.launch.jobdir import EXIT_RECORD, SUPERVISOR_RECORD
from runner.launch.local import (BOUND_ENV, SUPERVISOR, TERMINATE_GRACE_SECONDS, TOKEN_ENV, ExitStatus,
                                 read_exit_record)
from runner.launch.ray.api import RayJob, RayJobsClient, RayRequestError, RayUnavailable

log = logging.getLogger("visionyard.ray")

POLL_SECONDS = 1.0        # how often Ray is asked how the job is doing
EXIT_CHECK_SECONDS = 0.1  # how often a shared job dir is looked at for the supervisor's exit record
LOST_AFTER_SECONDS = 60.0  # a head unreachable this long: the job is failed, not left RUNNING
STOP_MARGIN_SECONDS = 5    # Ray's SIGKILL comes this long after the supervisor's own


def stop_wait(grace: float) -> dict[str, str]:
    """Ray's SIGKILL after a stop comes only once the supervisor's grace period is over."""
    return {"RAY_JOB_STOP_WAIT_TIME_S": str(math.ceil(grace) + STOP_MARGIN_SECONDS)}


class RayChild:
    """One Ray job: `start` submits it, `attach` finds it again, `wait` follows it to its end."""

    pid = None          # no local process: the store keeps the submission id instead
    start_ticks = None

    def __init__(self, client: RayJobsClient, submission_id: str, job_dir: Path, log_path: Path,
                 log_base: int = 0, lost_after: float = LOST_AFTER_SECONDS,
                 on_running: Callable[[str], None] | None = None):
        self.client, self.submission_id, self.job_dir = client, submission_id, job_dir
        self.lost_after = lost_after
        self.on_running = on_running  # called once with the node's id when Ray runs the job
        self.cancel_requested = False
        self.last: RayJob | None = None
        self.pump = RayLogPump(client, submission_id, log_path, log_base)

    @classmethod
    def start(cls, client: RayJobsClient, submission_id: str, cmd: list[str], cwd: Path, env: dict[str, str],
              log_path: Path, job_dir: Path, token: str, *, python: str = "python3", num_cpus: float = 1,
              num_gpus: float = 0, metadata: dict[str, str] | None = None, grace: float = TERMINATE_GRACE_SECONDS,
              lost_after: float = LOST_AFTER_SECONDS, supervisor: Path = SUPERVISOR,
              on_running: Callable[[str], None] | None = None) -> "RayChild":
        """Submit `cmd` (run in `cwd` with `env` on top of the node's environment). `env` holds
        only what the job needs: Ray passes it to the node as the job's env vars."""
        supervised = [python, "-I", "-S", str(supervisor), str(job_dir), f"{grace:g}", "--", *cmd]
        entrypoint = f"cd {shlex.quote(str(cwd))} && exec {shlex.join(supervised)}"
        env_vars = {**env, TOKEN_ENV: token, BOUND_ENV: "1", **stop_wait(grace)}
        return cls.submit(client, submission_id, entrypoint, env_vars, log_path, job_dir, num_cpus=num_cpus,
                          num_gpus=num_gpus, metadata=metadata, lost_after=lost_after, on_running=on_running)

    @classmethod
    def submit(cls, client: RayJobsClient, submission_id: str, entrypoint: str, env_vars: dict[str, str],
               log_path: Path, job_dir: Path, *, num_cpus: float = 1, num_gpus: float = 0,
               metadata: dict[str, str] | None = None, lost_after: float = LOST_AFTER_SECONDS,
               on_running: Callable[[str], None] | None = None, py_modules: list[str] | None = None) -> "RayChild":
        """Submit `entrypoint` as it is (with `env_vars` on top of the node's environment)."""
        for stale in (EXIT_RECORD, SUPERVISOR_RECORD):
            (job_dir / stale).unlink(missing_ok=True)
        log_base = log_path.stat().st_size if log_path.exists() else 0
        child = cls(client, submission_id, job_dir, log_path, log_base, lost_after, on_running)
        if not client.submit(submission_id, entrypoint, env_vars, metadata or {}, num_cpus, num_gpus, py_modules):
            log.info("Ray job %s was submitted before; following it", submission_id)
        child.pump.start()
        return child

    @classmethod
    def attach(cls, client: RayJobsClient, submission_id: str, job_dir: Path, log_path: Path, log_base: int,
               lost_after: float = LOST_AFTER_SECONDS, on_running: Callable[[str], None] | None = None) -> "RayChild":
        """The job a previous daemon submitted; `wait` tells how it ended if it has (or that the
        head lost it)."""
        child = cls(client, submission_id, job_dir, log_path, log_base, lost_after, on_running)
        child.pump.start()
        return child

    def describe(self) -> str:
        node = self.last.node_id[:12] if self.last and self.last.node_id else "a node not yet chosen"
        return f"Ray submission {self.submission_id} on {node}"

    def poll(self) -> RayJob | None:
        self.last = self.client.job(self.submission_id)
        return self.last

    def wait(self, timeout: float | None = None, stop: threading.Event | None = None) -> ExitStatus | None:
        """How the job ended; None when `timeout` passed or `stop` was set first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        unreachable_since = None
        while True:
            if (self.job_dir / EXIT_RECORD).exists():  # a shared job dir: the supervisor's word, at once
                if self.cancel_requested:
                    self._until_ray_says_stopped()
                self.pump.stop(final=True)
                return read_exit_record(self.job_dir) or ExitStatus(None, None, known=False)
            try:
                job = self.poll()
                unreachable_since = None
            except (RayUnavailable, RayRequestError) as exc:
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since >= self.lost_after:
                    self.pump.stop()
                    return ExitStatus(None, None, known=False,
                                      note=f"was lost: {exc}, for {self.lost_after:g} s (the cluster, or the head, "
                                           "stopped or restarted)")
                job = None
            else:
                if job is None:
                    self.pump.stop()
                    return ExitStatus(None, None, cancelled=self.cancel_requested, known=False,
                                      note=f"was lost: the Ray head no longer knows submission {self.submission_id} "
                                           "(the head restarted, and its jobs with it)")
                if job.final:
                    self.pump.stop(final=True)
                    return self.exit_status(job)
                if job.status == "RUNNING" and job.node_id and not self.pump.node_known:
                    self.pump.running_on(job.node_id)
                    if self.on_running is not None:
                        self.on_running(job.node_id)
            if stop is not None and stop.is_set():
                self.pump.stop()
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._pause(stop)

    def _until_ray_says_stopped(self, timeout: float = STOP_MARGIN_SECONDS + 10) -> None:
        """A cancelled job's supervisor has ended everything of it; Ray's word that the job is gone
        follows within moments (checked, so a cancel ends with nothing of the job left on Ray)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                job = self.poll()
            except (RayUnavailable, RayRequestError):
                return
            if job is None or job.final:
                return
            time.sleep(EXIT_CHECK_SECONDS)
        log.warning("Ray job %s was stopped but Ray still shows it %s", self.submission_id, self.last.status)

    def _pause(self, stop: threading.Event | None) -> None:
        """Until the next look at Ray; the job dir's exit record is looked for more often (a stat)."""
        until = time.monotonic() + POLL_SECONDS
        while (left := until - time.monotonic()) > 0:
            if (stop is not None and stop.is_set()) or (self.job_dir / EXIT_RECORD).exists():
                return
            time.sleep(min(EXIT_CHECK_SECONDS, left))

    def exit_status(self, job: RayJob) -> ExitStatus:
        record = read_exit_record(self.job_dir)  # the supervisor's, when the job dir is shared with the node
        if record is not None:
            return record
        if job.status == "STOPPED":
            return ExitStatus(None, None, cancelled=True)
        if job.status == "SUCCEEDED":
            return ExitStatus(0, None)
        if job.exit_code is not None:
            code = int(job.exit_code)
            return ExitStatus(None, code - 128) if 128 < code <= 128 + 64 else ExitStatus(code, None)
        return ExitStatus(None, None, known=False,
                          note=f"failed on the Ray cluster before its command ran ({job.error_type or 'no reason'}): "
                               f"{job.message.strip()[:500]}")

    def terminate(self, grace: float | None = None) -> None:
        """Ray's stop (SIGTERM, then the supervisor's grace period, then Ray's SIGKILL); `wait`
        sees the job STOPPED once nothing of it is left."""
        self.cancel_requested = True
        try:
            self.client.stop(self.submission_id)
        except (RayUnavailable, RayRequestError) as exc:
            log.warning("could not stop Ray job %s: %s", self.submission_id, exc)


class RayLogPump(threading.Thread):
    """Appends the job's output, streamed from Ray, to the local log file.

    Ray streams a log from its first byte; the pump skips what the file already holds (what the
    file gained since `log_base`, its size at submission), so a restarted daemon resumes where the
    last one stopped. At the job's end the whole log is read once more for what the stream had
    not yet sent.
    """

    def __init__(self, client: RayJobsClient, submission_id: str, log_path: Path, log_base: int):
        super().__init__(name=f"ray-log-{submission_id}", daemon=True)
        self.client, self.submission_id, self.log_path, self.log_base = client, submission_id, log_path, log_base
        self._node = threading.Event()
        self._node_id: str | None = None
        self._stopped = threading.Event()
        self._final = False
        self._response = None
        self._lock = threading.Lock()

    @property
    def node_known(self) -> bool:
        return self._node.is_set()

    def running_on(self, node_id: str | None) -> None:
        if node_id and not self._node.is_set():
            self._node_id = node_id
            self._node.set()

    def stop(self, final: bool = False) -> None:
        self._final = final
        self._stopped.set()
        self._node.set()
        self._interrupt()
        if self.is_alive():
            self.join(30)
        elif final:
            self._catch_up()

    def run(self) -> None:
        while not self._stopped.is_set():
            self._node.wait()
            if self._stopped.is_set() or not self._node_id:
                break
            try:
                self._stream()
            except (RayUnavailable, RayRequestError, HTTPException, OSError, ValueError) as exc:
                if not self._stopped.is_set():
                    log.debug("Ray log stream of %s broke (%s); reconnecting", self.submission_id, exc)
            self._stopped.wait(1.0)
        if self._final:
            self._catch_up()

    def _consumed(self) -> int:
        try:
            return max(0, self.log_path.stat().st_size - self.log_base)
        except OSError:
            return 0

    def _stream(self) -> None:
        skip = self._consumed()
        stream = self.client.log_stream(self._node_id, self.submission_id)
        with self._lock:
            self._response = stream
        try:
            with open(self.log_path, "ab") as out:
                for chunk in stream:
                    if self._stopped.is_set():
                        return
                    if skip >= len(chunk):
                        skip -= len(chunk)
                        continue
                    out.write(chunk[skip:])
                    out.flush()
                    skip = 0
        finally:
            with self._lock:
                self._response = None
            stream.close()

    def _interrupt(self) -> None:
        with self._lock:
            stream = self._response
        if stream is not None:
            stream.interrupt()

    def _catch_up(self) -> None:
        try:
            whole = self.client.logs(self.submission_id)
        except (RayUnavailable, RayRequestError) as exc:
            log.warning("could not read the end of Ray job %s's log: %s", self.submission_id, exc)
            return
        rest = whole[self._consumed():]
        if rest:
            with open(self.log_path, "ab") as out:
                out.write(rest)
