"""Predict results: the child's JSON object ↔ ``pb.PredictResponse``, converted here once.

The child (``adapters.entrypoint --predict``) prints one JSON object as its last stdout line::

    {"task", "predictions": [{"label", "score", "index", "box"?, "polygon"?, "keypoints"?,
     "rotated_box"?}], "width", "height", "mask_png_b64"?, "image_png_b64"?, "text"?,
     "timings_ms": {...}}

with ``box: [x1, y1, x2, y2]``, ``polygon: [[x, y], ...]``, ``keypoints: [[x, y, v], ...]``,
``rotated_box: [cx, cy, w, h, angle]``. Children from before that contract printed only
``{"predictions": [{"label", "score", "index"}]}``; that still parses.

Also here: the bounds on predicts, kept apart from how a predict is run (by a warm worker,
``runner.daemon.workers``) — a few at once and a short queue (:class:`PredictGate`), an image's
bytes (:data:`runner.settings.MAX_IMAGE_BYTES`) and pixels (``adapters.image_limits``), and what a
request's bytes must be for its job's task (:func:`check_input`: an image, or a video file for a task
that predicts from videos), and the boxes a top-down pose model is given (:func:`check_boxes`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import json
import math
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from adapters.datasets.video_folder import VIDEO_TASKS, sniff_container
from adapters.image_limits import DEFAULT_MAX_PIXELS, check_image, header_size
from protos import visionyard_pb2 as pb

DEFAULT_CONCURRENT_PREDICTS = 8  # each holds its image here and its decoded pixels in a worker's batch
QUEUE_PER_SLOT = 2  # predicts that may wait for a slot, per slot

_BYTES_FIELDS = ("mask_png", "image_png", "depth_png")


def check_input(data: bytes, task: str, max_pixels: int) -> None:
    """Refuse bytes that are not what a model of ``task`` predicts from, by their header: a video file
    (MP4/QuickTime, AVI, Matroska/WebM) for a task that predicts from videos (``VIDEO_TASKS``; its frames'
    size is checked by the worker, which reads the container), else an image whose header says it is
    within ``max_pixels`` (``ImageTooLarge``, a ValueError, when it is over). ValueError saying what was
    sent and what to send instead."""
    container = sniff_container(data[:16])
    if task in VIDEO_TASKS:
        if container is not None:
            return
        if header_size(data) is not None:
            raise ValueError(f"a {task} model predicts from a video file, not an image: send the whole video "
                             "(MP4/QuickTime, AVI, Matroska/WebM)")
        raise ValueError(f"the {len(data)} bytes sent are not a video file (no MP4/QuickTime, AVI or Matroska/WebM "
                         "header): send the whole video file")
    if check_image(data, max_pixels) is not None:
        return
    if container is not None:
        raise ValueError(f"the {len(data)} bytes sent are a video file ({container}); a {task or 'this'} model "
                         "predicts from images: send its frames as images (`visionyard predict JOB VIDEO` does)")
    raise ValueError(f"the {len(data)} bytes sent are not an image (no image format reads their header: send a PNG, "
                     "JPEG, BMP, TIFF, WebP, ... file)")


#: (framework, task) of the models that predict inside boxes they are given (top-down pose: Transformers' ViTPose,
#: ``adapters/transformers/tasks/pose.py``); every other model finds its objects itself and is refused boxes.
BOX_PROMPTED = frozenset({("transformers", "pose_estimation")})
#: Boxes one image may be given at most (each is a crop through the model).
MAX_BOXES = 100


def check_boxes(boxes, data: bytes, framework: str, task: str) -> list[list[float]]:
    """The boxes of a request (``pb.Box``, x1 y1 x2 y2 in the image's pixels) as lists, once checked: only for a
    model that predicts inside given boxes (``BOX_PROMPTED``), at most ``MAX_BOXES``, each with x2 > x1 and y2 > y1
    and inside the image whose bytes are ``data`` (its size from the header). ValueError naming ``boxes`` (the
    CLI's ``--boxes``) and what is wrong otherwise."""
    if not boxes:
        return []
    refused = boxes_refused(framework, task)
    if refused:
        raise ValueError(refused)
    if len(boxes) > MAX_BOXES:
        raise ValueError(f"boxes (--boxes): {len(boxes)} boxes for one image; at most {MAX_BOXES}")
    size = header_size(data)
    found = []
    for i, box in enumerate(boxes):
        x1, y1, x2, y2 = (float(v) for v in (box.x1, box.y1, box.x2, box.y2))
        shown = f"[{x1:g}, {y1:g}, {x2:g}, {y2:g}]"
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
            raise ValueError(f"boxes (--boxes): box {i + 1} {shown} is not a box x1,y1,x2,y2 with x2 > x1 and "
                             "y2 > y1")
        if size is not None and not (0 <= x1 and 0 <= y1 and x2 <= size[0] and y2 <= size[1]):
            raise ValueError(f"boxes (--boxes): box {i + 1} {shown} reaches outside the {size[0]}x{size[1]} image; "
                             f"boxes are x1,y1,x2,y2 in its pixels, within 0..{size[0]} and 0..{size[1]}")
        found.append([x1, y1, x2, y2])
    return found


def boxes_refused(framework: str, task: str) -> str | None:
    """Why a model of ``framework``'s ``task`` is given no boxes (it finds its objects itself), naming ``boxes``
    (the CLI's ``--boxes``) and the task; None for one that predicts inside them (``BOX_PROMPTED``)."""
    if (framework, task) in BOX_PROMPTED:
        return None
    return (f"boxes (--boxes) are taken only by top-down pose models (Transformers ViTPose), which predict the "
            f"keypoints inside them; a {framework or '?'} {task or '?'} model finds its objects itself: predict "
            "without boxes")


class PredictOutputError(ValueError):
    """The child's predict output is missing or does not have the documented shape."""


def parse_child_output(stdout: str, task: str = "") -> pb.PredictResponse:
    """The child's stdout → response, from its last non-empty line.

    ``task`` (the job's) fills in when the child names none.
    """
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PredictOutputError("predict printed nothing")
    try:
        data = json.loads(lines[-1])
    except ValueError as exc:
        raise PredictOutputError(f"predict's last line is not JSON ({exc}): {lines[-1][:200]}") from None
    return response_from_json(data, task)


def response_from_json(data: dict[str, Any] | list, task: str = "") -> pb.PredictResponse:
    """A child's JSON object (or a bare prediction list) → ``pb.PredictResponse``."""
    if isinstance(data, list):
        data = {"predictions": data}
    if not isinstance(data, dict) or not isinstance(data.get("predictions", []), list):
        raise PredictOutputError(f"predict result must be an object with a 'predictions' list, got {str(data)[:200]}")
    try:
        response = pb.PredictResponse(
            predictions=[_prediction(p) for p in data.get("predictions", [])],
            task=str(data.get("task") or task),
            width=int(data.get("width") or 0),
            height=int(data.get("height") or 0),
            text=str(data.get("text") or ""),
            timings_ms={str(k): float(v) for k, v in (data.get("timings_ms") or {}).items()},
        )
        for name in _BYTES_FIELDS:
            if data.get(f"{name}_b64"):
                setattr(response, name, base64.b64decode(data[f"{name}_b64"], validate=True))
    except (AttributeError, TypeError, ValueError, KeyError, binascii.Error) as exc:
        raise PredictOutputError(f"predict result is malformed: {exc}") from None
    return response


def response_to_json(response: pb.PredictResponse) -> dict[str, Any]:
    """The inverse of :func:`response_from_json`: the child's JSON shape, bytes as base64."""
    data: dict[str, Any] = {
        "task": response.task,
        "predictions": [_prediction_to_json(p) for p in response.predictions],
        "width": response.width,
        "height": response.height,
        "timings_ms": dict(response.timings_ms),
    }
    for name in _BYTES_FIELDS:
        if getattr(response, name):
            data[f"{name}_b64"] = base64.b64encode(getattr(response, name)).decode("ascii")
    if response.text:
        data["text"] = response.text
    return data


def _prediction(p: dict[str, Any]) -> pb.Prediction:
    prediction = pb.Prediction(label=str(p.get("label", "")), score=float(p.get("score", 0.0)),
                               index=int(p.get("index", 0)))
    if p.get("box") is not None:
        x1, y1, x2, y2 = p["box"]
        prediction.box.CopyFrom(pb.Box(x1=x1, y1=y1, x2=x2, y2=y2))
    if p.get("rotated_box") is not None:
        cx, cy, w, h, angle = p["rotated_box"]
        prediction.rotated_box.CopyFrom(pb.RotatedBox(cx=cx, cy=cy, w=w, h=h, angle=angle))
    for x, y in p.get("polygon") or []:
        prediction.polygon.add(x=x, y=y)
    for x, y, visibility in p.get("keypoints") or []:
        prediction.keypoints.add(x=x, y=y, visibility=visibility)
    return prediction


def _prediction_to_json(p: pb.Prediction) -> dict[str, Any]:
    data: dict[str, Any] = {"label": p.label, "score": p.score, "index": p.index}
    if p.HasField("box"):
        data["box"] = [p.box.x1, p.box.y1, p.box.x2, p.box.y2]
    if p.polygon:
        data["polygon"] = [[q.x, q.y] for q in p.polygon]
    if p.keypoints:
        data["keypoints"] = [[k.x, k.y, k.visibility] for k in p.keypoints]
    if p.HasField("rotated_box"):
        r = p.rotated_box
        data["rotated_box"] = [r.cx, r.cy, r.w, r.h, r.angle]
    return data


# ---------------------------------------------------------------- bounds


@dataclass(frozen=True)
class PredictLimits:
    """How many predicts run at once (`concurrent`; `queued` more wait for a slot, the rest are
    refused) and the most pixels an image may have (`visionyard serve --max-concurrent-predicts`,
    `--predict-max-pixels`)."""

    concurrent: int = DEFAULT_CONCURRENT_PREDICTS
    queued: int = DEFAULT_CONCURRENT_PREDICTS * QUEUE_PER_SLOT
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def with_concurrency(cls, concurrent: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> "PredictLimits":
        return cls(concurrent, concurrent * QUEUE_PER_SLOT, max_pixels)


class PredictBusy(Exception):
    """Every slot is taken and the queue is full."""


class PredictGate:
    """At most `limits.concurrent` predicts at once, `limits.queued` more waiting in turn (first
    come, first served), the others refused at once with :class:`PredictBusy`.

    Lives on the servers' event loop: a waiting predict holds no thread, and one whose client goes
    (the call is cancelled) leaves the queue."""

    def __init__(self, limits: PredictLimits):
        self.limits = limits
        self.running = 0
        self._waiting: collections.deque[asyncio.Future] = collections.deque()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.running < self.limits.concurrent and not self._waiting:
            self.running += 1
        elif len(self._waiting) < self.limits.queued:
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                await turn  # a predict that ends hands its slot on: `running` stays
            except BaseException:
                if turn.done() and not turn.cancelled():  # handed a slot just as it was cancelled
                    self._release()
                else:
                    self._waiting.remove(turn)
                raise
        else:
            raise PredictBusy(f"the daemon is busy: {self.running} predict(s) running and {len(self._waiting)} "
                              f"waiting, its limit (`visionyard serve --max-concurrent-predicts "
                              f"{self.limits.concurrent}` runs {self.limits.concurrent} and queues "
                              f"{self.limits.queued}); try again in a moment")
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1


class PredictCancelled(Exception):
    """The caller went away (cancelled, past its deadline, or the server stops): nothing to answer."""


class ThreadContext:
    """An asyncio server's servicer context, for a sync servicer body run on a pool thread: `abort`
    runs on the loop, and :meth:`cancel` (the coroutine's, when its call is cancelled) runs what was
    registered with :meth:`add_callback` at once, and makes :meth:`is_active` false.

    grpc's own context for sync handlers on an asyncio server runs `add_callback`'s callbacks only
    after the handler returned and has no `is_active`: a child would outlive its caller."""

    def __init__(self, context, loop: asyncio.AbstractEventLoop):
        self._context, self._loop = context, loop
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._gone = False

    def abort(self, code, details: str):
        if not self.is_active():
            raise PredictCancelled
        asyncio.run_coroutine_threadsafe(self._context.abort(code, details), self._loop).result()

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def is_active(self) -> bool:
        return not self._gone

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Run `callback` when the call is cancelled (at once if it already is)."""
        with self._lock:
            if not self._gone:
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            self._gone, callbacks, self._callbacks = True, self._callbacks, []
        for callback in callbacks:
            callback()
