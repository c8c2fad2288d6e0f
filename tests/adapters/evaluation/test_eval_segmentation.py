"""Semantic segmentation results from a pixel confusion matrix: ignored pixels, an absent class."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.evaluation.confusion import confusion_matrix
from adapters.evaluation.segmentation import segmentation_results

IGNORE = 255
TARGET = np.array([[0, 0, 1, 1], [IGNORE, 2, 2, 2]])
PREDICTED = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])


def test_per_class_iou_accuracy_and_support_with_an_ignored_pixel_and_an_absent_class():
    matrix = confusion_matrix(PREDICTED, TARGET, 4, ignore_id=IGNORE)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]]
    result = segmentation_results(matrix, ["road", "car", "tree", "sky"])
    # IoU = TP / (row + column - TP): 1/3, 2/3, 2/3; "sky" neither present nor predicted: no IoU
    assert result.metrics == {"val/mIoU": pytest.approx(5 / 9), "val/pixel_accuracy": pytest.approx(5 / 7)}
    assert result.per_class == [
        {"class": "road", "iou": pytest.approx(1 / 3), "accuracy": pytest.approx(1 / 2), "support": 2},
        {"class": "car", "iou": pytest.approx(2 / 3), "accuracy": 1.0, "support": 2},
        {"class": "tree", "iou": pytest.approx(2 / 3), "accuracy": pytest.approx(2 / 3), "support": 3},
        {"class": "sky", "iou": None, "accuracy": None, "support": 0}]
    assert result.confusion_labels == ["road", "car", "tree", "sky"]
    assert result.confusion_matrix.sum() == TARGET.size - 1  # every pixel but the ignored one


def test_a_class_only_predicted_has_iou_0_and_counts_in_the_mean():
    matrix = confusion_matrix(np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), 2)
    result = segmentation_results(matrix, ["a", "b"])
    assert result.metrics == {"val/mIoU": 0.25, "val/pixel_accuracy": 0.5}
    assert result.per_class[1] == {"class": "b", "iou": 0.0, "accuracy": None, "support": 0}


def test_nothing_to_score_gives_zeros_and_no_iou():
    matrix = confusion_matrix(np.array([0, 1]), np.array([IGNORE, IGNORE]), 2, ignore_id=IGNORE)
    result = segmentation_results(matrix, ["a", "b"])
    assert result.metrics == {"val/mIoU": 0.0, "val/pixel_accuracy": 0.0}
    assert [row["iou"] for row in result.per_class] == [None, None]
