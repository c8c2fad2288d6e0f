"""`visionyard predict`: a prediction as lines or JSON, and its images written where asked; `--boxes` read."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from protos import visionyard_pb2 as pb
from runner.cli import jsonout
from runner.cli.output import Output
from runner.client import ClientError

PREDICT_IMAGE_FIELDS = ("image_png", "mask_png", "depth_png")
TIMING_ORDER = ("preprocess", "inference", "postprocess", "total", "load")


BOXES_HELP = ("top-down pose (Transformers ViTPose): the people's boxes, x1,y1,x2,y2 in the image's pixels, ';' "
              "between boxes (\"10,20,110,220;150,30,240,230\"), or a JSON file: a list of boxes for every image, "
              "or an object from an image's path (as given, or found in a folder) or file name to its boxes "
              "([[x1, y1, x2, y2], ...]; an image it does not name is predicted whole). Default: the whole image "
              "as one box")


def parse_boxes(text: str) -> list[list[float]] | dict[str, list[list[float]]]:
    """``--boxes``: ``x1,y1,x2,y2;...`` or a JSON file (see ``BOXES_HELP``); argparse's error naming what is wrong
    otherwise. Each box has 4 finite numbers with x2 > x1 and y2 > y1 (the daemon checks it lies in the image)."""
    if text.strip().lower().endswith(".json") or os.path.isfile(text):
        try:
            data = json.loads(Path(text).read_text(encoding="utf-8"))
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from None
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text} is not JSON ({exc})") from None
        if isinstance(data, dict):
            return {str(name): _box_list(boxes, f"{text}, image {name!r}") for name, boxes in data.items()}
        return _box_list(data, text)
    boxes = [[part.strip() for part in box.split(",")] for box in text.split(";") if box.strip()]
    if not boxes:
        raise argparse.ArgumentTypeError("no box given: x1,y1,x2,y2 (';' between boxes) or a JSON file")
    return _box_list(boxes, "--boxes")


def _box_list(boxes, where: str) -> list[list[float]]:
    if not isinstance(boxes, list):
        raise argparse.ArgumentTypeError(f"{where}: boxes must be a list of [x1, y1, x2, y2]")
    found = []
    for box in boxes:
        try:
            values = [float(v) for v in box] if isinstance(box, (list, tuple)) else []
        except (TypeError, ValueError):
            values = []
        if len(values) != 4 or not all(math.isfinite(v) for v in values) or values[2] <= values[0] \
                or values[3] <= values[1]:
            shown = ",".join(box) if isinstance(box, list) and all(isinstance(v, str) for v in box) else json.dumps(box)
            raise argparse.ArgumentTypeError(f"{where}: {shown} is not a box x1,y1,x2,y2 (4 numbers, x2 > x1 and "
                                             "y2 > y1, in the image's pixels)")
        found.append(values)
    return found


def boxes_of(boxes, image: str) -> list[list[float]] | None:
    """The boxes ``--boxes`` gives ``image`` (a dict's by its path as given, else by its file name)."""
    if not isinstance(boxes, dict):
        return boxes or None
    return boxes.get(image, boxes.get(os.path.basename(image)))


def show_prediction(response: pb.PredictResponse, saved: dict[str, str], out: Output, as_json: bool,
                    what: str = "image") -> None:
    """The response as lines (`what` was predicted: an image, or a video of a video job), or as JSON."""
    if as_json:
        jsonout.print_json(prediction_json(response))
        for note in image_notes(response, saved):
            print(note, file=sys.stderr)
        return
    out.line(f"task {response.task or '?'}, {what} {response.width}x{response.height}, "
             f"{len(response.predictions)} prediction(s)")
    for rank, p in enumerate(response.predictions, 1):
        out.line(f"{rank}. {describe(p)}")
    if response.text:
        out.line(f"text: {response.text}")
    if response.timings_ms:
        out.line(f"timings: {format_timings(dict(response.timings_ms))}")
    for note in image_notes(response, saved):
        out.line(note)


def save_images(response: pb.PredictResponse, path: str) -> dict[str, str]:
    """Write the annotated/super-resolved image to ``path`` (or the class-id mask when that is all
    there is; with both, the mask goes next to it as ``<stem>-mask<suffix>``). Returns field → path."""
    target = Path(path)
    if response.image_png:
        todo = {"image_png": target}
        if response.mask_png:
            todo["mask_png"] = target.with_name(f"{target.stem}-mask{target.suffix or '.png'}")
        if response.depth_png:
            todo["depth_png"] = target.with_name(f"{target.stem}-depth.png")
    elif response.mask_png:
        todo = {"mask_png": target}
    else:
        raise ClientError(None, f"this model's task ({response.task or 'unknown'}) returns no image; "
                                "run predict without --save")
    for field, file in todo.items():
        try:
            file.write_bytes(getattr(response, field))
        except OSError as exc:
            raise ClientError(None, f"cannot write {file}: {exc.strerror}") from None
    return {field: str(file) for field, file in todo.items()}


def image_notes(response: pb.PredictResponse, saved: dict[str, str]) -> list[str]:
    notes = []
    for field in PREDICT_IMAGE_FIELDS:
        size = len(getattr(response, field))
        if field in saved:
            notes.append(f"{field} ({size} bytes) saved to {saved[field]}")
        elif size:
            notes.append(f"{field} ({size} bytes) not shown; --save PATH writes it")
    return notes


def prediction_json(response: pb.PredictResponse) -> dict:
    """The response's JSON shape (every plain field shown, a box's 0.0 too), images left out."""
    shown = pb.PredictResponse()
    shown.CopyFrom(response)
    for field in PREDICT_IMAGE_FIELDS:
        shown.ClearField(field)
    data = jsonout.to_dict(shown)
    for field in PREDICT_IMAGE_FIELDS:
        data.pop(field, None)
    return data


def describe(p: pb.Prediction) -> str:
    parts = [f"{p.label or p.index:<20} {p.score:.4f}"]
    if p.HasField("box"):
        parts.append(f"box [{p.box.x1:.1f}, {p.box.y1:.1f}, {p.box.x2:.1f}, {p.box.y2:.1f}]")
    if p.polygon:
        parts.append(f"polygon {len(p.polygon)} points")
    if p.keypoints:
        parts.append(f"{len(p.keypoints)} keypoints")
    if p.HasField("rotated_box"):
        r = p.rotated_box
        parts.append(f"rotated box [cx {r.cx:.1f}, cy {r.cy:.1f}, w {r.w:.1f}, h {r.h:.1f}, angle {r.angle:.3f} rad]")
    return "  ".join(parts)


def format_timings(timings: dict[str, float]) -> str:
    keys = [k for k in TIMING_ORDER if k in timings] + sorted(set(timings) - set(TIMING_ORDER))
    return ", ".join(f"{k} {timings[k]:.1f} ms" for k in keys)
