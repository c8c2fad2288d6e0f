"""The confusion matrix of class ids: one code for classification (one id per image) and semantic
segmentation (one id per pixel).

``C[t, p]`` counts the samples of true class ``t`` predicted as ``p``: rows are the ground truth,
columns the prediction, so a row sums to the class's support and a column to how often the class
was predicted. Each sample is one cell index ``t * n + p``, counted with ``np.bincount`` (a few
nanoseconds per sample), or with ``np.add.at`` when a batch has far fewer samples than the
matrix has cells (1,000 classes: a batch of 64 images touches 64 cells, not a million).
"""

from __future__ import annotations

import numpy as np

#: Below this many samples per matrix cell a batch is added cell by cell instead of by a full bincount.
SPARSE_BELOW = 1 / 16


def confusion_matrix(predicted, target, num_classes: int, ignore_id: int | None = None) -> np.ndarray:
    """The ``num_classes`` x ``num_classes`` int64 matrix ``C[t, p]`` of ``predicted`` against ``target``.

    Both are arrays of class ids of one shape (any: per image, per pixel); they are flattened.
    A sample whose target is ``ignore_id``, or whose target or prediction lies outside
    ``[0, num_classes)``, is not counted.
    """
    cells = _cells(predicted, target, num_classes, ignore_id)
    return np.bincount(cells, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


class ConfusionMatrix:
    """A confusion matrix summed batch by batch: ``update`` per batch, ``matrix`` at the end.

    No predictions are kept, so memory stays ``num_classes²`` whatever the evaluation set's size.
    """

    def __init__(self, num_classes: int, ignore_id: int | None = None) -> None:
        self.num_classes = int(num_classes)
        self.ignore_id = ignore_id
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, predicted, target) -> None:
        """Add one batch of class ids (see :func:`confusion_matrix`)."""
        cells = _cells(predicted, target, self.num_classes, self.ignore_id)
        if cells.size < self.matrix.size * SPARSE_BELOW:
            np.add.at(self.matrix.reshape(-1), cells, 1)
        else:
            self.matrix += np.bincount(cells, minlength=self.matrix.size).reshape(self.matrix.shape)

    def reset(self) -> None:
        self.matrix = np.zeros_like(self.matrix)

    @property
    def total(self) -> int:
        """Samples counted so far."""
        return int(self.matrix.sum())


def _cells(predicted, target, num_classes: int, ignore_id: int | None) -> np.ndarray:
    """The flat cell index ``t * n + p`` of every counted sample."""
    predicted = np.asarray(predicted).ravel().astype(np.int64, copy=False)
    target = np.asarray(target).ravel().astype(np.int64, copy=False)
    if predicted.shape != target.shape:
        raise ValueError(f"{predicted.size} predictions for {target.size} targets")
    valid = (target >= 0) & (target < num_classes) & (predicted >= 0) & (predicted < num_classes)
    if ignore_id is not None:
        valid &= target != ignore_id
    if not valid.all():
        predicted, target = predicted[valid], target[valid]
    return target * num_classes + predicted
