"""Predict results: the child's JSON object ↔ ``pb.PredictResponse``, converted here once.

The child (``adapters.entrypoint --predict``) prints one JSON object as its last stdout line::

    {"task", "predictions": [{"label", "score", "index", "box"?, "polygon"?, "keypoints"?,
     "rotated_box"?}], "width", "height", "mask_png_b64"?, "image_png_b64"?, "text"?,
     "timings_ms": {...}}

with ``box: [x1, y1, x2, y2]``, ``polygon: [[x, y], ...]``, ``keypoints: [[x, y, v], ...]``,
``rotated_box: [cx, cy, w, h, angle]``. Children from before that contract printed only
``{"predictions": [{"label", "score", "index"}]}``; that still parses.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from protos import visionyard_pb2 as pb

_BYTES_FIELDS = ("mask_png", "image_png")


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
