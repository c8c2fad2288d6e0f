"""The geometry and the evaluations of ``eval``'s scorers (``adapters.evaluation.scoring``) for the object
tasks beyond boxes: instance segmentation, pose and oriented boxes, all with COCO's definitions
(``adapters.evaluation.detection``), in the pixels of the original image.

- **Instance segmentation**: the masks of the record's objects (their polygons, their COCO RLE; an object
  with a box only: its rectangle) and of each prediction (its ``polygon``; none: an empty mask) are
  rasterised with pycocotools at the image's size, an object of several polygons merged into one mask.
  COCO ``segm`` AP of the masks (``val/mask_*``) and ``bbox`` AP of the boxes (``val/precision`` …
  ``val/mAP50-95``) make one evaluation, as Ultralytics' segment validator reports both: each per-class
  row holds the box keys and their ``mask_`` twins, the curves both ``pr`` and ``mask_pr`` (``with_twin``),
  as a training record of the task holds them (``adapters.ultralytics.results``).
- **Pose**: each object's keypoints against the prediction's ``keypoints`` by COCO's OKS (``val/pose_*``;
  sigmas COCO's 17 for 17 keypoints, else 1/K each; an object's area its box's x 0.53, as Ultralytics
  computes it), with the box AP beside it, rows with ``pose_`` twins, curves ``pr`` and ``pose_pr``.
- **OBB**: COCO has no rotated boxes. Both the record's rotated boxes (``rbox``, 4 corners) and the
  predicted ones (``rotated_box``, cx cy w h angle in radians) are rasterised to masks and scored by COCO
  ``segm`` AP, named as detection's metrics (``val/mAP50-95``, ``val/mAP50``, ``val/precision``,
  ``val/recall``; per-class keys and the curve ``pr`` as detection's too; ``obb_results``). The mask IoU
  of two rasterised rotated rectangles is their rotated IoU up to pixel rounding, which weighs on objects
  a few pixels wide. Ultralytics' own OBB metrics use probiou (the overlap of two Gaussians fitted to the
  boxes), so its AP of the same predictions differs slightly from this one. The matched confusion matrix
  of OBB matches by that mask IoU too (``mask_confusion_matrix``; training's matches by probiou); those
  of instance segmentation and pose match boxes, as training's do.

Host-importable: numpy at import; pycocotools where masks are made.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adapters.evaluation.detection import (MATRIX_IOU_ABOVE, MATRIX_SCORE_ABOVE, count_claims, detection_results,
                                           evaluation_results, run_cocoeval)
from adapters.evaluation.record import BACKGROUND, Evaluation

#: The keys of a per-class row that a twin evaluation (masks, keypoints) adds with its prefix.
TWIN_KEYS = ("AP50", "AP50-95", "precision", "recall")
MASK_PREFIX, POSE_PREFIX = "mask_", "pose_"


def pixel_size(record) -> tuple[int, int]:
    """(height, width) of a record's image: as the record says, else from the image's header."""
    if record.width and record.height:
        return int(record.height), int(record.width)
    from adapters.datasets import image_size

    width, height = image_size(record)
    return int(height), int(width)


def polygons_rle(polygons, height: int, width: int) -> dict[str, Any]:
    """Flat ``[x1, y1, x2, y2, ...]`` polygons as one compressed RLE of ``height`` x ``width`` (an empty mask
    when none has 3 points)."""
    from pycocotools import mask as mask_utils

    parts = [[float(v) for v in p] for p in polygons or () if len(p) >= 6]  # 4 values would read as a box
    if not parts:
        return mask_utils.frPyObjects({"size": [height, width], "counts": [height * width]}, height, width)
    return mask_utils.merge(mask_utils.frPyObjects(parts, height, width))


def truth_mask(annotation, height: int, width: int) -> dict[str, Any]:
    """An object's mask as a compressed RLE: its RLE, else its polygons, else its box's rectangle."""
    from pycocotools import mask as mask_utils

    rle = annotation.rle
    if rle is not None:
        if [int(v) for v in rle["size"]] != [height, width]:
            raise ValueError(f"an RLE mask of size {rle['size']} in a {width}x{height} px image ({annotation.where})")
        return mask_utils.frPyObjects(rle, height, width) if isinstance(rle["counts"], list) else rle
    if annotation.polygons:
        return polygons_rle(annotation.polygons, height, width)
    x1, y1, x2, y2 = annotation.box
    return polygons_rle([[x1, y1, x2, y1, x2, y2, x1, y2]], height, width)


def predicted_mask(prediction: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """A prediction's ``polygon`` (``[[x, y], ...]``) as a compressed RLE (none: an empty mask)."""
    points = prediction.get("polygon") or []
    return polygons_rle([[v for point in points for v in point[:2]]], height, width)


def rotated_corners(rotated_box) -> list[float]:
    """The 4 corners ``[x1, y1, ..., x4, y4]`` of a rotated box ``(cx, cy, w, h, angle in radians)``, in
    Ultralytics' ``xywhr2xyxyxyxy`` order."""
    cx, cy, w, h, angle = (float(v) for v in rotated_box[:5])
    cos, sin = math.cos(angle), math.sin(angle)
    along, across = (w / 2 * cos, w / 2 * sin), (-h / 2 * sin, h / 2 * cos)
    return [v for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))
            for v in (cx + a * along[0] + b * across[0], cy + a * along[1] + b * across[1])]


def corners_box(corners) -> list[float]:
    """The axis-aligned ``[x1, y1, x2, y2]`` around flat corners."""
    xs, ys = corners[0::2], corners[1::2]
    return [min(xs), min(ys), max(xs), max(ys)]


def keypoint_array(points) -> np.ndarray | None:
    """One object's keypoints, flat ``[x, y, v, ...]`` (a record's) or ``[[x, y, v], ...]`` (a prediction's,
    the third value optional), as K x 3; None when it has none."""
    if points is None or not len(points):
        return None
    if isinstance(points[0], (list, tuple)):
        return np.array([[*p[:3], *[1.0] * (3 - len(p[:3]))] for p in points], dtype=np.float64).reshape(-1, 3)
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)


def stacked_keypoints(truth: list[dict[str, Any]], found: list[dict[str, Any]]) -> tuple[list, list]:
    """The entries with their ``keypoints`` (a K x 3 array or None per object) as one N x K x 3 array, an
    object without keypoints all unlabelled; ValueError when the dataset's objects differ in K, or the
    predictions' K from theirs."""
    counts = {len(p) for entry in truth for p in entry["keypoints"] if p is not None}
    if len(counts) > 1:
        raise ValueError(f"the dataset's objects have {' or '.join(map(str, sorted(counts)))} keypoints: "
                         "every object needs the same keypoints")
    predicted = {len(p) for entry in found for p in entry["keypoints"] if p is not None}
    count = min(counts or predicted or {1})  # none at all: one unlabelled keypoint each, so shapes hold
    if predicted - {count}:
        raise ValueError(f"the model predicts {' or '.join(map(str, sorted(predicted)))} keypoints per object "
                         f"but the dataset's objects have {count}")

    def stacked(entry: dict[str, Any]) -> dict[str, Any]:
        rows = [np.zeros((count, 3)) if p is None else p for p in entry["keypoints"]]
        return {**entry, "keypoints": np.stack(rows) if rows else np.zeros((0, count, 3))}
    return [stacked(entry) for entry in truth], [stacked(entry) for entry in found]


def with_twin(boxes: Evaluation, twin: Evaluation, prefix: str) -> Evaluation:
    """The box evaluation with the mask or keypoint one beside it: metrics of both, each per-class row the
    box keys, then the twin's with ``prefix``, then ``support``; the boxes' confusion matrix; the curves of
    both (``pr`` and ``mask_pr`` / ``pose_pr``) where the evaluator draws them."""
    rows = []
    for box_row, twin_row in zip(boxes.per_class, twin.per_class, strict=True):
        row = {key: value for key, value in box_row.items() if key != "support"}
        row.update({prefix + key: twin_row[key] for key in TWIN_KEYS})
        row["support"] = box_row["support"]
        rows.append(row)
    boxes.metrics = {**boxes.metrics, **twin.metrics}
    boxes.per_class = rows
    if getattr(twin, "curves", None):
        boxes.curves = {**(boxes.curves or {}), **twin.curves}
    return boxes


def instance_results(truth, found, classes, sizes, iou_type: str) -> Evaluation:
    """Boxes and their ``segm`` (masks) or ``keypoints`` twin, as one evaluation (``with_twin``)."""
    if iou_type == "keypoints":
        truth, found = stacked_keypoints(truth, found)
    boxes = detection_results(truth, found, classes)
    twin = detection_results(truth, found, classes, iou_type=iou_type, image_sizes=sizes)
    return with_twin(boxes, twin, MASK_PREFIX if iou_type == "segm" else POSE_PREFIX)


def obb_results(truth, found, classes, sizes) -> Evaluation:
    """The rotated boxes' masks by COCO ``segm`` AP, named as detection's metrics (``val/mAP50-95`` …), with
    the confusion matrix matched by mask IoU."""
    evaluation = run_cocoeval(truth, found, len(classes), "segm", sizes)
    result = evaluation_results(evaluation, truth, found, classes, "segm")
    result.metrics = {name.replace("val/mask_", "val/"): value for name, value in result.metrics.items()}
    if getattr(result, "curves", None):  # the masks' curve is the boxes' here: ``pr``, as detection's
        result.curves = {key.removeprefix("mask_"): curve for key, curve in result.curves.items()}
    result.confusion_matrix = mask_confusion_matrix(truth, found, len(classes))
    result.confusion_labels = [*classes, BACKGROUND]
    return result


def mask_confusion_matrix(ground_truth, detections, num_classes: int, score_above: float = MATRIX_SCORE_ABOVE,
                          iou_above: float = MATRIX_IOU_ABOVE) -> np.ndarray:
    """``detection.matched_confusion_matrix`` with the masks' IoU for the boxes': rows ground truth, columns
    prediction, background last; detections scoring above ``score_above``, most confident first, each claim
    the unclaimed object they overlap most above ``iou_above``, whatever the classes; a detection lying on a
    crowd region (intersection over its own area above ``iou_above``) that claims nothing is not counted."""
    from pycocotools import mask as mask_utils

    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for truth, found in zip(ground_truth, detections, strict=True):
        labels = np.asarray(found["labels"], dtype=np.int64).reshape(-1)
        scores = np.asarray(found["scores"], dtype=np.float64).reshape(-1)
        keep = np.flatnonzero(scores > score_above)
        masks = [found["masks"][i] for i in keep]
        labels, scores = labels[keep], scores[keep]
        truth_labels = np.asarray(truth["labels"], dtype=np.int64).reshape(-1)
        crowd = np.asarray(truth.get("iscrowd", np.zeros(len(truth_labels))), dtype=bool).reshape(-1)
        objects = np.flatnonzero(~crowd)
        overlap = np.zeros((len(objects), len(masks)))
        if len(objects) and masks:
            overlap = np.asarray(mask_utils.iou(masks, [truth["masks"][i] for i in objects], [0] * len(objects))).T
        unclaimed = count_claims(matrix, overlap, truth_labels[objects], labels, scores, iou_above)
        if crowd.any() and masks:
            regions = [truth["masks"][i] for i in np.flatnonzero(crowd)]
            on_crowd = np.asarray(mask_utils.iou(masks, regions, [1] * len(regions))).reshape(len(masks), -1)
            unclaimed &= ~(on_crowd > iou_above).any(1)
        np.add.at(matrix, (np.full(int(unclaimed.sum()), background), labels[unclaimed]), 1)
    return matrix
