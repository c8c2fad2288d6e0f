"""A record's coordinates in the unit a consumer needs: pixels, or fractions of the image size.

The size comes from the record when its format stored it, else from the image's header
(``images.image_size``), so records.py holds the records alone and imports nothing else.
"""

from __future__ import annotations

from dataclasses import replace

from adapters.datasets.images import image_size
from adapters.datasets.records import Annotation, ImageRecord


def to_pixels(record: ImageRecord) -> ImageRecord:
    """The record with pixel coordinates (reads the image header if the size is unknown)."""
    if not record.normalized:
        return record
    width, height = _size(record)
    return replace(record, width=width, height=height, normalized=False,
                   annotations=[_scaled(a, width, height) for a in record.annotations])


def to_normalized(record: ImageRecord) -> ImageRecord:
    """The record with coordinates as fractions of the image size."""
    if record.normalized:
        return record
    width, height = _size(record)
    return replace(record, width=width, height=height, normalized=True,
                   annotations=[_scaled(a, 1.0 / width, 1.0 / height) for a in record.annotations])


def _size(record: ImageRecord) -> tuple[int, int]:
    if record.width and record.height:
        return record.width, record.height
    return image_size(record)


def _scaled(ann: Annotation, sx: float, sy: float) -> Annotation:
    def flat(values):
        return [v * (sx if i % 2 == 0 else sy) for i, v in enumerate(values)]

    def points(values):  # x, y, v triples: scale x and y, keep v
        out = list(values)
        for i in range(0, len(out) - 2, 3):
            out[i] *= sx
            out[i + 1] *= sy
        return out

    box = None if ann.box is None else (ann.box[0] * sx, ann.box[1] * sy, ann.box[2] * sx, ann.box[3] * sy)
    return replace(
        ann,
        box=box,
        polygons=None if ann.polygons is None else [flat(p) for p in ann.polygons],
        keypoints=None if ann.keypoints is None else points(ann.keypoints),
        rbox=None if ann.rbox is None else flat(ann.rbox),
    )
