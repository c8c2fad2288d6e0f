"""The confusion matrix and the classification metrics, on hand-computed cases and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.evaluation.classification import classification_results
from adapters.evaluation.confusion import ConfusionMatrix, confusion_matrix

CLASSES = ["cat", "dog", "fox"]
#: rows: true class, columns: predicted class
MATRIX = [[5, 1, 0],
          [2, 3, 1],
          [0, 0, 4]]


def samples(matrix) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, target) ids that make ``matrix``."""
    pairs = [(p, t) for t, row in enumerate(matrix) for p, count in enumerate(row) for _ in range(count)]
    predicted, target = zip(*pairs, strict=True)
    return np.array(predicted), np.array(target)


def test_the_matrix_counts_true_rows_by_predicted_columns():
    predicted, target = samples(MATRIX)
    matrix = confusion_matrix(predicted, target, 3)
    assert matrix.tolist() == MATRIX and matrix.dtype == np.int64
    assert matrix.sum() == len(target) == 16


def test_ignored_and_out_of_range_ids_are_not_counted():
    target = np.array([0, 1, 255, 2, -1, 1, 5])
    predicted = np.array([0, 0, 1, 7, 0, 1, 1])
    assert confusion_matrix(predicted, target, 3).tolist() == [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    assert confusion_matrix(predicted, target, 3, ignore_id=1).tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="2 predictions for 3 targets"):
        confusion_matrix([0, 1], [0, 1, 2], 3)


@pytest.mark.parametrize("classes", [4, 1000])  # batches larger, and far smaller, than the matrix
def test_the_accumulator_sums_batches_to_the_whole(classes):
    rng = np.random.default_rng(0)
    predicted, target = rng.integers(0, classes, 1000), rng.integers(0, classes, 1000)
    predicted[:10] = target[:10] = 3  # one cell counted many times in a batch
    target[10] = 255
    accumulator = ConfusionMatrix(classes, ignore_id=255)
    for start in range(0, 1000, 64):
        accumulator.update(predicted[start:start + 64], target[start:start + 64])
    assert (accumulator.matrix == confusion_matrix(predicted, target, classes, ignore_id=255)).all()
    assert accumulator.total == 999 and accumulator.matrix[3, 3] >= 10
    accumulator.reset()
    assert accumulator.total == 0


def test_hand_computed_precision_recall_f1_and_accuracy():
    result = classification_results(np.array(MATRIX), CLASSES)
    # support 6, 6, 4; predicted 7, 4, 5; right 5, 3, 4
    precision, recall = [5 / 7, 3 / 4, 4 / 5], [5 / 6, 3 / 6, 4 / 4]
    f1 = [10 / 13, 6 / 10, 8 / 9]  # 2 TP / (support + predicted)
    assert result.metrics == {"val/accuracy": pytest.approx(12 / 16), "val/precision": pytest.approx(np.mean(precision)),
                              "val/recall": pytest.approx(np.mean(recall)), "val/f1": pytest.approx(np.mean(f1))}
    assert result.per_class == [
        {"class": name, "precision": pytest.approx(p), "recall": pytest.approx(r), "f1": pytest.approx(f), "support": s}
        for name, p, r, f, s in zip(CLASSES, precision, recall, f1, [6, 6, 4], strict=True)]
    assert result.confusion_labels == CLASSES and result.evaluator == "visionyard.classification"
    matrix = result.confusion_matrix
    assert np.trace(matrix) / matrix.sum() == result.metrics["val/accuracy"]


def test_a_class_never_predicted_has_precision_0_and_a_class_never_seen_stays_out_of_the_means():
    # "fox" is never predicted (precision 0, counted in the means); "owl" is neither true nor predicted
    matrix = np.array([[2, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    result = classification_results(matrix, [*CLASSES, "owl"])
    rows = {row["class"]: row for row in result.per_class}
    assert rows["fox"] == {"class": "fox", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert rows["owl"] == {"class": "owl", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert result.metrics["val/precision"] == pytest.approx((2 / 4 + 1 / 2 + 0) / 3)
    assert result.metrics["val/recall"] == pytest.approx((1 + 1 / 2 + 0) / 3)


def test_nothing_counted_gives_zeros():
    result = classification_results(np.zeros((2, 2), int), ["a", "b"])
    assert result.metrics == {"val/accuracy": 0.0, "val/precision": 0.0, "val/recall": 0.0, "val/f1": 0.0}


def test_a_matrix_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"\(2, 2\) confusion matrix for 3 classes"):
        classification_results(np.zeros((2, 2)), CLASSES)


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scikit_learn(seed):
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    rng = np.random.default_rng(seed)
    n = 6
    target = rng.integers(0, n - 1, 200)  # the last class never occurs
    predicted = np.where(rng.random(200) < 0.6, target, rng.integers(0, n, 200))
    predicted[predicted == 2] = 3  # class 2 is never predicted
    result = classification_results(confusion_matrix(predicted, target, n), [str(i) for i in range(n)])
    p, r, f, _ = precision_recall_fscore_support(target, predicted, average="macro", zero_division=0)
    assert result.metrics == {"val/accuracy": pytest.approx(accuracy_score(target, predicted)),
                              "val/precision": pytest.approx(p), "val/recall": pytest.approx(r),
                              "val/f1": pytest.approx(f)}
    p, r, f, s = precision_recall_fscore_support(target, predicted, labels=range(n), zero_division=0)
    assert [row["precision"] for row in result.per_class] == pytest.approx(p)
    assert [row["recall"] for row in result.per_class] == pytest.approx(r)
    assert [row["f1"] for row in result.per_class] == pytest.approx(f)
    assert [row["support"] for row in result.per_class] == s.tolist()
