"""Warm predict workers: one long-lived child per model, in the model's framework env.

A worker (``python -m adapters.entrypoint --serve``, see ``adapters.serve``) loads its model once
and answers images until it is stopped: the first predict of a model pays for the env's imports
and the load, the next ones only for the model call. Requests that arrive together are sent as one
batch (up to ``max_batch``, waiting at most ``max_wait_ms`` for more); a worker works on one
batch at a time.

The pool keeps at most ``workers`` of them and at most ``memory_bytes`` of their resident memory
together; to make room it stops the one used longest ago among the idle ones (a busy one is never
stopped for another: the new model's predict is refused as busy instead). A worker idle for
``idle_seconds`` is stopped. A worker that dies (or takes longer than ``predict_timeout`` over a
batch, and is killed for it) fails the predicts it held with its log's last lines; the next predict
starts a new one. A worker's stdin is the daemon's pipe: when the daemon dies, the worker reads the
end of it and exits, so no worker outlives its daemon.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.launch.context import Command
from runner.launch.procs import rss_bytes

log = logging.getLogger("visionyard.workers")

WORKER_LOG = "predict-worker.log"  # in the job dir: what the worker and its framework printed
LOG_TAIL_BYTES = 2000


@dataclass(frozen=True)
class WorkerLimits:
    """`visionyard serve --predict-workers --predict-idle-seconds --predict-memory-gb`."""

    workers: int = 2
    idle_seconds: float = 300.0
    memory_bytes: int = 8 << 30
    max_batch: int = 8
    max_wait_ms: float = 5.0
    #: An image of a stream that goes on waits this long for its batch to fill (the stream's end sends it at once).
    stream_wait_ms: float = 100.0
    load_timeout: float = 300.0
    predict_timeout: float = 300.0


@dataclass(frozen=True)
class WorkerKey:
    """A model as a worker holds it: a job's checkpoint as it was (a new best is a new model), run by
    PyTorch or, with `onnx`, by onnxruntime with that export of it (a new export is a new model)."""

    job_id: str
    checkpoint: str
    version: int  # the checkpoint's (or the export's) mtime in ns
    onnx: str = ""
    gpu: str = ""  # a GPU asked for (cuda, cuda:N): the worker takes one when one is free; "" the CPU

    @classmethod
    def of(cls, job_id: str, checkpoint: str, onnx: str = "", gpu: str = "") -> "WorkerKey":
        try:
            version = Path(onnx or checkpoint).stat().st_mtime_ns
        except OSError:
            version = 0
        return cls(job_id, checkpoint, version, onnx, gpu)

    @property
    def runtime(self) -> str:
        return "onnx" if self.onnx else "pytorch"


class WorkerError(Exception):
    """The worker could not load its model, or died: the predicts it held fail with this."""


class WorkerStopped(WorkerError):
    """The pool stopped the worker (idle, evicted, or the daemon stops) as a predict reached it."""


class PoolBusy(Exception):
    """Every worker is busy and the pool is full: a new model can't be loaded now."""


@dataclass
class WorkerInfo:
    key: WorkerKey
    pid: int
    state: str
    device: str
    rss_bytes: int
    served: int
    started_at: float
    idle_seconds: float
    load_ms: float
    runtime: str = "pytorch"  # pytorch | onnx | the repo's command


@dataclass(eq=False)
class _Item:
    image: str
    top_k: int
    annotate: bool
    streaming: bool = False  # more images of its stream are coming
    options: dict = field(default_factory=dict)  # the task's predict options: labels, question
    future: Future = field(default_factory=Future)


_STOP = object()
_FLUSH = object()  # a stream ended: what waits for more of it goes now


def take_batch(items: queue.SimpleQueue, max_batch: int, wait_ms: float, stream_wait_ms: float) -> list[_Item] | None:
    """The next images to predict (None: stop): the first one waited for, then what else comes within
    `wait_ms` of it, up to `max_batch`; while the batch holds an image of a stream that goes on, up to
    `stream_wait_ms` (a stream sends its images one by one: its batches fill instead of going out a few
    at a time), until the stream ends (``flush``). Cancelled ones are left out."""
    first = items.get()
    if first is _STOP:
        return None
    if first is _FLUSH:
        return []
    started, batch, streaming = time.monotonic(), [first], first.streaming
    while len(batch) < max_batch:
        deadline = started + (stream_wait_ms if streaming else wait_ms) / 1000
        try:
            item = items.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item is _STOP:
            items.put(_STOP)
            break
        if item is _FLUSH:
            break
        batch.append(item)
        streaming = streaming or item.streaming
    return [i for i in batch if i.future.set_running_or_notify_cancel()]


class Worker:
    """One child serving one model; `submit` hands it an image, the answer comes in the item's future."""

    def __init__(self, key: WorkerKey, command: Command, env: dict[str, str], log_path: Path, limits: WorkerLimits,
                 device: str = "cpu", on_end: Callable[[], None] | None = None):
        """`device`: where it runs, as `visionyard workers` says it; `on_end`: called once when it ends (gives
        back the GPU it holds)."""
        self.key, self.limits, self.device = key, limits, device
        self.holds_gpu, self._on_end = on_end is not None, on_end
        self.log_path = log_path
        self.state = "starting"
        self.served = 0
        self.load_ms = 0.0
        self.started_at = time.time()
        self.last_used = time.monotonic()
        self.busy = False
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._ids = itertools.count(1)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            self._log_start = out.tell()
            out.write(f"[visionyard] predict worker for {key.checkpoint or key.job_id + ' (pretrained)'} "
                      "starting\n".encode())
            self.proc = subprocess.Popen(command.argv, cwd=command.cwd, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=out, text=True, bufsize=1,
                                         start_new_session=True)
        self.pid = self.proc.pid
        self._thread = threading.Thread(target=self._run, name=f"predict-worker-{self.pid}", daemon=True)
        self._thread.start()
        # When the worker ends, so does its group: what it started would keep its stdout open.
        threading.Thread(target=self._reap_group, name=f"predict-worker-wait-{self.pid}", daemon=True).start()

    # ---------------------------------------------------------------- the caller's side

    def submit(self, image: str, top_k: int, annotate: bool, streaming: bool = False,
               options: dict | None = None) -> Future:
        """The answer's future: the child's result object, or a `WorkerError`. Cancel it when its
        caller is gone: a cancelled image is left out of the next batch. `streaming`: more images of
        its stream are coming (``flush`` when they stop). `options`: the task's predict options
        (``labels``, ``question``), passed with the image to the child (which refuses one its task lacks)."""
        item = _Item(image, top_k, annotate, streaming, dict(options or {}))
        with self._lock:
            if self.state == "dead":
                raise self._error(self._death)
            self.last_used = time.monotonic()
            self._queue.put(item)
        return item.future

    def flush(self) -> None:
        """A stream ended: a batch waiting for more of its images goes now."""
        self._queue.put(_FLUSH)

    @property
    def idle(self) -> bool:
        return not self.busy and self._queue.empty()

    def stop(self) -> None:
        """Kill the child's process group; what it held fails."""
        self._die(f"the predict worker for job {self.key.job_id} was stopped", error=WorkerStopped)
        self._queue.put(_STOP)

    def info(self) -> WorkerInfo:
        idle = 0.0 if self.busy or not self._queue.empty() else time.monotonic() - self.last_used
        return WorkerInfo(self.key, self.pid, self.state, self.device, rss_bytes(self.pid), self.served,
                          self.started_at, idle, self.load_ms, self.key.runtime)

    # ---------------------------------------------------------------- the worker's thread

    def _run(self) -> None:
        ready = self._read(self.limits.load_timeout)
        if not ready.get("ready"):
            self._die(f"the predict worker for {self._what()} could not load "
                      f"{self.key.checkpoint or 'its pretrained weights'}{self._ended()}")
            return
        self.load_ms = float(ready.get("load_ms") or 0.0)
        with self._lock:
            if self.state == "starting":
                self.state = "ready"
        while True:
            batch = take_batch(self._queue, self.limits.max_batch, self.limits.max_wait_ms, self.limits.stream_wait_ms)
            if batch is None:
                return
            if not batch:
                continue
            self.busy = True
            request = {"id": next(self._ids), "items": [{"image": i.image, "top_k": i.top_k, "annotate": i.annotate,
                                                         **i.options} for i in batch]}
            try:
                self.proc.stdin.write(json.dumps(request) + "\n")
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the read below finds the end and says why
            answer = self._read(self.limits.predict_timeout)
            results = answer.get("results")
            if answer.get("id") != request["id"] or not isinstance(results, list) or len(results) != len(batch):
                self._die(f"the predict worker for {self._what()} died{self._ended()}", batch)
                return
            for item, result in zip(batch, results, strict=True):
                if "result" in result:
                    item.future.set_result(result["result"])
                else:
                    item.future.set_exception(ValueError(str(result.get("error") or "predict failed")))
            self.served += len(batch)
            self.last_used = time.monotonic()
            self.busy = False

    def _read(self, timeout: float) -> dict[str, Any]:
        """The child's next answer; {} when it ended, wrote something else, or took over `timeout`
        (it is killed then)."""
        timer = threading.Timer(timeout, self._kill, kwargs={"why": f"took over {timeout:g} s"})
        timer.daemon = True
        timer.start()
        try:
            line = self.proc.stdout.readline()
        except (OSError, ValueError):
            line = ""
        finally:
            timer.cancel()
        try:
            message = json.loads(line) if line.strip() else {}
        except ValueError:
            message = {}
        return message if isinstance(message, dict) else {}

    def _what(self) -> str:
        """`job J`, or the model of a worker without a job (`model:timm/resnet50`)."""
        return self.key.job_id if self.key.job_id.startswith("model:") else f"job {self.key.job_id}"

    def _reap_group(self) -> None:
        self.proc.wait()
        self._kill()

    def _kill(self, why: str = "") -> None:
        if why:
            self._killed_because = why
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _ended(self) -> str:
        """How the child ended and the last lines it printed."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        why = getattr(self, "_killed_because", "")
        code = self.proc.returncode
        how = (f" (killed: it {why})" if why else f" (exit code {code})" if code is not None and code >= 0
               else f" (killed by signal {-code})" if code is not None else "")
        tail = self._log_tail()
        return f"{how}; its log {self.log_path} ends:\n{tail}" if tail else how

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(self._log_start, f.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _die(self, why: str, held: list[_Item] = (), error: type[WorkerError] | None = None) -> None:
        """Mark the worker dead (the first reason given stays), kill its child, and fail what it
        held and what waits for it."""
        with self._lock:
            first = self.state != "dead"
            if first:
                self.state, self._death, self._error = "dead", why, error or WorkerError
        if first:
            self._kill()
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            if self._on_end is not None:
                self._on_end()
        pending = list(held)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Item):
                pending.append(item)
        for item in pending:
            if not item.future.done() and (item.future.running() or item.future.set_running_or_notify_cancel()):
                item.future.set_exception(self._error(self._death))
        self.busy = False


class WorkerPool:
    """The daemon's warm workers, by model; see the module's docstring for the rules."""

    def __init__(self, limits: WorkerLimits | None = None):
        self.limits = limits or WorkerLimits()
        self._workers: dict[WorkerKey, Worker] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="predict-worker-reaper", daemon=True)
        self._reaper.start()

    def get(self, key: WorkerKey, start: Callable[[], Worker]) -> Worker:
        """The worker of `key`, started with `start()` when there is none (or it died), after
        stopping idle workers used longest ago to stay within the limits."""
        with self._lock:
            if self._closed.is_set():
                raise WorkerError("the daemon is stopping")
            worker = self._workers.get(key)
            if worker is not None and worker.state != "dead":
                return worker
            self._workers.pop(key, None)
            for old in [w for k, w in self._workers.items() if w.idle and k != key and
                        (k.job_id, k.checkpoint, k.onnx) == (key.job_id, key.checkpoint, key.onnx)]:
                self._remove(old)  # the same file as it was: a new best (or a new export) replaced it
            while len(self._workers) >= self.limits.workers or (
                    self._workers and self._rss() >= self.limits.memory_bytes):
                idle = sorted((w for w in self._workers.values() if w.idle), key=lambda w: w.last_used)
                if not idle:
                    raise PoolBusy(f"all {len(self._workers)} predict workers are busy with other models "
                                   f"(`visionyard serve --predict-workers {self.limits.workers}`); "
                                   "try again in a moment")
                self._remove(idle[0])
            worker = self._workers[key] = start()
            return worker

    def release_gpus(self) -> int:
        """Stop the idle workers that hold a GPU (a training job wants it: training comes first); how many."""
        with self._lock:
            chosen = [w for w in self._workers.values() if getattr(w, "holds_gpu", False) and w.idle]
            for worker in chosen:
                self._remove(worker)
        return len(chosen)

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            return [w.info() for w in self._workers.values()]

    def stop(self, job_id: str | None = None) -> int:
        """Stop the workers of `job_id` (every worker when None); how many were stopped."""
        with self._lock:
            chosen = [w for k, w in self._workers.items() if job_id is None or k.job_id == job_id]
            for worker in chosen:
                self._remove(worker)
        return len(chosen)

    def close(self) -> None:
        self._closed.set()
        self.stop()

    def _remove(self, worker: Worker) -> None:
        self._workers.pop(worker.key, None)
        log.info("stopping the predict worker of job %s (pid %s)", worker.key.job_id, worker.pid)
        worker.stop()

    def _rss(self) -> int:
        return sum(rss_bytes(w.pid) for w in self._workers.values())

    def _reap(self) -> None:
        period = max(0.05, min(5.0, self.limits.idle_seconds / 4))
        while not self._closed.wait(period):
            now = time.monotonic()
            with self._lock:
                for worker in list(self._workers.values()):
                    if worker.state == "dead" or (worker.idle and now - worker.last_used >= self.limits.idle_seconds):
                        self._remove(worker)
                idle = sorted((w for w in self._workers.values() if w.idle), key=lambda w: w.last_used)
                while idle and self._rss() > self.limits.memory_bytes:
                    self._remove(idle.pop(0))
