"""Watch streams on asyncio: thousands open cost a coroutine each, not a thread each.

The client-facing servers are `grpc.aio` servers on one event loop (`EventLoopThread`). Unary
calls keep their plain functions, run on a bounded thread pool; `WatchJob` is a coroutine per
stream that sleeps on its job's `asyncio.Event` and sends events serialized once, from memory
(`JobStore.recent_wire`), so a line printed by a job goes to 500 watchers as one serialization
and 500 socket writes. A stream that can't keep up slows only itself (each write waits for its
own flow control).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from concurrent.futures import Executor
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import grpc

from protos import visionyard_pb2 as pb
from runner.spec.wire import quote
from runner.core.store import JobNotFound, JobStore, WireEvent

log = logging.getLogger("visionyard.daemon")
WATCH_POLL_SECONDS = 5.0  # a watch wakes on its job's events; this only re-reads the job's state
WAKE_BATCH = 50  # streams of one job woken per turn of the loop
READ_LIMIT = 500  # events read per turn of a stream
T = TypeVar("T")


class EventLoopThread:
    """An asyncio loop on a thread of its own, for the aio servers (and what they await)."""

    def __init__(self, name: str = "grpc-aio"):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coroutine: Awaitable[T], timeout: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for its result here."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class WatchHub:
    """Per watched job, the streams waiting for its next events, woken when it gets some.

    The store tells the hub after every commit, on the writer's thread; the hub hands the news to
    the loop only for jobs somebody watches. A stream registers (`watching`) before its first read
    and takes its wakeup (`wakeup`) before each read, so an event committed before the read is in
    it and one committed after wakes the stream. Streams are woken `WAKE_BATCH` at a time, each
    batch a turn of the loop, so a call that arrives while a line goes to 500 watchers waits for
    one batch, not for all of them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._streams: Counter[str] = Counter()  # job id -> open streams (changed on the loop only)
        self._waiting: dict[str, list[asyncio.Future]] = {}

    def changed(self, job_ids: set[str]) -> None:  # any thread
        watched = [job_id for job_id in job_ids if job_id in self._streams]
        if watched:
            self.loop.call_soon_threadsafe(self._notify, watched)

    def _notify(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            self._wake(self._waiting.pop(job_id, []))

    def _wake(self, waiters: list[asyncio.Future]) -> None:
        for waiter in waiters[:WAKE_BATCH]:
            if not waiter.done():
                waiter.set_result(None)
        if len(waiters) > WAKE_BATCH:
            self.loop.call_soon(self._wake, waiters[WAKE_BATCH:])

    def wakeup(self, job_id: str) -> asyncio.Future:
        """What the job's next change resolves: take it before reading, then wait on it."""
        waiter = self.loop.create_future()
        self._waiting.setdefault(job_id, []).append(waiter)
        return waiter

    def watching(self, job_id: str) -> None:
        self._streams[job_id] += 1

    def left(self, job_id: str) -> None:
        self._streams[job_id] -= 1
        if self._streams[job_id] <= 0:
            del self._streams[job_id]
            self._waiting.pop(job_id, None)


async def watch_job(store: JobStore, hub: WatchHub, pool: Executor, request: pb.WatchJobRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    """WatchJob: the job's events after `after_seq` as they come, until its run has ended (or
    until those stored so far were sent, with `snapshot`)."""
    loop = asyncio.get_running_loop()

    def offload(function: Callable[..., T], *args) -> Awaitable[T]:
        return loop.run_in_executor(pool, function, *args)

    job_id = request.job_id
    if not job_id or len(job_id) > 64 or not job_id.isprintable():
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                            f"job_id {quote(job_id, 80)} is not a job id (1 to 64 printable characters; "
                            "see `visionyard list`)")
    try:
        record = await offload(store.get, job_id)
    except JobNotFound:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {quote(job_id, 80)} (see `visionyard list`)")
    job_id, after, ended = record.id, request.after_seq, record.state.is_terminal()
    include_logs = request.include_logs or request.logs_only
    hub.watching(job_id)
    try:
        while True:
            wakeup = hub.wakeup(job_id)
            batch: list[WireEvent] | None = store.recent_wire(job_id, after, include_logs, READ_LIMIT)
            if batch is None:  # older than what memory holds: from the database, off the loop
                batch = await offload(store.wire_events, job_id, after, include_logs, READ_LIMIT)
            for event in batch:
                after = event.seq
                ended = ended or event.final
                if not request.logs_only or event.kind == "log":
                    yield event.data
            if batch:
                wakeup.cancel()
                continue
            if request.snapshot or ended:
                return
            try:
                async with asyncio.timeout(WATCH_POLL_SECONDS):
                    await wakeup
            except TimeoutError:
                ended = (await offload(store.state, job_id)).is_terminal()
    finally:
        hub.left(job_id)
