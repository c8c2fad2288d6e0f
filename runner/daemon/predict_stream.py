"""Runner RPC `PredictStream`: many images through the warm worker of the job's model, read ahead.

The job, checkpoint and worker are those a `Predict` of the stream's first message gets (`predict_rpcs`); each
image is checked and handed to the worker as it is read, up to `STREAM_WINDOW` ahead of the one answered next, so
the worker always has a batch to take. Boxes sent to a model that finds its objects itself (any but a top-down
pose model: `predictions.boxes_refused`) refuse the whole stream once, INVALID_ARGUMENT, not each image: in its
opening message or its first image's, before the worker starts; in a later image's, the stream ends there (the
images before it answered), that image never reaching the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

import grpc

from protos import visionyard_pb2 as pb
from runner.daemon.predict_rpcs import predict_options
from runner.daemon.predictions import (PredictBusy, PredictOutputError, ThreadContext, boxes_refused, check_boxes,
                                      check_input, response_from_json)
from runner.daemon.workers import WorkerError, WorkerKey

STREAM_WINDOW = 32  # images of one stream handed to the worker ahead of the one answered next


class StreamRefused(ValueError):
    """A message the whole stream is refused for (INVALID_ARGUMENT), not only its image."""


class PredictStreamRpcs:
    """Mixed into RunnerServicer; needs `self.pool`, `self.predict_gate` and PredictRpcs' `_predict_job`,
    `_worker_for` and `_image_file`."""

    async def PredictStream(self, requests, context):
        """Many images through the job's worker: read ahead up to `STREAM_WINDOW` images (each checked,
        written into the job dir and handed to the worker, which batches them), answered in the
        order sent as each is done. An image's own problem is its answer's `error`; the job, its
        checkpoint or its worker failing ends the stream with that status, and so do boxes for a model
        that takes none (the opening message's or the first image's: before the worker starts)."""
        loop = asyncio.get_running_loop()
        sync = ThreadContext(context, loop)
        requests = aiter(requests)
        first = await anext(requests, None)
        if first is None:
            return
        try:
            record, key = await loop.run_in_executor(self.pool, self._predict_job, first, sync)
            opening = [first]
            if not (first.image or first.name):  # the stream's options alone: its first image comes next
                following = await anext(requests, None)
                opening += [following] if following is not None else []
            refused = boxes_refused(record.spec.get("framework", ""), record.spec.get("task", ""))
            if refused and any(message.boxes for message in opening):
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused)
            try:
                async with self.predict_gate.slot():
                    async for answer in self._stream_answers(opening, requests, record, key, sync, context):
                        yield answer
            except PredictBusy as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except asyncio.CancelledError:
            sync.cancel()
            raise

    async def _stream_answers(self, opening: list, requests, record, key: WorkerKey, sync: ThreadContext, context):
        """The answers of the stream whose first messages, already read, are ``opening``."""
        loop = asyncio.get_running_loop()
        first = opening[0]
        worker = await loop.run_in_executor(self.pool, self._worker_for, record, key, sync)
        top_k, annotate, options = first.top_k or 5, first.annotate, predict_options(first)
        window: asyncio.Queue = asyncio.Queue(maxsize=STREAM_WINDOW)
        max_pixels, task = self.predict_gate.limits.max_pixels, record.spec.get("task", "")
        framework = record.spec.get("framework", "")
        refused = boxes_refused(framework, task)

        def hand_over(index: int, message) -> tuple:
            """(index, name, image file or None, answer's future or error) for one message."""
            if refused and message.boxes:
                return index, message.name, None, StreamRefused(refused)
            try:
                if not message.image:
                    raise ValueError("the image is empty")
                check_input(message.image, task, max_pixels)
                boxes = check_boxes(message.boxes, message.image, framework, task)
            except ValueError as exc:
                return index, message.name, None, str(exc)
            try:
                image = self._image_file(record, message.image)
            except OSError as exc:
                return index, message.name, None, f"the image could not be stored in the job dir: {exc}"
            try:
                return index, message.name, image, worker.submit(image, top_k, annotate, streaming=True,
                                                                 options={**options, **predict_options(None, boxes)})
            except WorkerError as exc:
                os.unlink(image)
                return index, message.name, None, exc

        def discard(taken) -> None:
            """An image handed over whose answer nobody will read: left out, its file removed."""
            if taken is not None and taken[2] is not None:
                taken[3].cancel()
                with contextlib.suppress(OSError):
                    os.unlink(taken[2])

        async def read() -> None:
            index = 0
            pending = list(opening)
            message = pending.pop(0)
            while message is not None:
                if message.image or message.name:
                    handing = loop.run_in_executor(self.pool, hand_over, index, message)
                    try:
                        taken = await asyncio.shield(handing)
                        await window.put(taken)
                    except asyncio.CancelledError:
                        handing.add_done_callback(lambda done: discard(done.result()))
                        raise
                    if isinstance(taken[3], StreamRefused):
                        return  # the stream ends there: nothing after it is read
                    index += 1
                message = pending.pop(0) if pending else await anext(requests, None)
            worker.flush()  # the stream's last images need not wait for more
            await window.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (taken := await window.get()) is not None:
                index, name, image, answer = taken
                if isinstance(answer, WorkerError):
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"predict failed: {answer}")
                if isinstance(answer, StreamRefused):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(answer))
                if isinstance(answer, str):
                    yield pb.PredictStreamResponse(index=index, name=name, error=answer)
                    continue
                try:
                    result = await asyncio.wrap_future(answer)
                    yield pb.PredictStreamResponse(index=index, name=name,
                                                   result=response_from_json(result, task=record.spec.get("task", "")))
                except WorkerError as exc:
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"predict failed: {exc}")
                except (ValueError, PredictOutputError) as exc:
                    yield pb.PredictStreamResponse(index=index, name=name, error=str(exc))
                finally:
                    with contextlib.suppress(OSError):
                        os.unlink(image)
            await reader
        finally:
            reader.cancel()
            worker.flush()
            while not window.empty():  # what was handed over but not answered
                discard(window.get_nowait())
