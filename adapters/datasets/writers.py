"""Label writers for ``convert.py``: YOLO label lines and data.yaml, COCO documents, and the
geometry the conversions need (RLE mask → polygon, several polygon parts → one).

Writers take records and the file names their images got in the output, and add what they
dropped or changed to ``notes`` (a Counter of note kinds that ``convert.py`` turns into warnings).

- YOLO coordinates are fractions of the image size, clipped to [0, 1], written with 6 decimals
  (a box's size rounded down where a plain rounding would put a corner past the edge).
  ``ignore`` annotations (COCO crowd, VOC difficult) are skipped: a YOLO line has no ignore flag,
  and Ultralytics' own COCO and VOC converters skip them too.
- A segmentation given as an RLE mask becomes the mask's largest external contour
  (``cv2.findContours``). The contour runs through the centres of the mask's border pixels, so
  the polygon lies up to half a pixel inside the mask's outline (as every contour-based
  converter's does); other separate regions of the mask are dropped and noted.
- An object with several polygon parts becomes one polygon: each part is joined to the polygon
  built so far at their closest pair of vertices, by a zero-width bridge walked out and back.
  That is the idea of Ultralytics' ``merge_multi_segment`` (written here, not copied: Ultralytics
  is AGPL); the result covers every part, and its box is the box of all parts.
- COCO categories get ``id = class_id + 1`` (COCO reserves 0 for background in many tools);
  reading them back sorts by id, so class order and names survive a round trip. Image and
  annotation ids count from 1 in each file. Pixel values are rounded to 4 decimals.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

from adapters.datasets.coords import to_normalized, to_pixels
from adapters.datasets.images import image_size
from adapters.datasets.records import Annotation, Dataset, ImageRecord

#: The COCO file name prefix per task.
COCO_PREFIX = {"pose_estimation": "person_keypoints"}
PIXEL_DECIMALS = 4


# --------------------------------------------------------------------------- YOLO


def yolo_label_text(dataset: Dataset, record: ImageRecord, notes: Counter) -> tuple[str, int]:
    """(the image's label file text, the number of objects written)."""
    record = to_normalized(record)
    lines = []
    for ann in record.annotations:
        if ann.ignore:
            notes["crowd-skipped"] += 1
            continue
        values = _yolo_values(dataset, record, ann, notes)
        if values:
            lines.append(f"{ann.class_id} " + " ".join(values))
    return "".join(line + "\n" for line in lines), len(lines)


def _yolo_values(dataset: Dataset, record: ImageRecord, ann: Annotation, notes: Counter) -> list[str] | None:
    task = dataset.task
    if task in ("object_detection", "pose_estimation"):
        x1, y1, x2, y2 = (_clip(v) for v in ann.box)
        if x2 <= x1 or y2 <= y1:
            notes["outside-skipped"] += 1
            return None
        values = _yolo_box(x1, y1, x2, y2)
        if task == "pose_estimation":
            values += _yolo_keypoints(ann.keypoints or [], dims=(dataset.kpt_shape or (0, 3))[1])
        return values
    if task == "obb_detection":
        return _fixed([_clip(v) for v in (ann.rbox or _box_corners(ann.box))])
    polygon = _yolo_polygon(record, ann, notes)
    return _fixed([_clip(v) for v in polygon]) if polygon else None


def _yolo_polygon(record: ImageRecord, ann: Annotation, notes: Counter) -> list[float] | None:
    """One normalized polygon for the object (``record`` is normalized)."""
    parts = ann.polygons
    if not parts and ann.rle is not None:
        polygon = mask_polygon(ann.rle, notes)
        if polygon is None:
            return None
        parts = [[v / (record.width if i % 2 == 0 else record.height) for i, v in enumerate(polygon)]]
    if not parts:
        notes["box-as-polygon"] += 1
        return _box_corners(ann.box)
    if len(parts) > 1:
        notes["parts-merged"] += 1
        return merge_parts(parts)
    return list(parts[0])


def _yolo_keypoints(keypoints: list, dims: int) -> list[str]:
    out = []
    for i in range(0, len(keypoints) - 2, 3):
        x, y, v = keypoints[i:i + 3]
        out += _fixed([_clip(x), _clip(y)])
        if dims == 3:
            out.append(f"{v:g}")
    return out


def yolo_data_yaml(dataset: Dataset, final: Path) -> str:
    """data.yaml for the dataset once it lives at ``final``."""
    import yaml

    meta: dict = {"path": str(final), "train": "images/train", "val": "images/val",
                  "names": list(dataset.class_names)}
    if dataset.task == "pose_estimation" and dataset.kpt_shape:
        meta["kpt_shape"] = [dataset.kpt_shape[0], 2 if dataset.kpt_shape[1] == 2 else 3]
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)


def _yolo_box(x1: float, y1: float, x2: float, y2: float) -> list[str]:
    """``cx cy w h`` with 6 decimals. At the image's edge the size is rounded down so that the corners
    read back inside [0, 1]: rounded plainly, a box touching the edge computes a corner of -5e-07."""
    (cx, w), (cy, h) = _centre_size(x1, x2), _centre_size(y1, y2)
    return [cx, cy, w, h]


def _centre_size(lo: float, hi: float) -> tuple[str, str]:
    centre, size = round((lo + hi) / 2, 6), round(hi - lo, 6)
    if centre - size / 2 < 0 or centre + size / 2 > 1:
        size = min(size, math.floor(2e6 * min(centre, 1 - centre)) / 1e6)
    return f"{centre:.6f}", f"{size:.6f}"


def _clip(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


def _fixed(values) -> list[str]:
    return [f"{v:.6f}" for v in values]


def _box_corners(box) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2, y1, x2, y2, x1, y2]


# --------------------------------------------------------------------------- COCO


def coco_document(dataset: Dataset, records: list[ImageRecord], names: list[str]) -> tuple[dict, int]:
    """(the COCO document of one split, the number of annotations in it)."""
    images, annotations = [], []
    for image_id, (record, name) in enumerate(zip(records, names), 1):
        record = _with_size(to_pixels(record))
        images.append({"id": image_id, "file_name": name, "width": record.width, "height": record.height})
        for ann in record.annotations:
            entry = _coco_annotation(dataset, record, ann)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **entry})
    doc = {
        "info": {"description": f"converted by visionyard from {dataset.format} ({dataset.root})"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _coco_categories(dataset),
    }
    return doc, len(annotations)


def coco_file_name(task: str, split: str) -> str:
    return f"{COCO_PREFIX.get(task, 'instances')}_{split}.json"


def _with_size(record: ImageRecord) -> ImageRecord:
    if record.width and record.height:
        return record
    width, height = image_size(record)
    return replace(record, width=width, height=height)


def _coco_categories(dataset: Dataset) -> list[dict]:
    categories = []
    for class_id, name in enumerate(dataset.class_names):
        category = {"id": class_id + 1, "name": name, "supercategory": name}
        if dataset.task == "pose_estimation":
            k = dataset.kpt_shape[0] if dataset.kpt_shape else 0
            category["keypoints"] = [f"kp_{i}" for i in range(k)]
            category["skeleton"] = []
        categories.append(category)
    return categories


def _coco_annotation(dataset: Dataset, record: ImageRecord, ann: Annotation) -> dict:
    x1, y1, x2, y2 = ann.box
    entry = {"category_id": ann.class_id + 1, "bbox": [_px(x1), _px(y1), _px(x2 - x1), _px(y2 - y1)],
             "area": _px((x2 - x1) * (y2 - y1)), "iscrowd": int(ann.ignore)}
    if ann.polygons:
        entry["segmentation"] = [[_px(v) for v in part] for part in ann.polygons]
        entry["area"] = mask_area(ann.polygons, record.height, record.width)
    elif ann.rle is not None:
        entry["segmentation"] = ann.rle
        entry["area"] = mask_area(ann.rle, record.height, record.width)
    if dataset.task == "pose_estimation":
        points = ann.keypoints or []
        entry["keypoints"] = [int(v) if i % 3 == 2 else _px(v) for i, v in enumerate(points)]
        entry["num_keypoints"] = sum(1 for v in points[2::3] if v > 0)
    return entry


def _px(v: float) -> float | int:
    """A pixel value rounded to PIXEL_DECIMALS, as an int when whole (keeps integer files integer)."""
    r = round(float(v), PIXEL_DECIMALS)
    return int(r) if r.is_integer() else r


# --------------------------------------------------------------------------- geometry


def _rle_object(rle: dict, height: int, width: int):
    """A pycocotools RLE from a COCO segmentation dict (uncompressed counts lists, str counts)."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    if isinstance(counts, list):
        return mask_utils.frPyObjects(rle, height, width)
    return {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def mask_area(segmentation, height: int, width: int) -> int:
    """pycocotools' area of a polygon list (parts united) or an RLE dict, in pixels."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, dict):
        return int(mask_utils.area(_rle_object(segmentation, height, width)))
    rles = mask_utils.frPyObjects([list(map(float, p)) for p in segmentation], height, width)
    return int(mask_utils.area(mask_utils.merge(rles)))


def mask_polygon(rle: dict, notes: Counter) -> list[float] | None:
    """The largest external contour of an RLE mask as a flat pixel polygon (None: no region)."""
    import cv2
    import numpy as np
    from pycocotools import mask as mask_utils

    height, width = rle["size"]
    mask = mask_utils.decode(_rle_object(rle, height, width))
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    contours = [c for c in contours if len(c) >= 3]
    if not contours:
        notes["empty-mask-skipped"] += 1
        return None
    if len(contours) > 1:
        notes["mask-regions-dropped"] += 1
    largest = max(contours, key=cv2.contourArea)
    return [float(v) for v in largest.reshape(-1)]


def merge_parts(parts: list[list[float]]) -> list[float]:
    """One polygon through every part: each part is joined to the polygon so far at their closest
    vertices, by a bridge walked out and back (the part is walked around once, from that vertex)."""
    import numpy as np

    merged = np.asarray(parts[0], dtype=float).reshape(-1, 2)
    for part in parts[1:]:
        points = np.asarray(part, dtype=float).reshape(-1, 2)
        distances = ((merged[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)
        i, j = np.unravel_index(int(distances.argmin()), distances.shape)
        around = np.concatenate([points[j:], points[:j + 1]])  # the part from its closest vertex, closed
        merged = np.concatenate([merged[:i + 1], around, merged[i:]])
    return merged.reshape(-1).tolist()
