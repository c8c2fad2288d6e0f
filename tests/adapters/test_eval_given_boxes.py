"""``eval`` of a top-down pose model (``adapters.evaluate``): a model whose ``prepare_evaluation`` says
``boxes: "truth"`` is given each image's own boxes, crowd regions left out (``scorer.truth_boxes``), one list per
image in one batched call; each person it returns takes its box's class (mapped to the model's by name), and the
evaluation keeps the keypoint metrics only. A model that says nothing is predicted on whole images, as before.
A stand-in adapter that places every keypoint exactly: OKS AP 1 for both classes."""

from __future__ import annotations

import io

import pytest

from adapters.datasets.records import Annotation, ImageRecord
from adapters.evaluate import EvalError, GivenBoxes, predict_all
from adapters.evaluation.scoring import make_scorer

KEYPOINTS = [[4.0, 5.0, 2], [8.0, 9.0, 2], [6.0, 12.0, 2]]


def record(path: str, *objects: tuple) -> ImageRecord:
    """An image of 32x32 with objects (class id, box, ignore)."""
    return ImageRecord(path, 32, 32, annotations=[
        Annotation(class_id, box, keypoints=[v + (box[0] if i % 3 == 0 else box[1] if i % 3 == 1 else 0)
                                             for i, v in enumerate(sum(KEYPOINTS, []))], ignore=ignore)
        for class_id, box, ignore in objects])


class TopDown:
    """Each given box's keypoints, exactly; every prediction labelled class 0 (the adapter knows no classes)."""

    def __init__(self):
        self.calls = []

    def predict_batch(self, images, top_k, annotate, boxes=None):
        self.calls.append((list(images), boxes))
        return [{"predictions": [{"label": "cat", "index": 0, "score": 0.9, "box": box,
                                  "keypoints": [[x + box[0], y + box[1], 1.0] for x, y, _ in KEYPOINTS]}
                                 for box in each]} for each in boxes]


def test_a_top_down_model_is_given_each_images_boxes_and_its_people_their_classes():
    records = [record("a.png", (0, (1, 1, 15, 20), False), (1, (10, 5, 30, 30), False)),
               record("b.png", (1, (2, 2, 12, 12), False), (0, (0, 0, 32, 32), True))]  # a crowd region
    scorer = make_scorer("pose_estimation", ".", ["cat", "dog"], ["dog", "cat"])  # the model's order differs
    adapter = TopDown()
    predict_all(adapter, scorer, records, None, 8, io.StringIO(), GivenBoxes(["cat", "dog"], ["dog", "cat"]))
    assert adapter.calls == [(["a.png", "b.png"], [[[1, 1, 15, 20], [10, 5, 30, 30]], [[2, 2, 12, 12]]])]
    evaluation = scorer.evaluation()
    GivenBoxes.keypoints_only(evaluation)
    assert evaluation.metrics["val/pose_mAP50-95"] == pytest.approx(1.0)
    assert set(evaluation.metrics) == {"val/pose_precision", "val/pose_recall", "val/pose_mAP50", "val/pose_mAP50-95"}
    assert [row["pose_AP50-95"] for row in evaluation.per_class] == pytest.approx([1.0, 1.0])  # class by the box


def test_a_model_that_returns_another_count_of_people_is_an_error():
    class Lost(TopDown):
        def predict_batch(self, images, top_k, annotate, boxes=None):
            return [{"predictions": []} for _ in images]

    scorer = make_scorer("pose_estimation", ".", ["cat"], ["cat"])
    with pytest.raises(EvalError, match=r"returned 0 people for the 1 boxes of a.png"):
        predict_all(Lost(), scorer, [record("a.png", (0, (1, 1, 15, 20), False))], None, 8, io.StringIO(),
                    GivenBoxes(["cat"], ["cat"]))
