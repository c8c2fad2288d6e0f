"""Classification metrics from a confusion matrix: accuracy, macro precision / recall / F1, and a row
per class.

Conventions (those of scikit-learn's ``precision_recall_fscore_support`` with ``zero_division=0``):

- precision of a class never predicted is 0, recall of a class without samples is 0, and F1 is 0
  where precision and recall are both 0;
- the macro averages run over the classes that occur in the ground truth or in the predictions
  (scikit-learn's default labels, torchmetrics' ``average="macro"``): a class absent from both
  says nothing about the model and is left out; its row is still listed, with support 0;
- accuracy is the diagonal over the total (micro), 0.0 when nothing was counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_ACCURACY, VAL_F1, VAL_PRECISION, VAL_RECALL

EVALUATOR = "visionyard.classification"


def classification_results(confusion, class_names: list[str]) -> Evaluation:
    """Metrics in the shared vocabulary (``val/accuracy``, macro ``val/precision``, ``val/recall``,
    ``val/f1``) and ``per_class`` rows ``{"class", "precision", "recall", "f1", "support"}`` from
    ``confusion[t, p]`` (rows ground truth, columns prediction, in the order of ``class_names``)."""
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (len(class_names), len(class_names)):
        raise ValueError(f"a {matrix.shape} confusion matrix for {len(class_names)} classes")
    true_positive = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(1), matrix.sum(0)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * true_positive, support + predicted)  # = 2PR / (P + R), 0 where both are 0
    seen = (support + predicted) > 0
    total = int(matrix.sum())

    def macro(values: np.ndarray) -> float:
        return float(values[seen].mean()) if seen.any() else 0.0

    metrics = {VAL_ACCURACY: float(true_positive.sum() / total) if total else 0.0,
               VAL_PRECISION: macro(precision), VAL_RECALL: macro(recall), VAL_F1: macro(f1)}
    per_class: list[dict[str, Any]] = [
        {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for name, p, r, f, s in zip(class_names, precision, recall, f1, support, strict=True)]
    return Evaluation(evaluator=EVALUATOR, classes=list(class_names), metrics=metrics, per_class=per_class,
                      confusion_matrix=matrix, confusion_labels=list(class_names))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is 0."""
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(denominator), where=denominator > 0)
