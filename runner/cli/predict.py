"""`visionyard predict`: a prediction as lines or JSON, and its images written where asked."""

from __future__ import annotations

import sys
from pathlib import Path

from protos import visionyard_pb2 as pb
from runner.cli import jsonout
from runner.cli.output import Output
from runner.client import ClientError

PREDICT_IMAGE_FIELDS = ("image_png", "mask_png", "depth_png")
TIMING_ORDER = ("preprocess", "inference", "postprocess", "total", "load")


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
