"""COCO evaluation of boxes, instance masks and keypoints (pycocotools ``COCOeval``), and the matched
confusion matrix of detections.

Input, one entry per image, in the pixels of the original image:

- ground truth ``{"boxes": N x 4 xyxy, "labels": N class ids, "iscrowd": N (optional), "masks":
  N masks (segm), "keypoints": N x K x 3 (x, y, visibility; v = 0: not labelled) or N x K x 2
  (keypoints), "area": N (optional)}``;
- detections ``{"boxes": M x 4 xyxy, "scores": M, "labels": M, "masks" (segm), "keypoints":
  M x K x 2 or M x K x 3 (the third value is not used) (keypoints)}``.

A mask is a binary H x W array or a COCO RLE (``{"size": [h, w], "counts": …}``); ``image_sizes``
(``(height, width)`` per image) are needed for uncompressed RLEs and otherwise taken from the masks.

AP is COCO's definition throughout: COCOeval's own parameters (IoU 0.50:0.95, 101 recall points,
all areas, at most 100 detections per image and class for boxes and masks, 20 for keypoints), crowd
regions (``iscrowd``) neither hits nor misses, a detection on one ignored. A class without ground
truth has no AP (``null``; COCO's -1) and is left out of the means; a class with ground truth but
no detections has AP 0. With no ground truth at all every metric is 0.0 (a number, so "best"
can still be chosen).

Precision and recall follow Ultralytics' definition, so they compare with its ``P`` and ``R``:
from COCOeval's matches at IoU 0.50, each class's precision and recall as functions of the score
threshold (1,000 thresholds in [0, 1]); the threshold that maximises the mean F1 over the classes
with ground truth (box-smoothed over 10 % of the range) gives every class's precision and recall,
and their means are ``val/precision`` and ``val/recall``.

The precision–recall curves (``Evaluation.curves``, key ``pr`` for boxes, ``mask_pr`` and ``pose_pr``
for the twins; shape in ``adapters.evaluation.record``) are COCOeval's own at IoU 0.50: its
interpolated precision at the 101 recall points, all areas, the most detections per image, per class
with ground truth and their mean, so the mean of a curve is the AP50 of its class (or the mAP50).

Keypoint similarity (OKS) uses ``sigmas`` per keypoint: COCO's 17 person sigmas when K is 17,
else ``1 / K`` each (Ultralytics' default, so pose AP agrees with its own for the same K). Its
object area is the ``area`` given, else the mask's area, else the box's area x 0.53
(Ultralytics' stand-in for the COCO person segment).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from adapters.evaluation.record import BACKGROUND, RECALL_POINTS, Evaluation, pr_curve
from adapters.metrics import VAL_MAP50, VAL_MAP50_95, VAL_MAP75, VAL_PRECISION, VAL_RECALL

EVALUATOR = "visionyard.coco"
#: The metric prefix of each COCO ``iouType``: box metrics, and their mask and keypoint twins.
PREFIXES = {"bbox": "val/", "segm": "val/mask_", "keypoints": "val/pose_"}
COCO_PERSON_SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07,
                               0.87, 0.87, 0.89, 0.89]) / 10.0
KEYPOINT_AREA_OF_BOX = 0.53
#: The matched confusion matrix counts detections scoring above this, matched above this IoU
#: (Ultralytics' ``ConfusionMatrix``: strictly above 0.25 and 0.45).
MATRIX_SCORE_ABOVE = 0.25
MATRIX_IOU_ABOVE = 0.45
#: The IoU of the precision–recall curves a record keeps.
PR_CURVE_IOU = 0.5
#: Score thresholds of the precision / recall curves, and the share of them the F1 curve is smoothed over.
CURVE_POINTS, F1_SMOOTHING = 1000, 0.1


def detection_results(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]], class_names: list[str],
                      iou_type: str = "bbox", image_sizes: list[tuple[int, int]] | None = None,
                      sigmas=None) -> Evaluation:
    """COCO metrics of ``iou_type`` with the prefix of ``PREFIXES`` (``val/mAP50``, ``val/mAP50-95``,
    ``val/precision``, ``val/recall``; ``val/mask_…``, ``val/pose_…``), ``per_class`` rows ``{"class",
    "AP50", "AP50-95", "precision", "recall", "support"}`` (support: the class's objects that count,
    crowd regions not), the matched confusion matrix of the boxes (``matched_confusion_matrix``) and the
    precision–recall curves at IoU 0.50 (``curves``: ``pr``, ``mask_pr`` or ``pose_pr`` by ``iou_type``)."""
    if iou_type not in PREFIXES:
        raise ValueError(f"Unknown iou_type '{iou_type}'. Valid: {', '.join(PREFIXES)}")
    evaluation = run_cocoeval(ground_truth, detections, len(class_names), iou_type, image_sizes, sigmas)
    return evaluation_results(evaluation, ground_truth, detections, class_names, iou_type)


def box_results(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]],
                class_names: list[str]) -> Evaluation:
    """``detection_results`` of boxes plus ``val/mAP75``, read from the same ``COCOeval``: what object
    detection reports (the Transformers tasks and PP-YOLOE in training, ``eval`` of any detector)."""
    evaluation = run_cocoeval(ground_truth, detections, len(class_names))
    found = evaluation_results(evaluation, ground_truth, detections, class_names)
    found.metrics[VAL_MAP75] = average_precision(evaluation, 0.75) or 0.0
    return found


def evaluation_results(evaluation, ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]],
                       class_names: list[str], iou_type: str = "bbox") -> Evaluation:
    """``detection_results`` of a ``COCOeval`` already run (``run_cocoeval``) on `ground_truth` and
    `detections`: a caller that reads more from the same COCOeval (mAP75) runs it once."""
    ap50 = _per_class_ap(evaluation, iou=0.5)
    ap = _per_class_ap(evaluation)
    precision, recall, support = _precision_recall(evaluation)
    counted = support > 0
    prefix = PREFIXES[iou_type]

    def mean(values: np.ndarray) -> float:
        return float(values[counted].mean()) if counted.any() else 0.0

    metrics = {name.replace("val/", prefix): mean(values) for name, values in
               ((VAL_PRECISION, precision), (VAL_RECALL, recall), (VAL_MAP50, ap50), (VAL_MAP50_95, ap))}
    per_class = [{"class": name, "AP50": _value(ap50[k], counted[k]), "AP50-95": _value(ap[k], counted[k]),
                  "precision": _value(precision[k], counted[k]), "recall": _value(recall[k], counted[k]),
                  "support": int(support[k])} for k, name in enumerate(class_names)]
    matrix = matched_confusion_matrix(ground_truth, detections, len(class_names))
    curve = pr_curve(pr_precision(evaluation, PR_CURVE_IOU), list(class_names), PR_CURVE_IOU)
    return Evaluation(evaluator=EVALUATOR, classes=list(class_names), metrics=metrics, per_class=per_class,
                      confusion_matrix=matrix, confusion_labels=[*class_names, BACKGROUND],
                      curves=None if curve is None else {curve_key(iou_type): curve})


def curve_key(iou_type: str) -> str:
    """The record's key of ``iou_type``'s precision–recall curve: ``pr``, ``mask_pr``, ``pose_pr`` (as the
    prefix of its metrics)."""
    return PREFIXES[iou_type].removeprefix("val/") + "pr"


def pr_precision(evaluation, iou: float = PR_CURVE_IOU) -> np.ndarray:
    """COCOeval's precision at IoU ``iou`` per class (rows) at its 101 recall points (columns), all areas,
    the most detections per image; NaN for a class without ground truth (COCO's -1)."""
    params = evaluation.params
    rows = np.flatnonzero(np.isclose(params.iouThrs, iou))
    if not len(rows) or len(params.recThrs) != RECALL_POINTS:
        raise ValueError(f"COCOeval has no precision at IoU {iou} on {RECALL_POINTS} recall points")
    precision = np.asarray(evaluation.eval["precision"][rows[0], :, :, 0, -1], dtype=np.float64).T  # K x R
    return np.where(precision > -1, precision, np.nan)


def run_cocoeval(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]], num_classes: int | None = None,
                 iou_type: str = "bbox", image_sizes: list[tuple[int, int]] | None = None, sigmas=None):
    """A pycocotools ``COCOeval`` of ``iou_type`` over the images, evaluated and accumulated (quietly).

    Class ``c`` is COCO category ``c + 1``, for every ``c`` below ``num_classes`` (default: the
    largest label given + 1), so ``eval["precision"][..., k, ...]`` is class ``k``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(ground_truth) != len(detections):
        raise ValueError(f"{len(ground_truth)} images of ground truth but {len(detections)} of detections")
    truth = [_objects(t, iou_type) for t in ground_truth]
    found = [_objects(d, iou_type, detection=True) for d in detections]
    if num_classes is None:
        num_classes = 1 + max((int(o["labels"].max()) for o in truth + found if len(o["labels"])), default=-1)
    for objects in truth + found:
        outside = objects["labels"][(objects["labels"] < 0) | (objects["labels"] >= num_classes)]
        if len(outside):
            raise ValueError(f"class ids must lie in [0, {num_classes}); found {sorted(set(outside.tolist()))[:10]}")
    images = [{"id": i, "height": int(h), "width": int(w)}
              for i, (h, w) in enumerate(_image_sizes(truth, found, image_sizes), start=1)]
    categories = [{"id": c + 1} for c in range(num_classes)]
    keypoints = max((o["keypoints"].shape[1] for o in truth + found if o.get("keypoints") is not None), default=0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        cocos = []
        for objects, detection in ((truth, False), (found, True)):
            annotations = [a for i, o in enumerate(objects, start=1) for a in _annotations(o, i, iou_type, detection)]
            for ann_id, annotation in enumerate(annotations, start=1):  # ids from 1: COCOeval reads 0 as "no match"
                annotation["id"] = ann_id
            coco = COCO()
            coco.dataset = {"images": images, "annotations": annotations, "categories": categories}
            coco.createIndex()
            cocos.append(coco)
        evaluation = COCOeval(cocos[0], cocos[1], iouType=iou_type)
        if iou_type == "keypoints":
            evaluation.params.kpt_oks_sigmas = keypoint_sigmas(keypoints, sigmas)
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


def average_precision(evaluation, iou: float | None = None) -> float | None:
    """The mean AP over the classes with ground truth, at IoU ``iou`` (None: 0.50:0.95) — what
    COCOeval's ``summarize`` prints; None when no class has ground truth."""
    per_class = _per_class_ap(evaluation, iou)
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else None


def keypoint_sigmas(count: int, sigmas=None) -> np.ndarray:
    """The OKS sigma of each of ``count`` keypoints: ``sigmas`` when given, else COCO's 17 or ``1 / count``."""
    if sigmas is not None:
        sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
        if count and len(sigmas) != count:
            raise ValueError(f"{len(sigmas)} keypoint sigmas for {count} keypoints")
        return sigmas
    return COCO_PERSON_SIGMAS.copy() if count == 17 else np.full(count, 1.0 / max(count, 1))


def matched_confusion_matrix(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]], num_classes: int,
                             score_above: float = MATRIX_SCORE_ABOVE,
                             iou_above: float = MATRIX_IOU_ABOVE) -> np.ndarray:
    """``C[t, p]`` over ``num_classes + 1`` labels, the last being background: rows ground truth,
    columns prediction, matched by boxes as Ultralytics' ``ConfusionMatrix`` matches them.

    Detections scoring above ``score_above``, most confident first, each claim the unclaimed object
    they overlap most if that IoU is above ``iou_above``, whatever the classes (so a confusion between
    classes is counted): a claimed object counts at ``[its class, the detection's class]``, an
    unclaimed one at ``[its class, background]``, an unclaimed detection at ``[background, its
    class]``. Crowd regions are no objects, and an unclaimed detection lying on one (intersection
    over the detection's area above ``iou_above``) is not counted, as COCO ignores it.
    """
    background = num_classes
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for truth, found in zip(ground_truth, detections, strict=True):
        truth, found = _objects(truth, "bbox"), _objects(found, "bbox", detection=True)
        keep = found["scores"] > score_above
        boxes, labels, scores = found["boxes"][keep], found["labels"][keep], found["scores"][keep]
        objects = ~truth["iscrowd"]
        unclaimed = count_claims(matrix, box_iou(truth["boxes"][objects], boxes), truth["labels"][objects], labels,
                                 scores, iou_above)
        if truth["iscrowd"].any():
            unclaimed &= ~(box_iou(truth["boxes"][~objects], boxes, over_second=True) > iou_above).any(0)
        np.add.at(matrix, (np.full(int(unclaimed.sum()), background), labels[unclaimed]), 1)
    return matrix


def count_claims(matrix: np.ndarray, overlap: np.ndarray, object_labels: np.ndarray, labels: np.ndarray,
                 scores: np.ndarray, iou_above: float) -> np.ndarray:
    """One image's objects into ``matrix`` (background its last row and column): detections, most confident
    first, each claim the unclaimed object they overlap most (``overlap``: objects x detections) above
    ``iou_above``, whatever the classes; a claimed object counts at ``[its class, the detection's]``, an
    unclaimed one at ``[its class, background]``. Returns which detections claimed nothing (the caller counts
    them as background rows, or not where they lie on a crowd region)."""
    background = matrix.shape[0] - 1
    overlap = np.array(overlap, dtype=np.float64).reshape(len(object_labels), len(labels))
    claimed = np.full(len(object_labels), -1)
    for d in sorted(np.flatnonzero((overlap > iou_above).any(0)), key=lambda d: -scores[d]):
        best = int(overlap[:, d].argmax())
        if overlap[best, d] > iou_above:
            claimed[best] = d
            overlap[best] = 0  # claimed: no other detection takes it
    predicted = np.where(claimed >= 0, labels[np.maximum(claimed, 0)] if len(labels) else background, background)
    np.add.at(matrix, (object_labels, predicted), 1)
    unclaimed = np.ones(len(labels), dtype=bool)
    unclaimed[claimed[claimed >= 0]] = False
    return unclaimed


def box_iou(first: np.ndarray, second: np.ndarray, over_second: bool = False) -> np.ndarray:
    """IoU of every xyxy box of ``first`` (N) with every one of ``second`` (M), N x M; with
    ``over_second`` the intersection over the area of the ``second`` box instead."""
    first, second = np.asarray(first, dtype=np.float64).reshape(-1, 4), np.asarray(second, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(2)
    area_first, area_second = _areas(first), _areas(second)
    union = area_second[None, :] if over_second else area_first[:, None] + area_second[None, :] - intersection
    return intersection / np.maximum(union, 1e-7)


# ---------------------------------------------------------------- COCO annotations


def _objects(entry: dict[str, Any], iou_type: str, detection: bool = False) -> dict[str, Any]:
    """One image's objects as arrays: boxes, labels, scores / iscrowd, and what ``iou_type`` needs."""
    labels = np.asarray(entry.get("labels", []), dtype=np.int64).reshape(-1)
    out: dict[str, Any] = {"boxes": np.asarray(entry.get("boxes", []), dtype=np.float64).reshape(-1, 4),
                           "labels": labels}
    if len(out["boxes"]) != len(labels):
        raise ValueError(f"{len(out['boxes'])} boxes for {len(labels)} labels")
    if detection:
        out["scores"] = np.asarray(entry.get("scores", []), dtype=np.float64).reshape(-1)
        if len(out["scores"]) != len(labels):
            raise ValueError(f"{len(out['scores'])} scores for {len(labels)} detections")
    else:
        crowd = entry.get("iscrowd")
        out["iscrowd"] = np.zeros(len(labels), bool) if crowd is None else np.asarray(crowd, bool).reshape(-1)
        if entry.get("area") is not None:
            out["area"] = np.asarray(entry["area"], dtype=np.float64).reshape(-1)
    masks = entry.get("masks")
    if iou_type == "segm" and masks is None:
        raise ValueError("mask evaluation needs the masks of every image's objects and detections")
    if iou_type == "segm" or (iou_type == "keypoints" and masks is not None):  # keypoints: the masks' areas
        out["masks"] = [_rle(mask) for mask in masks]
    if iou_type == "keypoints":
        points = np.asarray(entry.get("keypoints", []), dtype=np.float64)
        if not points.size:
            points = np.zeros((0, 0, 3))
        if points.ndim != 3 or points.shape[2] not in (2, 3):
            raise ValueError(f"keypoints must be N x K x 3 (or 2) per image, not {points.shape}")
        out["keypoints"] = points
    for key in ("masks", "keypoints"):
        if key in out and len(out[key]) != len(labels):
            raise ValueError(f"{len(out[key])} {key} for {len(labels)} objects")
    return out


def _annotations(objects: dict[str, Any], image_id: int, iou_type: str, detection: bool) -> list[dict[str, Any]]:
    from pycocotools import mask as mask_utils

    boxes = objects["boxes"]
    areas = _areas(boxes)
    if "masks" in objects:
        mask_areas = np.asarray([float(mask_utils.area(m)) for m in objects["masks"]])
        areas = mask_areas if iou_type == "segm" else areas
    if objects.get("area") is not None:
        areas = objects["area"]
    elif iou_type == "keypoints" and not detection:
        areas = mask_areas if "masks" in objects else areas * KEYPOINT_AREA_OF_BOX
    out = []
    for i, (box, label, area) in enumerate(zip(boxes, objects["labels"], areas, strict=True)):
        x1, y1, x2, y2 = (float(v) for v in box)
        annotation = {"image_id": image_id, "category_id": int(label) + 1, "area": float(area),
                      "bbox": [x1, y1, max(0.0, x2 - x1), max(0.0, y2 - y1)]}
        if detection:
            annotation["score"] = float(objects["scores"][i])
        else:
            annotation["iscrowd"] = int(objects["iscrowd"][i])
        if iou_type == "segm":
            annotation["segmentation"] = objects["masks"][i]
        if iou_type == "keypoints":
            points = objects["keypoints"][i]
            visible = points[:, 2] if points.shape[1] > 2 and not detection else np.full(len(points), 2.0)
            annotation["keypoints"] = np.column_stack([points[:, :2], visible]).reshape(-1).tolist()
            annotation["num_keypoints"] = int((visible > 0).sum())
        out.append(annotation)
    return out


def _rle(mask) -> dict[str, Any]:
    """A binary H x W mask or a COCO RLE → a compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(mask, dict):
        if isinstance(mask.get("counts"), list):  # uncompressed
            height, width = mask["size"]
            return mask_utils.frPyObjects(mask, height, width)
        return mask
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


def _image_sizes(truth, found, given) -> list[tuple[int, int]]:
    """Each image's (height, width): given, else its first mask's, else (0, 0) (not needed then)."""
    if given is not None:
        if len(given) != len(truth):
            raise ValueError(f"{len(given)} image sizes for {len(truth)} images")
        return [tuple(int(v) for v in size) for size in given]
    sizes = []
    for t, f in zip(truth, found, strict=True):
        masks = t.get("masks") or f.get("masks") or []
        sizes.append(tuple(int(v) for v in masks[0]["size"]) if masks else (0, 0))
    return sizes


def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


# ---------------------------------------------------------------- reading COCOeval's results


def _per_class_ap(evaluation, iou: float | None = None) -> np.ndarray:
    """AP per class (NaN without ground truth), all areas, the most detections per image."""
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # T x R x K
    if iou is not None:
        precision = precision[np.flatnonzero(np.isclose(evaluation.params.iouThrs, iou))]
    valid = precision > -1
    total = np.where(valid, precision, 0).sum((0, 1))
    count = valid.sum((0, 1))
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def _precision_recall(evaluation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: precision and recall at IoU 0.50 at the score of the best mean F1, and the support."""
    params = evaluation.params
    classes, areas, images = len(params.catIds), len(params.areaRng), len(params.imgIds)
    most = params.maxDets[-1]
    grid = np.linspace(0, 1, CURVE_POINTS)
    p_curve, r_curve = np.zeros((classes, CURVE_POINTS)), np.zeros((classes, CURVE_POINTS))
    support = np.zeros(classes, dtype=np.int64)
    for k in range(classes):
        start = k * areas * images  # the "all" area range comes first
        found = [e for e in evaluation.evalImgs[start:start + images] if e is not None]
        if not found:
            continue
        support[k] = sum(int((e["gtIgnore"] == 0).sum()) for e in found)
        scores = np.concatenate([np.asarray(e["dtScores"][:most], dtype=np.float64) for e in found])
        if not support[k] or not len(scores):
            continue
        hits = np.concatenate([e["dtMatches"][0, :most] > 0 for e in found])
        counted = ~np.concatenate([e["dtIgnore"][0, :most].astype(bool) for e in found])
        order = np.argsort(-scores[counted], kind="mergesort")
        scores, hits = scores[counted][order], hits[counted][order]
        if not len(scores):
            continue
        true_positives, false_positives = np.cumsum(hits), np.cumsum(~hits)
        r_curve[k] = np.interp(-grid, -scores, true_positives / support[k], left=0)
        p_curve[k] = np.interp(-grid, -scores, true_positives / (true_positives + false_positives), left=1)
    counted = support > 0
    if not counted.any():
        return np.zeros(classes), np.zeros(classes), support
    f1 = 2 * p_curve * r_curve / (p_curve + r_curve + 1e-16)
    best = int(_smooth(f1[counted].mean(0), F1_SMOOTHING).argmax())
    return p_curve[:, best], r_curve[:, best], support


def _smooth(values: np.ndarray, fraction: float) -> np.ndarray:
    """A box filter over ``fraction`` of the curve, its ends padded with their own values."""
    width = round(len(values) * fraction * 2) // 2 + 1  # odd
    pad = np.ones(width // 2)
    padded = np.concatenate((pad * values[0], values, pad * values[-1]))
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _value(value: float, counted: bool) -> float | None:
    return float(value) if counted and np.isfinite(value) else None
