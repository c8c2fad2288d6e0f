"""The child process the daemon starts: ``python -m adapters.entrypoint --spec job.json``.

Training: load the job, pick the adapter named by the framework's catalog, ``fit()`` (which
reports every epoch and the result), flush the reporter, exit 0. Any exception: traceback on
stderr, an ``ErrorReport``, flush, exit 1.

Predict: ``--predict IMAGE --checkpoint PATH [--top-k K] [--annotate] [--max-pixels N] [--labels A,B,...]
[--question TEXT]`` refuses an image over N pixels (from its header, and in every decode:
``adapters.image_limits``), then calls the adapter's ``predict(image_path, top_k, annotate=False)``
(``annotate`` is passed only to adapters whose ``predict`` takes it). The task's predict options
(``PREDICT_OPTIONS``: the labels a zero-shot task chooses from, the question visual QA answers) are
passed as keywords when given, and refused by an adapter whose ``predict`` takes none. The adapter
returns either

- a list of prediction dicts (the first contract, classification): ``[{"label", "score", "index"}]``
- or a dict ``{"task", "predictions": [...], "width", "height", "mask_png": bytes?,
  "image_png": bytes?, "depth_png": bytes?, "depth": {...}?, "text": str?, "timings_ms": {...}}``
  (``depth_png``: depth estimation's 16-bit PNG in millimetres; ``depth``: its ``kind``, ``unit``, ``min``,
  ``max``, ``median``), where each prediction may also carry
  ``box: [x1, y1, x2, y2]``, ``polygon: [[x, y], ...]``, ``keypoints: [[x, y, v], ...]`` and
  ``rotated_box: [cx, cy, w, h, angle]`` (pixels of the input image, angle in radians).

Both are normalised into one JSON object, printed as the last line of stdout, exit 0::

    {"task", "predictions": [{"label", "score", "index", "box"?, "polygon"?, "keypoints"?,
     "rotated_box"?}], "width", "height", "mask_png_b64"?, "image_png_b64"?, "depth_png_b64"?, "depth"?,
     "text"?, "timings_ms": {...}}

``task`` defaults to the job's task, ``width``/``height`` to the image's size, and
``timings_ms`` always has ``load`` (checkpoint) and ``total`` (the ``predict`` call) measured
here, next to whatever the adapter measured (``preprocess``, ``inference``, ``postprocess``).
On failure the message goes to stderr, exit 1. No reporter is used. A prediction runs on the
device this process sees (``auto``), not on the training job's: that was a GPU the job held then,
and the daemon runs predictions with every GPU hidden.

Serve: ``--serve --checkpoint PATH [--onnx MODEL] | --weights PATH | --pretrained [--max-pixels N]``
is a warm predict worker (``adapters.serve``); with ``--onnx`` it predicts with that export of the
checkpoint (onnxruntime).

Export: ``--export onnx --checkpoint PATH --out DIR [--dynamic] [--half] [--opset N] [--images PATH
...] [--count N] [--device D]`` exports the checkpoint and validates the export against PyTorch
(``adapters.onnx_export``).

Eval: ``--eval --checkpoint PATH --out DIR [--dataset PATH --format F] [--split val|train|all] [--batch N]
[--device D]`` runs the checkpoint over a dataset (default: the job's validation split, as training made it)
with the predict path and writes ``DIR/eval.json``, scored by the shared evaluators (``adapters.evaluate``).

Reporter address, job id and token come from the environment (see ``adapters.reporter``).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import importlib
import inspect
import json
import logging
import signal
import sys
import time
import traceback
from typing import Any

from adapters.catalog import resolve_advanced
from adapters.frameworks import get_catalog
from adapters.image_limits import DEFAULT_MAX_PIXELS, check_image, limit_decoding
from adapters.job import Job
from adapters.reporter import Reporter

log = logging.getLogger("visionyard.entrypoint")

CLOSE_TIMEOUT = 10.0  # seconds to flush reports before exiting
#: What a task takes at predict time besides the image, by keyword: ``labels`` (a list of strings: the labels a
#: zero-shot task chooses from) and ``question`` (a string: what visual question answering answers).
PREDICT_OPTIONS = ("labels", "question")


def load_adapter_class(ref: str) -> type:
    """Import ``"package.module:ClassName"``."""
    module_name, _, class_name = ref.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_adapter(job: Job, reporter: Reporter):
    catalog = get_catalog(job.spec.framework)
    if job.spec.task not in catalog.tasks:
        raise ValueError(
            f"{catalog.name} does not do task '{job.spec.task}'. Valid: {', '.join(catalog.tasks)}"
        )
    # Fill and normalise `advanced` once more, so a hand-written job.json gets the same defaults.
    job = job.with_advanced(resolve_advanced(catalog, job.spec.advanced))
    return load_adapter_class(catalog.adapter)(job, reporter)


def train(spec_path: str) -> int:
    reporter = Reporter.from_env()
    try:
        adapter = build_adapter(Job.from_file(spec_path), reporter)
        adapter.fit()
        code = 0
    except Exception as exc:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        reporter.error(type(exc).__name__, str(exc) or type(exc).__name__, tb)
        code = 1
    reporter.close(CLOSE_TIMEOUT)
    return code


def predict(spec_path: str, image: str, checkpoint: str, top_k: int, annotate: bool = False,
            max_pixels: int = DEFAULT_MAX_PIXELS, options: dict[str, Any] | None = None) -> int:
    try:
        limit_decoding(max_pixels)
        check_image(image, max_pixels)
        job = dataclasses.replace(Job.from_file(spec_path), device="auto")
        adapter = build_adapter(job, Reporter(None))
        started = time.perf_counter()
        adapter.load_checkpoint(checkpoint)
        loaded = time.perf_counter()
        raw = call_predict(adapter, image, top_k, annotate, **(options or {}))
        done = time.perf_counter()
        result = normalise_prediction_result(raw, job.spec.task, image)
        result["timings_ms"].setdefault("load", (loaded - started) * 1000)
        result["timings_ms"].setdefault("total", (done - loaded) * 1000)
    except Exception as exc:
        log.debug("predict failed", exc_info=True)
        print(f"predict failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    return 0


def call_predict(adapter, image: str, top_k: int, annotate: bool, **options):
    """``adapter.predict``, with ``annotate`` only for adapters that take it, and the ``options`` given
    (``PREDICT_OPTIONS``; unset ones left out), which an adapter whose ``predict`` does not take them refuses."""
    try:
        params = inspect.signature(adapter.predict).parameters.values()
    except (TypeError, ValueError):
        params = ()
    keywords = {key: value for key, value in options.items() if value is not None and value not in ("", [], ())}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    refused = sorted(key for key in keywords if key not in {p.name for p in params})
    if refused and not takes_any:
        raise ValueError(f"{type(adapter).__name__} takes no {' or '.join(refused)} at predict time")
    if takes_any or any(p.name == "annotate" for p in params):
        keywords["annotate"] = annotate
    return adapter.predict(image, top_k, **keywords)


# Flat number lists a prediction may carry, and their lengths.
_FLAT_FIELDS = {"box": 4, "rotated_box": 5}
# Lists of points, and the numbers per point.
_POINT_FIELDS = {"polygon": 2, "keypoints": 3}


def normalise_prediction_result(raw: Any, task: str, image: str) -> dict[str, Any]:
    """An adapter's ``predict`` return value (list or dict) → the JSON object the daemon reads."""
    if isinstance(raw, dict):
        data = dict(raw)
    elif isinstance(raw, (list, tuple)):
        data = {"predictions": list(raw)}
    else:
        raise TypeError(f"predict returned {type(raw).__name__}; expected a list or a dict")
    result: dict[str, Any] = {
        "task": str(data.get("task") or task),
        "predictions": [_normalise_one(i, p) for i, p in enumerate(data.get("predictions") or [])],
    }
    width, height = data.get("width"), data.get("height")
    if not width or not height:
        width, height = _image_size(image)
    result["width"], result["height"] = int(width), int(height)
    for key in ("mask_png", "image_png", "depth_png"):
        if data.get(key):
            result[f"{key}_b64"] = base64.b64encode(bytes(data[key])).decode("ascii")
    if isinstance(data.get("depth"), dict):
        result["depth"] = {str(k): v if isinstance(v, str) else float(v) for k, v in data["depth"].items()}
    if data.get("text") is not None:
        result["text"] = str(data["text"])
    result["timings_ms"] = {str(k): float(v) for k, v in (data.get("timings_ms") or {}).items()}
    return result


def _normalise_one(i: int, p: dict[str, Any]) -> dict[str, Any]:
    try:
        out = {"label": str(p.get("label", "")), "score": float(p.get("score", 0.0)), "index": int(p.get("index", 0))}
        for key, size in _FLAT_FIELDS.items():
            if p.get(key) is not None:
                out[key] = [float(v) for v in p[key]]
                if len(out[key]) != size:
                    raise ValueError(f"{key} needs {size} numbers, got {len(out[key])}")
        for key, size in _POINT_FIELDS.items():
            if p.get(key) is not None:
                out[key] = [[float(v) for v in point] for point in p[key]]
                if any(len(point) != size for point in out[key]):
                    raise ValueError(f"every point of {key} needs {size} numbers")
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"prediction {i} from the adapter is malformed: {exc}") from exc
    return out


def _image_size(image: str) -> tuple[int, int]:
    """(width, height) from the image's header; (0, 0) when it can't be read."""
    try:
        from adapters.datasets import ImageRecord, image_size

        return image_size(ImageRecord(image))
    except Exception:
        return 0, 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.entrypoint", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--spec", required=True, help="job.json written by the daemon")
    parser.add_argument("--predict", metavar="IMAGE", help="predict one image instead of training")
    parser.add_argument("--checkpoint", help="checkpoint to predict with (with --predict)")
    parser.add_argument("--top-k", type=int, default=5, help="number of predictions (with --predict)")
    parser.add_argument("--annotate", action="store_true",
                        help="with --predict, also return the image with the predictions drawn")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"with --predict, refuse an image with more pixels (default {DEFAULT_MAX_PIXELS})")
    parser.add_argument("--labels", help="with --predict, the labels a zero-shot task chooses from, comma-separated "
                                         "(default: the job's classes)")
    parser.add_argument("--question", help="with --predict, the question visual question answering answers")
    parser.add_argument("--serve", action="store_true",
                        help="a warm predict worker: load --checkpoint (or --weights, or --pretrained) once, "
                             "answer images from stdin (adapters.serve)")
    parser.add_argument("--weights", help="with --serve, a model's weights (file or folder) without a job")
    parser.add_argument("--pretrained", action="store_true",
                        help="with --serve, the model's pretrained weights from the local cache")
    parser.add_argument("--onnx", help="with --serve --checkpoint, predict with this ONNX export of it")
    parser.add_argument("--export", metavar="FORMAT", help="export --checkpoint (onnx) into --out and validate it")
    parser.add_argument("--out", help="with --export, the folder to write the model and export.json into; with "
                                      "--eval, the folder of eval.json")
    parser.add_argument("--dynamic", action="store_true", help="with --export, free height and width")
    parser.add_argument("--half", action="store_true", help="with --export, float16 weights")
    parser.add_argument("--opset", type=int, default=0, help="with --export, the ONNX opset (0: the exporter's)")
    parser.add_argument("--images", nargs="*", default=[], help="with --export, images (files or folders) to "
                                                                "validate with (default: the job's dataset)")
    parser.add_argument("--count", type=int, default=8, help="with --export, how many images to validate with")
    parser.add_argument("--device", default="cpu", help="with --export or --eval, the device to run the model on")
    parser.add_argument("--eval", action="store_true", help="evaluate --checkpoint on a dataset, write --out/eval.json")
    parser.add_argument("--dataset", help="with --eval, a dataset to evaluate on (default: the job's)")
    parser.add_argument("--format", help="with --eval --dataset, the dataset's format")
    parser.add_argument("--split", default="val", choices=("val", "train", "all"),
                        help="with --eval, the split to evaluate (default: val)")
    parser.add_argument("--batch", type=int, default=16, help="with --eval, images per predict batch")
    args = parser.parse_args(argv)

    # Cancel is SIGTERM to the process group: die at once (the reporter thread is a daemon
    # thread), even if whoever started us ignored the signal.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.serve:
        if sum(map(bool, (args.checkpoint, args.weights, args.pretrained))) != 1:
            parser.error("--serve needs one of --checkpoint, --weights, --pretrained")
        if args.onnx and not args.checkpoint:
            parser.error("--onnx needs --checkpoint (the checkpoint it was exported from)")
        from adapters.serve import serve
        return serve(args.spec, args.checkpoint, max(1, args.max_pixels), weights=args.weights, onnx=args.onnx)
    if args.export:
        if not args.checkpoint or not args.out:
            parser.error("--export needs --checkpoint and --out")
        from adapters.onnx_export import export
        return export(args.spec, args.checkpoint, args.out, args.export, dynamic=args.dynamic, half=args.half,
                      opset=args.opset or None, images=args.images, count=max(1, args.count), device=args.device)
    if args.eval:
        if not args.checkpoint or not args.out:
            parser.error("--eval needs --checkpoint and --out")
        if bool(args.dataset) != bool(args.format):
            parser.error("--dataset and --format go together")
        from adapters.evaluate import evaluate
        return evaluate(args.spec, args.checkpoint, args.out, dataset=args.dataset, fmt=args.format, split=args.split,
                        batch=max(1, args.batch), device=args.device)
    if args.predict:
        if not args.checkpoint:
            parser.error("--predict needs --checkpoint")
        labels = [label.strip() for label in (args.labels or "").split(",") if label.strip()]
        return predict(args.spec, args.predict, args.checkpoint, max(1, args.top_k), args.annotate,
                       max(1, args.max_pixels), {"labels": labels or None, "question": args.question})
    return train(args.spec)


if __name__ == "__main__":
    sys.exit(main())
