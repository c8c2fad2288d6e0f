"""A warm predict worker: ``python -m adapters.entrypoint --spec job.json --serve --checkpoint PATH``
(a job's checkpoint; with ``--onnx MODEL`` its ONNX export predicts, by onnxruntime, with the
adapter's own pre- and post-processing), ``--serve --weights PATH`` or ``--serve --pretrained`` (a
model without a job).

It loads the job's model once, then answers batches of images until its stdin closes (the daemon
went: the worker ends with it, so a killed daemon leaves no worker behind). One JSON object per
line, in on stdin, out on the stdout the worker started with; whatever the frameworks print goes
to stderr (the worker's log), never into the answers::

    out, once:  {"ready": true, "pid": int, "load_ms": float}        (or exit 1, the reason on stderr)
    in:         {"id": int, "items": [{"image": path, "top_k": int, "annotate": bool, "labels": [str]?,
                 "question": str?, "boxes": [[x1, y1, x2, y2], ...]?}, ...]}
    out:        {"id": int, "results": [{"result": {...}} or {"error": "..."}, ...]}

An image no format reads, or one over the pixel limit, is refused before the adapter sees it (a video
task's inputs are video files: ``video_folder.VIDEO_TASKS``; an image, a file of no video container, or
one whose frames are over the pixel limit is refused instead). Each
``result`` is the JSON object a one-shot ``--predict`` prints (``adapters.entrypoint``). An
adapter with ``predict_batch(images, top_k, annotate)`` gets a batch's images in one call (those
of the same ``top_k``, ``annotate`` and predict options: ``labels`` and ``question``, passed as
keywords when an item has them, ``adapters.entrypoint.PREDICT_OPTIONS``); the others are called once
per image. ``boxes`` (top-down pose: the people to find the keypoints of, in the image's pixels) are the item's
own (``PER_IMAGE_OPTIONS``): items with boxes are batched together, each image with its own, the adapter given one
list of boxes per image (``boxes=[[box, ...], ...]``). An item's error (an unreadable image, one over the pixel
limit, an option the task does not take) is that item's alone.

A video is checked before it is decoded: a file no video container starts, one over the pixel limit, or one of
more frames than predict decodes (``video_folder.MAX_PREDICT_FRAMES``) is refused, naming the limit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from itertools import groupby
from typing import IO, Any

from adapters.image_limits import check_image, limit_decoding

log = logging.getLogger("visionyard.serve")

#: Predict options given per image, not per batch: an adapter takes them as one value per image, in order.
PER_IMAGE_OPTIONS = ("boxes",)


def serve(spec_path: str, checkpoint: str | None, max_pixels: int, weights: str | None = None,
          onnx: str | None = None) -> int:
    """Load a job's `checkpoint` (``adapter.load_checkpoint``; with `onnx`, its export then predicts:
    ``adapter.use_onnx``), or, for a model without a job, `weights` (a file or folder) or its
    pretrained weights when both are None (``adapter.load_weights(weights)``); then answer until
    stdin ends."""
    from adapters.entrypoint import build_adapter
    from adapters.job import Job
    from adapters.reporter import Reporter

    answers = _answers_channel()
    limit_decoding(max_pixels)
    started = time.perf_counter()
    what = checkpoint or weights or "its pretrained weights"
    try:
        job = dataclasses.replace(Job.from_file(spec_path), device="auto")
        adapter = build_adapter(job, Reporter(None))
        if checkpoint:
            adapter.load_checkpoint(checkpoint)
            if onnx:
                adapter.use_onnx(onnx)
        elif hasattr(adapter, "load_weights"):
            adapter.load_weights(weights)
        else:
            raise NotImplementedError(f"{job.spec.framework} predicts only with a job's checkpoint")
    except Exception as exc:  # noqa: BLE001 (the reason goes to the daemon through stderr)
        log.debug("load failed", exc_info=True)
        print(f"predict worker could not load {what}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    load_ms = (time.perf_counter() - started) * 1000
    _send(answers, {"ready": True, "pid": os.getpid(), "load_ms": load_ms})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            request_id, items = int(request["id"]), list(request["items"])
        except (ValueError, KeyError, TypeError) as exc:
            print(f"predict worker: a malformed request ({exc}): {line[:200]!r}", file=sys.stderr, flush=True)
            return 2
        _send(answers, {"id": request_id, "results": answer(adapter, job.spec.task, items, max_pixels, load_ms)})
    return 0


def answer(adapter, task: str, items: list[dict[str, Any]], max_pixels: int, load_ms: float) -> list[dict[str, Any]]:
    """One result or error per item, in order."""
    from adapters.entrypoint import PREDICT_OPTIONS, call_predict

    results: list[dict[str, Any] | None] = [None] * len(items)
    readable = []
    for i, item in enumerate(items):
        try:
            check_input(task, str(item["image"]), max_pixels)
            readable.append(i)
        except Exception as exc:  # noqa: BLE001 (the item's own error)
            results[i] = {"error": f"{type(exc).__name__}: {exc}"}
    batched = getattr(adapter, "predict_batch", None)
    key = lambda i: (int(items[i].get("top_k") or 5), bool(items[i].get("annotate")),  # noqa: E731
                     tuple((name, _hashable(items[i].get(name))) for name in PREDICT_OPTIONS if items[i].get(name)),
                     tuple(name for name in PER_IMAGE_OPTIONS if items[i].get(name) is not None))
    for (top_k, annotate, given, each), group in groupby(readable, key=key):
        group = list(group)
        options = {name: list(value) if isinstance(value, tuple) else value for name, value in given}
        if batched is not None and len(group) > 1:
            started = time.perf_counter()
            try:
                raws = batched([str(items[i]["image"]) for i in group], top_k, annotate, **options,
                               **{name: [items[i][name] for i in group] for name in each})
            except Exception:  # noqa: BLE001 (one image spoiled the batch: each alone says which)
                log.debug("batch failed; predicting its images one by one", exc_info=True)
                raws = None
            if raws is not None:
                each_ms = (time.perf_counter() - started) * 1000 / len(group)
                for i, raw in zip(group, raws, strict=True):
                    results[i] = _result(raw, task, items[i], load_ms, each_ms)
                continue
        for i in group:
            started = time.perf_counter()
            try:
                raw = call_predict(adapter, str(items[i]["image"]), top_k, annotate, **options,
                                   **{name: [items[i][name]] for name in each})
                results[i] = _result(raw, task, items[i], load_ms, (time.perf_counter() - started) * 1000)
            except Exception as exc:  # noqa: BLE001
                log.debug("predict failed", exc_info=True)
                results[i] = {"error": f"{type(exc).__name__}: {exc}"}
    return results  # type: ignore[return-value]


def check_input(task: str, path: str, max_pixels: int) -> None:
    """ValueError unless the file is what ``task`` predicts from: an image within ``max_pixels`` by its header;
    for a task that predicts from videos, a video file whose frames are within ``max_pixels``
    (``video_folder.video_problem``: its container sniffed, then its header read)."""
    from adapters.datasets.video_folder import VIDEO_TASKS, video_problem

    if task in VIDEO_TASKS:
        if problem := video_problem(path, max_pixels):
            raise ValueError(f"{os.path.basename(path)} {problem}")
    elif check_image(path, max_pixels) is None:
        raise ValueError(f"{os.path.basename(path)} is not an image (no image format reads its header)")


def _hashable(value: Any) -> Any:
    """A predict option as a grouping key: a list of labels as a tuple of strings."""
    return tuple(str(v) for v in value) if isinstance(value, list) else value


def _result(raw: Any, task: str, item: dict[str, Any], load_ms: float, total_ms: float) -> dict[str, Any]:
    from adapters.entrypoint import normalise_prediction_result

    try:
        result = normalise_prediction_result(raw, task, str(item["image"]))
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}
    result["timings_ms"].setdefault("load", load_ms)
    result["timings_ms"].setdefault("total", total_ms)
    return {"result": result}


def _answers_channel() -> IO[str]:
    """The stdout the worker started with, for answers only; fd 1 then points at stderr, so that
    what a framework prints lands in the log."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(2, 1)
    return answers


def _send(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()
