"""The Reporter SDK: how a training child tells the daemon what it is doing.

Training must never wait for, or crash because of, the daemon. Every public method only
appends to an in-memory queue and returns; a daemon thread batches the queue into
``ReportBatch`` messages and sends them with ``Reporter.Report``. A batch that fails is resent
unchanged (same ``batch_seq``) with exponential backoff until the daemon acks it, so the
daemon applies every item exactly once by deduplicating on ``batch_seq``. ``close()`` flushes
what is queued, bounded by a timeout; with a journal, a daemon that can't be reached at all ends
the wait at once (the journal has every batch).

Every batch is also appended to a journal file in the job dir (``VISIONYARD_REPORT_JOURNAL``)
as soon as it is made, before it is sent: a daemon that was down while the child reported (or
restarted in between) applies from the journal what it never received, so nothing reported is
lost. Records are a 4-byte big-endian length and a serialized ``ReportBatch``; a record torn by a
crash mid-write is the journal's end.

Without ``VISIONYARD_REPORTER_ADDRESS`` (a bare run outside the daemon, e.g. a benchmark) the
reporter only logs, and the same training code runs unchanged.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from adapters.child_env import ENV_ADDRESS, ENV_JOB_ID, ENV_JOURNAL, ENV_TLS_ROOTS, ENV_TOKEN

log = logging.getLogger("visionyard.reporter")

PROGRESS_INTERVAL = 1.0  # seconds between progress events (each wakes the sender: a cost to a busy CPU loop)
RPC_TIMEOUT = 5.0
BATCH_MAX_ITEMS = 200
LINGER = 0.05  # seconds to wait for more items before sending a batch
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 1.0  # a restarted daemon hears from a child within a second
MAX_QUEUED = 10_000  # beyond this, progress items are dropped (metrics never are)

# Codes after which resending the same batch cannot succeed: the batch is dropped, logged.
_PERMANENT_CODES = frozenset(
    (
        "INVALID_ARGUMENT",
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
        "NOT_FOUND",
        "FAILED_PRECONDITION",
        "UNIMPLEMENTED",
    )
)


class Reporter:
    """Queue reports for the daemon; every method returns at once and never raises."""

    def __init__(
        self,
        target: str | None,
        job_id: str = "",
        token: str = "",
        *,
        rpc_timeout: float = RPC_TIMEOUT,
        batch_max_items: int = BATCH_MAX_ITEMS,
        linger: float = LINGER,
        progress_interval: float = PROGRESS_INTERVAL,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        clock: Callable[[], float] = time.monotonic,
        journal: str | os.PathLike | None = None,
        tls_roots: str | None = None,
    ) -> None:
        self.target = target or None
        self._tls_roots = tls_roots or None
        self._journal_path = journal
        self._journal = None
        self.job_id = job_id
        self._token = token
        self._rpc_timeout = rpc_timeout
        self._batch_max = batch_max_items
        self._linger = linger
        self._progress_interval = progress_interval
        self._backoff = (backoff_initial, backoff_max)
        self._clock = clock
        self._last_progress: float | None = None

        self._queue: deque = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = math.inf
        self._in_flight = False
        self._batch_seq = 0
        self._undelivered = 0
        self._thread: threading.Thread | None = None
        if self.target:
            self._thread = threading.Thread(target=self._run, name="visionyard-reporter", daemon=True)
            self._thread.start()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **options) -> Reporter:
        """A reporter for the daemon named in the environment, or a log-only one without it."""
        env = os.environ if environ is None else environ
        target = env.get(ENV_ADDRESS, "").strip()
        if not target:
            log.info("%s is not set: reporting to the log only", ENV_ADDRESS)
        options.setdefault("journal", env.get(ENV_JOURNAL) or None)
        options.setdefault("tls_roots", env.get(ENV_TLS_ROOTS) or None)
        return cls(target or None, env.get(ENV_JOB_ID, ""), env.get(ENV_TOKEN, ""), **options)

    @property
    def connected(self) -> bool:
        """True when reports go to a daemon (False: log only)."""
        return self._thread is not None

    # ------------------------------------------------------------ public API

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        """Metrics of one step (the epoch, 1-based, for epoch metrics)."""
        clean = _numbers(values)
        log.info("step %d: %s", step, "  ".join(f"{k}={v:.6g}" for k, v in clean.items()))
        self._put("metrics", {"step": int(step), "values": clean})

    def progress(self, epoch: int, total_epochs: int, step: int, total_steps: int) -> None:
        """Batch progress; throttled, but the last step of an epoch is always sent."""
        now = self._clock()
        last_step = step >= total_steps
        recent = self._last_progress is not None and now - self._last_progress < self._progress_interval
        if recent and not last_step:
            return
        self._last_progress = now
        log.debug("epoch %d/%d step %d/%d", epoch, total_epochs, step, total_steps)
        payload = {"epoch": int(epoch), "total_epochs": int(total_epochs), "step": int(step)}
        self._put("progress", {**payload, "total_steps": int(total_steps)})

    def checkpoint(self, path: str | os.PathLike, kind: str, epoch: int) -> None:
        """A checkpoint file was written (``kind``: best | last)."""
        log.info("checkpoint %s (epoch %d): %s", kind, epoch, path)
        self._put("checkpoint", {"path": str(path), "kind": kind, "epoch": int(epoch)})

    def result(
        self,
        metrics: Mapping[str, float],
        best_checkpoint: str | os.PathLike | None,
        last_checkpoint: str | os.PathLike | None,
        note: str = "",
    ) -> None:
        """The final metrics and checkpoints of a successful run; ``note`` says how it ended when that was
        not at its last epoch ("stopped early at epoch 4 (...)"), and becomes the job's message."""
        values = _numbers(metrics)
        log.info("result: best=%s last=%s%s", best_checkpoint, last_checkpoint, f" ({note})" if note else "")
        best, last = str(best_checkpoint or ""), str(last_checkpoint or "")
        item = {"metrics": values, "best_checkpoint": best, "last_checkpoint": last}
        if note:
            item["note"] = str(note)
        self._put("result", item)

    def error(self, type: str, message: str, traceback: str = "") -> None:  # noqa: A002 (wire names)
        """Why the run failed (the traceback is printed to stderr by the caller as well)."""
        self._put("error", {"type": str(type), "message": str(message), "traceback": str(traceback)})

    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued (waiting at most ``timeout`` s); True when all of it was acked."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._thread is None:
            return True
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.5)
        with self._cond:
            flushed = not self._queue and not self._in_flight
            undelivered = self._undelivered or len(self._queue)
            # A sender that is still busy (a hung RPC, a starved thread) dies with the process:
            # whatever it has not taken yet is journaled here, so the journal keeps all of it.
            while self._take_batch(block=False) is not None:
                pass
        if not flushed:
            kept = f"; they are in the journal {self._journal_path}" if self._journal_path else ""
            log.warning("reporter closed with %d item(s) not delivered%s", undelivered, kept)
        return flushed

    def __enter__(self) -> Reporter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ queue

    def _put(self, kind: str, payload: dict) -> None:
        if self._thread is None:
            return
        with self._cond:
            if self._closing:
                log.debug("reporter is closed; dropping %s", kind)
                return
            if kind == "progress" and len(self._queue) >= MAX_QUEUED:
                return  # the daemon is far behind: the next progress supersedes this one
            self._queue.append((time.time(), kind, payload))
            self._cond.notify_all()

    def _take_batch(self, block: bool = True):
        """The next batch of up to `batch_max_items` queued items, numbered and journaled, or None:
        waits for items when `block` (and returns None once closed and empty), else takes what is
        there now. Taking and journaling happen under one lock, so an item is always either queued
        or in the journal."""
        with self._cond:
            if block:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._closing and len(self._queue) < self._batch_max and \
                        any(kind != "progress" for _, kind, _ in self._queue):
                    self._cond.wait(self._linger)  # let a burst (metrics + checkpoints) share a batch
            items = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
            if not items:
                return None
            self._in_flight = True
            self._batch_seq += 1
            batch = self._make_batch(self._batch_seq, items)
            self._journal_batch(batch)
            return batch

    # ------------------------------------------------------------ sender thread

    def _run(self) -> None:
        try:
            self._send_loop()
        except Exception:  # the sender must never take the process down
            log.exception("reporter thread failed; further reports are logged only")
            with self._cond:
                self._closing = True  # stop queueing what nobody will send
                self._queue.clear()

    def _send_loop(self) -> None:
        import grpc

        from protos import visionyard_pb2_grpc

        channel = stub = None
        pending: deque = deque()  # batches made (and journaled) but not acked yet, oldest first
        backoff = self._backoff[0]
        failures = 0  # consecutive failed attempts
        while True:
            while (taken := self._take_batch(block=not pending)) is not None:  # batch everything queued
                pending.append(taken)
                if len(pending) > 1 or failures:
                    continue
                break
            if not pending:
                break
            batch = pending[0]
            if channel is None:
                options = [("grpc.max_reconnect_backoff_ms", 2000)]
                if self._tls_roots:
                    credentials = grpc.ssl_channel_credentials(root_certificates=self._tls_roots.encode())
                    channel = grpc.secure_channel(self.target, credentials, options=options)
                else:
                    channel = grpc.insecure_channel(self.target, options=options)
                stub = visionyard_pb2_grpc.ReporterStub(channel)
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                ack = stub.Report(batch, timeout=min(self._rpc_timeout, remaining))
                if ack.batch_seq != batch.batch_seq:
                    log.warning("daemon acked batch %d for batch %d", ack.batch_seq, batch.batch_seq)
                if failures:
                    log.info("reporting to the daemon again after %d failed attempt(s)", failures)
                pending.popleft()
                backoff, failures = self._backoff[0], 0
                if not pending:
                    self._mark_sent()
                continue
            except grpc.RpcError as exc:
                code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
                details = exc.details() if hasattr(exc, "details") else str(exc)
                if code in _PERMANENT_CODES:
                    log.error(
                        "daemon refused report batch %d (%s: %s); dropped", batch.batch_seq, code, details
                    )
                    pending.popleft()
                    if not pending:
                        self._mark_sent()
                    continue
                failures += 1
                if failures == 1 or failures % 20 == 0:  # a long outage logs a line now and then
                    log.warning(
                        "report batch %d failed %d time(s) (%s: %s); retrying with backoff",
                        batch.batch_seq,
                        failures,
                        code,
                        details,
                    )
                if code == "UNAVAILABLE":  # a fresh channel reconnects at once when the daemon is back
                    channel.close()
                    channel = None
                    if self._closing and self._journal_path is not None:
                        # Closing while the daemon can't be reached: everything made is in the
                        # journal, which the daemon applies when it finds the job ended; waiting
                        # for it would only hold the finished process up.
                        log.info("the daemon can't be reached; %d report batch(es) left in the journal %s",
                                 len(pending), self._journal_path)
                        break
            self._sleep(min(backoff, self._deadline - time.monotonic()))
            backoff = min(backoff * 2, self._backoff[1])
        if channel is not None:
            channel.close()
        with self._cond:
            self._undelivered = sum(len(b.items) for b in pending) + len(self._queue)
            while self._take_batch(block=False) is not None:  # past the deadline: the journal keeps them
                pass
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _journal_batch(self, batch) -> None:
        if self._journal_path is None:
            return
        data = batch.SerializeToString()
        try:
            if self._journal is None:
                self._journal = open(self._journal_path, "ab", buffering=0)
            self._journal.write(len(data).to_bytes(4, "big") + data)  # one write: torn only by a crash
        except OSError as exc:
            log.warning("could not journal report batch %d (%s); it is only sent", batch.batch_seq, exc)
            self._journal_path = None

    def _mark_sent(self) -> None:
        with self._cond:
            self._in_flight = False
            self._cond.notify_all()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def _make_batch(self, seq: int, items: list):
        from protos import visionyard_pb2 as pb

        batch = pb.ReportBatch(job_id=self.job_id, token=self._token, batch_seq=seq)
        for wall_time, kind, payload in items:
            item = batch.items.add(time=wall_time)
            if kind == "metrics":
                item.metrics.step = payload["step"]
                item.metrics.values.update(payload["values"])
            elif kind == "progress":
                item.progress.CopyFrom(pb.ProgressEvent(**payload))
            elif kind == "checkpoint":
                item.checkpoint.CopyFrom(pb.CheckpointEvent(**payload))
            elif kind == "result":
                item.result.CopyFrom(pb.ResultReport(**payload))
            elif kind == "error":
                item.error.CopyFrom(pb.ErrorReport(**payload))
        return batch


def read_journal(path: str | os.PathLike) -> list:
    """The ``ReportBatch``es journaled in `path`, in order; a torn last record ends the list."""
    from protos import visionyard_pb2 as pb

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    batches, at = [], 0
    while at + 4 <= len(data):
        size = int.from_bytes(data[at:at + 4], "big")
        if at + 4 + size > len(data):
            break
        try:
            batches.append(pb.ReportBatch.FromString(data[at + 4:at + 4 + size]))
        except Exception:  # noqa: BLE001 (a corrupt record: what follows can't be trusted either)
            break
        at += 4 + size
    return batches


def _numbers(values: Mapping[str, float]) -> dict[str, float]:
    """``values`` as plain floats; a value that is not a number is logged and left out."""
    clean = {}
    for name, value in values.items():
        try:
            clean[str(name)] = float(value)
        except (TypeError, ValueError):
            log.warning("metric %r has a non-numeric value %r; not reported", name, value)
    return clean
