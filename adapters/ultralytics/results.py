"""Each training validation's per-class results and confusion matrix, read from Ultralytics' own validator.

The record (``adapters.evaluation.record``) of an epoch of an Ultralytics run holds what Ultralytics'
validator measured that epoch, its ``evaluator`` being ``ultralytics <version>``:

- detection and OBB: a ``per_class`` row ``{"class", "AP50", "AP50-95", "precision", "recall",
  "support"}`` per class (``Metric.ap50``, ``.ap``, ``.p``, ``.r`` of ``metrics.box``; support is
  ``nt_per_class``, the class's objects in the validation set);
- instance segmentation adds the mask twins ``mask_AP50``, ``mask_AP50-95``, ``mask_precision``,
  ``mask_recall`` (``metrics.seg``), pose the keypoint twins ``pose_AP50`` … ``pose_recall``
  (``metrics.pose``), the unprefixed keys being the boxes' as for detection;
- a class without ground truth in the validation set has ``null`` AP, precision and recall (Ultralytics
  computes none for it: its ``ap_class_index`` lists only classes with objects) and support 0;
- the confusion matrix has a background row and column, last. Ultralytics counts one only when it draws
  plots (never in a run of this runner, which trains with ``plots=False``, and even then only on the
  last epoch), so ``ConfusionCounter`` counts it from the validator's own detections and objects of each
  image, matched as Ultralytics' ``ConfusionMatrix.process_batch`` matches them (its greedy matching and
  its IoU, redone in numpy on the CPU: the same counts, tested, at a fifth of the cost of calling it
  per image) at the thresholds of visionyard's ``eval`` (``adapters.evaluation.detection``: score above
  0.25, IoU above 0.45), so a training record and an ``eval`` of its checkpoint count alike. (This
  Ultralytics counts its own matrix at the validation's ``conf``, 0.001: nearly every low-score box
  would land in the background row.)
- detection-like tasks: the precision–recall curves at IoU 0.50 (``curves``: ``pr`` for boxes, ``mask_pr``
  and ``pose_pr`` for the twins; shape in ``adapters.evaluation.record``) are Ultralytics' own PR curve
  (``Metric.prec_values`` over ``Metric.px``: per class with objects, its precision envelope linearly
  interpolated at 1,000 recall points, what its ``PR_curve.png`` draws), resampled at COCO's 101 recall
  points, so they draw like an ``eval`` record's (COCOeval's step-interpolated precision at the same points;
  the two differ a little between a curve's points);
- classification: ``adapters.evaluation.classification`` rows (``precision``, ``recall`` = the class's
  top-1 accuracy, ``f1``, ``support``) from the matrix the ``ClassificationValidator`` fills every
  validation, and its macro ``val/precision``, ``val/recall``, ``val/f1``, which the epoch reports too.

Ultralytics' matrices are indexed ``[predicted, true]``, a record's ``[true, predicted]``: the classification
one is transposed, the detection one counted that way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from adapters.evaluation.classification import classification_results
from adapters.evaluation.detection import MATRIX_IOU_ABOVE, MATRIX_SCORE_ABOVE
from adapters.evaluation.record import BACKGROUND, RECALL_POINTS, Evaluation, pr_curve, recall_points

#: Ultralytics' per-class results of each task: (attribute of its metrics object, key prefix in a row).
PARTS = {"object_detection": (("box", ""),), "obb_detection": (("box", ""),),
         "instance_segmentation": (("box", ""), ("seg", "mask_")),
         "pose_estimation": (("box", ""), ("pose", "pose_"))}
#: A per-class row's keys of one part, in order, and the ``Metric`` attribute of each.
ROW_KEYS = (("AP50", "ap50"), ("AP50-95", "ap"), ("precision", "p"), ("recall", "r"))
#: The validator method the matrix hooks into: called once per image with its detections and objects.
PER_IMAGE = "_process_batch"
#: The images a detection validator's matrix gathers before matching them together on the CPU.
BATCH_IMAGES = 64


def evaluator_name() -> str:
    import ultralytics

    return f"ultralytics {ultralytics.__version__}"


def class_names(validator) -> list[str]:
    """The validator's class names, in the order of its class ids."""
    names = validator.names
    return [str(names[i]) for i in range(len(names))]


class ConfusionCounter:
    """Counts a detection validator's confusion matrix while it validates, without drawing anything.

    ``start(validator)`` (on ``on_val_start``) hooks the validator's per-image step once and starts a
    new matrix when the validation is one of training (none for the final validation of ``best.pt``).
    The hook keeps each image's detections and objects as the validator prepared them (no copy, no
    device op per image); every ``BATCH_IMAGES`` images, and at ``take()``, they go to the CPU together
    and are matched there (``match_images``). ``seconds``: what the counting took in this validation.
    """

    def __init__(self) -> None:
        self.matrix: np.ndarray | None = None  # [true, predicted], background last, while a validation runs
        self.rotated = False
        self.seconds = 0.0
        self._images: list[tuple] = []

    def start(self, validator) -> None:
        self.seconds, self.matrix, self._images = 0.0, None, []
        if not validator.training:
            return
        original = getattr(validator, PER_IMAGE, None)
        if original is None:
            return
        if not getattr(original, "counts_confusion", False):
            setattr(validator, PER_IMAGE, self._counting(original))
        labels = len(validator.data["names"]) + 1
        self.matrix = np.zeros((labels, labels), dtype=np.int64)
        self.rotated = validator.args.task == "obb"

    def _counting(self, original: Callable) -> Callable:
        def per_image(preds: dict[str, Any], batch: dict[str, Any]):
            found = original(preds, batch)
            if self.matrix is not None:
                started = time.perf_counter()
                self._images.append((preds["bboxes"], preds["conf"], preds["cls"], batch["bboxes"], batch["cls"]))
                if len(self._images) >= BATCH_IMAGES:
                    self._match()
                self.seconds += time.perf_counter() - started
            return found
        per_image.counts_confusion = True
        return per_image

    def _match(self) -> None:
        import torch

        images, self._images = self._images, []
        if not images or self.matrix is None:
            return
        width = 5 if self.rotated else 4  # xywhr or xyxy
        boxes, scores, classes, truth_boxes, truth_classes = (
            torch.cat([image[k].reshape(-1, columns) for image in images]).float().cpu().numpy()
            for k, columns in enumerate((width, 1, 1, width, 1)))
        match_images(self.matrix, truth_boxes, truth_classes[:, 0], [len(image[4]) for image in images],
                     boxes, scores[:, 0], classes[:, 0], [len(image[1]) for image in images], rotated=self.rotated)

    def take(self) -> np.ndarray | None:
        """The matrix counted, ``[true, predicted]`` with background last; None when none was counted."""
        started = time.perf_counter()
        self._match()
        self.seconds += time.perf_counter() - started
        matrix, self.matrix = self.matrix, None
        return matrix


def match_images(matrix: np.ndarray, truth_boxes: np.ndarray, truth_classes: np.ndarray, truth_counts: list[int],
                 boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, counts: list[int],
                 rotated: bool = False, score_above: float = MATRIX_SCORE_ABOVE,
                 iou_above: float = MATRIX_IOU_ABOVE) -> None:
    """Add images to ``matrix[true, predicted]`` (background last) as Ultralytics'
    ``ConfusionMatrix.process_batch`` counts them, image by image: detections scoring above ``score_above``,
    most confident first, each claim the unclaimed object whose box (rotated box: probabilistic IoU) they
    overlap most, if above ``iou_above``, whatever the classes; a claimed object counts at ``[its class,
    the detection's]``, an unclaimed one at ``[its class, background]``, an unclaimed detection at
    ``[background, its class]``. The images' objects and detections come one image after the other,
    ``truth_counts`` and ``counts`` of them per image."""
    background = len(matrix) - 1
    image_of = np.repeat(np.arange(len(counts)), counts)
    keep = scores > score_above
    boxes, scores, classes, image_of = boxes[keep], scores[keep], classes[keep].astype(np.int64), image_of[keep]
    starts = np.searchsorted(image_of, np.arange(len(counts) + 1))
    truth_starts = np.concatenate(([0], np.cumsum(truth_counts))).astype(np.int64)
    predicted = np.full(len(truth_classes), background, dtype=np.int64)
    claimed = np.zeros(len(classes), dtype=bool)
    overlap = _rotated_iou if rotated else _box_iou
    for i in np.flatnonzero((np.diff(starts) > 0) & (np.diff(truth_starts) > 0)):
        t0, d0 = truth_starts[i], starts[i]
        iou = overlap(truth_boxes[t0:truth_starts[i + 1]], boxes[d0:starts[i + 1]])
        candidates = np.flatnonzero((iou > iou_above).any(0))
        for d in candidates[np.argsort(-scores[d0 + candidates], kind="stable")]:
            t = iou[:, d].argmax()
            if iou[t, d] > iou_above:
                predicted[t0 + t], claimed[d0 + d] = classes[d0 + d], True
                iou[t] = 0  # claimed: no other detection takes it
    np.add.at(matrix, (truth_classes.astype(np.int64), predicted), 1)
    np.add.at(matrix[background], classes[~claimed], 1)


def _box_iou(first: np.ndarray, second: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """IoU of xyxy boxes, N x M, in float32 as Ultralytics' ``box_iou`` computes it."""
    wh = np.minimum(first[:, None, 2:], second[None, :, 2:]) - np.maximum(first[:, None, :2], second[None, :, :2])
    np.maximum(wh, 0, out=wh)
    inter = wh[..., 0] * wh[..., 1]
    areas = [(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) for boxes in (first, second)]
    return inter / (areas[0][:, None] + areas[1][None, :] - inter + np.float32(eps))


def _rotated_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    from ultralytics.utils.metrics import batch_probiou

    return batch_probiou(first, second).numpy()


def detection_rows(metrics, names: list[str], task: str) -> list[dict[str, Any]]:
    """A row per class from Ultralytics' ``DetMetrics`` (or its segment / pose / OBB kin) just processed."""
    support = metrics.nt_per_class if metrics.nt_per_class is not None else np.zeros(len(names), dtype=np.int64)
    rows: list[dict[str, Any]] = [{"class": name} for name in names]
    for attribute, prefix in PARTS[task]:
        part = getattr(metrics, attribute)
        where = {int(c): i for i, c in enumerate(part.ap_class_index)}
        values = {key: np.asarray(getattr(part, name), dtype=np.float64) for key, name in ROW_KEYS}
        for c, row in enumerate(rows):
            i = where.get(c)
            for key, _ in ROW_KEYS:
                row[prefix + key] = None if i is None or not np.isfinite(values[key][i]) else float(values[key][i])
    for c, row in enumerate(rows):
        row["support"] = int(support[c]) if c < len(support) else 0
    return rows


def pr_curves(metrics, names: list[str], task: str) -> dict[str, dict[str, Any]] | None:
    """The record's precision–recall curves from Ultralytics' ``DetMetrics`` (or its kin) just processed: each
    part's ``prec_values`` (a row per class of ``ap_class_index``) resampled from ``px`` at the 101 recall
    points; None when it has none. An Ultralytics that keeps rows only for the classes it detected (its
    rows no longer line up with ``ap_class_index``) gives the mean curve only, the missing classes at 0."""
    curves = {}
    for attribute, prefix in PARTS.get(task, ()):
        try:
            curve = _pr_curve(getattr(metrics, attribute, None), names)
        except (ValueError, TypeError, IndexError):  # arrays of another shape: no curve, the record stays
            curve = None
        if curve is not None:
            curves[prefix + "pr"] = curve
    return curves or None


def _pr_curve(part, names: list[str]) -> dict[str, Any] | None:
    px, values = getattr(part, "px", None), getattr(part, "prec_values", None)
    if px is None or values is None:
        return None
    classes = np.asarray(part.ap_class_index, dtype=np.int64).reshape(-1)
    px = np.asarray(px, dtype=np.float64).reshape(-1)
    if not classes.size or not px.size:
        return None
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(px))
    resampled = np.array([np.interp(recall_points(), px, row) for row in values]).reshape(-1, RECALL_POINTS)
    if len(values) == classes.size and classes.max() < len(names) and classes.min() >= 0:
        precision = np.full((len(names), RECALL_POINTS), np.nan)
        precision[classes] = resampled
        return pr_curve(precision, names)
    padded = np.zeros((classes.size, RECALL_POINTS))  # the classes without a row found nothing: precision 0
    padded[:min(len(resampled), classes.size)] = resampled[:classes.size]
    curve = pr_curve(padded, [str(c) for c in range(classes.size)])
    if curve is not None:
        curve.pop("per_class", None)
    return curve


def validation_results(validator, task: str, matrix: np.ndarray | None) -> Evaluation:
    """What the validator measured in the validation it just ran: per-class rows and the confusion matrix
    (``matrix``, counted by ``ConfusionCounter``, for detection; the validator's own for classification),
    and for detection-like tasks the precision–recall curves (``pr_curves``).
    Its metrics are the classification macro ones (classification) or none: the record takes the
    epoch's reported metrics."""
    names = class_names(validator)
    if task == "image_classification":
        evaluation = classification_results(np.asarray(validator.confusion_matrix.matrix, dtype=np.int64).T, names)
        evaluation.evaluator = evaluator_name()
        return evaluation
    return Evaluation(evaluator=evaluator_name(), classes=names, metrics={},
                      per_class=detection_rows(validator.metrics, names, task), confusion_matrix=matrix,
                      confusion_labels=[*names, BACKGROUND] if matrix is not None else [],
                      curves=pr_curves(validator.metrics, names, task))
