"""Semantic segmentation metrics from a pixel confusion matrix (``adapters.evaluation.confusion``).

A class's IoU is TP / (TP + FP + FN) over pixels. A class neither present nor predicted has no
IoU (NaN; ``null`` in a record) and is left out of mIoU; a class only predicted counts as 0.
Pixel accuracy is the diagonal over every counted pixel (ignored pixels are never counted).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_MIOU, VAL_PIXEL_ACCURACY

EVALUATOR = "visionyard.segmentation"


def segmentation_metrics(confusion) -> tuple[dict[str, float], np.ndarray]:
    """(``{"mIoU", "pixel_accuracy"}``, IoU per class, NaN where undefined); both 0.0 with no pixels."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
    total = confusion.sum()
    metrics = {"mIoU": float(np.nanmean(iou)) if np.any(union > 0) else 0.0,
               "pixel_accuracy": float(true_positive.sum() / total) if total else 0.0}
    return metrics, iou


def segmentation_results(confusion, class_names: list[str]) -> Evaluation:
    """``val/mIoU`` and ``val/pixel_accuracy``, and ``per_class`` rows ``{"class", "iou", "accuracy",
    "support"}``: ``accuracy`` is the class's pixel recall (its pixels predicted as it, null when it
    has none), ``support`` its true pixels, ``iou`` null when undefined."""
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(f"a {matrix.shape} confusion matrix for {len(class_names)} classes")
    metrics, iou = segmentation_metrics(matrix)
    support = matrix.sum(1)
    per_class: list[dict[str, Any]] = [
        {"class": name, "iou": None if np.isnan(class_iou) else float(class_iou),
         "accuracy": float(matrix[i, i] / pixels) if pixels else None, "support": int(pixels)}
        for i, (name, class_iou, pixels) in enumerate(zip(class_names, iou, support, strict=True))]
    return Evaluation(evaluator=EVALUATOR, classes=list(class_names),
                      metrics={VAL_MIOU: metrics["mIoU"], VAL_PIXEL_ACCURACY: metrics["pixel_accuracy"]},
                      per_class=per_class, confusion_matrix=matrix, confusion_labels=list(class_names))
