"""COCO evaluation of boxes, masks and keypoints, and the matched confusion matrix, on cases whose
answers are known by hand.

COCO's AP is the mean over 101 recall points (0, 0.01, … 1) of the best precision at that recall or
above, averaged over IoU 0.50, 0.55, … 0.95 for AP50-95. So one object found with nothing scoring
above it gives 1.0; a false positive scoring above the only hit gives precision 1/2 at every recall
point (0.5); finding one of two objects gives precision 1 at the 51 points up to recall 0.5 (51/101).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.evaluation.detection import (COCO_PERSON_SIGMAS, detection_results, keypoint_sigmas,
                                           matched_confusion_matrix)

CLASSES = ["cat", "dog", "fox"]
A, B, FAR = [10, 10, 50, 50], [60, 60, 100, 100], [150, 150, 190, 190]


def truth(boxes, labels, **extra):
    return {"boxes": boxes, "labels": labels, **extra}


def found(boxes, labels, scores, **extra):
    return {"boxes": boxes, "labels": labels, "scores": scores, **extra}


def rows(result) -> dict[str, dict]:
    return {row["class"]: row for row in result.per_class}


def test_perfect_detections_score_1():
    gt = [truth([A, B], [0, 1]), truth([A], [1])]
    dt = [found([A, B], [0, 1], [0.9, 0.8]), found([A], [1], [0.7])]
    result = detection_results(gt, dt, CLASSES)
    assert result.metrics == {"val/precision": 1.0, "val/recall": 1.0, "val/mAP50": pytest.approx(1.0),
                              "val/mAP50-95": pytest.approx(1.0)}
    assert rows(result)["dog"] == {"class": "dog", "AP50": pytest.approx(1.0), "AP50-95": pytest.approx(1.0),
                                   "precision": 1.0, "recall": 1.0, "support": 2}
    assert result.evaluator == "visionyard.coco" and result.confusion_labels == [*CLASSES, "background"]


@pytest.mark.parametrize(("fp_score", "ap", "precision"), [
    pytest.param(0.95, 0.5, pytest.approx(0.5), id="false-positive-above-the-hit"),
    # Between the two scores precision is interpolated from 1/2 up to 1; the smoothed F1 curve
    # peaks a little below the hit's score, where it is just under 1 (as Ultralytics' P).
    pytest.param(0.3, 1.0, pytest.approx(1.0, abs=0.05), id="false-positive-below-the-hit"),
])
def test_one_false_positive(fp_score, ap, precision):
    result = detection_results([truth([A], [0])], [found([FAR, A], [0, 0], [fp_score, 0.9])], CLASSES[:1])
    assert result.metrics["val/mAP50"] == pytest.approx(ap) and result.metrics["val/mAP50-95"] == pytest.approx(ap)
    # the best F1 is at a score that keeps the hit
    assert result.metrics["val/recall"] == pytest.approx(1.0)
    assert result.metrics["val/precision"] == precision


def test_one_false_negative():
    result = detection_results([truth([A, B], [0, 0])], [found([A], [0], [0.9])], CLASSES[:1])
    assert result.metrics == {"val/precision": pytest.approx(1.0), "val/recall": pytest.approx(0.5),
                              "val/mAP50": pytest.approx(51 / 101), "val/mAP50-95": pytest.approx(51 / 101)}
    assert rows(result)["cat"]["support"] == 2


def test_an_overlap_of_0_63_is_a_hit_at_three_of_the_ten_thresholds():
    # shifted 9 px: IoU 1240 / 1960 = 0.63, a hit at 0.50, 0.55 and 0.60
    result = detection_results([truth([A], [0])], [found([[19, 10, 59, 50]], [0], [0.9])], CLASSES[:1])
    assert result.metrics["val/mAP50"] == pytest.approx(1.0)
    assert result.metrics["val/mAP50-95"] == pytest.approx(0.3)


def test_a_detection_on_a_crowd_region_is_no_false_positive():
    gt = [truth([A, B], [0, 0], iscrowd=[0, 1])]
    dt = [found([[61, 61, 99, 99], A], [0, 0], [0.95, 0.9])]  # the most confident one lies on the crowd
    result = detection_results(gt, dt, CLASSES[:1])
    assert result.metrics["val/mAP50-95"] == pytest.approx(1.0) and result.metrics["val/precision"] == 1.0
    assert rows(result)["cat"]["support"] == 1  # the crowd region is no object
    assert result.confusion_matrix.tolist() == [[1, 0], [0, 0]]  # nor is it in the matrix


@pytest.mark.parametrize(("score", "ap"), [(0.95, 0.5), (0.5, 1.0)])
def test_detections_on_an_image_without_annotations_are_false_positives(score, ap):
    gt = [truth([A], [0]), truth([], [])]
    dt = [found([A], [0], [0.9]), found([B], [0], [score])]
    result = detection_results(gt, dt, CLASSES[:1])
    assert result.metrics["val/mAP50"] == pytest.approx(ap)
    assert result.confusion_matrix.tolist() == [[1, 0], [1, 0]]  # the second detection: background row


def test_a_class_never_predicted_has_ap_0_and_recall_0():
    gt = [truth([A, B], [0, 1])]
    result = detection_results(gt, [found([A], [0], [0.9])], CLASSES[:2])
    assert rows(result)["dog"] == {"class": "dog", "AP50": 0.0, "AP50-95": 0.0, "precision": 0.0, "recall": 0.0,
                                   "support": 1}
    assert result.metrics["val/mAP50-95"] == pytest.approx(0.5) and result.metrics["val/recall"] == pytest.approx(0.5)


def test_a_class_without_ground_truth_has_no_ap_and_does_not_count():
    gt = [truth([A], [0])]
    alone = detection_results(gt, [found([A], [0], [0.9])], CLASSES)
    with_fox = detection_results(gt, [found([A, FAR], [0, 2], [0.9, 0.99])], CLASSES)
    assert rows(with_fox)["fox"] == {"class": "fox", "AP50": None, "AP50-95": None, "precision": None, "recall": None,
                                     "support": 0}
    assert with_fox.metrics == alone.metrics == {"val/precision": 1.0, "val/recall": 1.0,
                                                 "val/mAP50": pytest.approx(1.0), "val/mAP50-95": pytest.approx(1.0)}


def test_no_ground_truth_at_all_gives_zeros():
    result = detection_results([truth([], [])], [found([A], [0], [0.9])], CLASSES[:1])
    assert set(result.metrics.values()) == {0.0}
    assert rows(result)["cat"]["AP50"] is None


def test_the_matched_confusion_matrix_counts_hits_confusions_misses_and_false_positives():
    C = [40, 40, 50, 50]  # noqa: N806
    gt = [truth([[0, 0, 10, 10], [20, 20, 30, 30], C], [0, 1, 0]), truth([], []), truth([A], [1])]
    dt = [found([[0, 0, 10, 10], [20, 20, 30, 30], [60, 60, 70, 70], C], [0, 0, 1, 1], [0.9, 0.8, 0.7, 0.2]),
          found([A], [0], [0.5]), found([], [], [])]
    matrix = matched_confusion_matrix(gt, dt, 2)
    # rows truth (cat, dog, background), columns prediction: the first cat found; the dog taken for a cat;
    # the cat under a 0.2 detection (below 0.25) and the third image's dog missed; two detections on nothing
    assert matrix.tolist() == [[1, 0, 1],
                               [1, 0, 1],
                               [1, 1, 0]]
    assert matrix[:, :2].sum() == 4 and matrix[:2].sum() == 4  # detections above 0.25; objects


def test_the_most_confident_detection_claims_an_object_and_the_rest_are_false_positives():
    gt = [truth([A], [0])]
    dt = [found([[12, 10, 52, 50], A], [1, 0], [0.6, 0.9])]  # the exact box is the more confident
    assert matched_confusion_matrix(gt, dt, 2).tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 0]]


def test_the_matrix_takes_scores_above_0_25_and_overlaps_above_0_45_as_ultralytics_does():
    gt = [truth([[0, 0, 100, 100]], [0])]

    def matrix(box, score):
        return matched_confusion_matrix(gt, [found([box], [0], [score])], 1).tolist()

    assert matrix([0, 0, 100, 46], 0.9) == [[1, 0], [0, 0]]  # IoU 0.46
    assert matrix([0, 0, 100, 45], 0.9) == [[0, 1], [1, 0]]  # IoU 0.45: no match
    assert matrix([0, 0, 100, 100], 0.25) == [[0, 1], [0, 0]]  # not counted at all


# ---------------------------------------------------------------- precision-recall curves
#
# COCO's curve: the detections by score, precision and recall after each; at each recall point r the best
# precision at recall r or above, 0 past the highest recall reached.


def test_the_pr_curve_of_a_hit_a_false_positive_and_a_miss_is_known():
    """cat: two objects, a hit (0.9) then a false positive (0.8): recall 0.5 at precision 1, then 1/2; the
    second object never found: precision 1 up to recall 0.5, 0 above. dog: a false positive (0.95) above
    its one hit (0.7): precision 1/2 at every recall point. fox: no objects, no curve."""
    gt = [truth([A, B], [0, 0]), truth([A], [1])]
    dt = [found([A, FAR], [0, 0], [0.9, 0.8]), found([FAR, A, B], [1, 1, 2], [0.95, 0.7, 0.6])]
    result = detection_results(gt, dt, CLASSES)
    curve = result.curves["pr"]
    assert list(result.curves) == ["pr"] and curve["iou"] == 0.5
    assert len(curve["recall"]) == 101 and curve["recall"][:3] == [0.0, 0.01, 0.02] and curve["recall"][-1] == 1.0
    assert set(curve["per_class"]) == {"cat", "dog"}  # fox has no ground truth
    cat, dog = curve["per_class"]["cat"], curve["per_class"]["dog"]
    assert (cat[0], cat[50], cat[51], cat[100]) == (1.0, 1.0, 0.0, 0.0)  # recall 0, 0.5, 0.51, 1
    assert set(dog) == {0.5} and (dog[50], dog[100]) == (0.5, 0.5)
    assert curve["mean"][50] == pytest.approx(0.75) and curve["mean"][100] == pytest.approx(0.25)
    # the mean of a class's curve is its AP50, the mean curve's the mAP50
    assert np.mean(cat) == pytest.approx(rows(result)["cat"]["AP50"]) == pytest.approx(51 / 101)
    assert np.mean(curve["mean"]) == pytest.approx(result.metrics["val/mAP50"])


def test_a_false_positive_below_the_hit_leaves_precision_1_and_no_ground_truth_no_curve():
    result = detection_results([truth([A], [0])], [found([A, FAR], [0, 0], [0.9, 0.3])], CLASSES[:1])
    assert set(result.curves["pr"]["per_class"]["cat"]) == {1.0}
    assert detection_results([truth([], [])], [found([A], [0], [0.9])], CLASSES[:1]).curves is None


def test_masks_and_keypoints_have_their_own_curve_key():
    gt = [truth([[10, 10, 20, 20]], [0], masks=[_square(64, 10, 20, 10, 20)])]
    masks = detection_results(gt, [found([[10, 10, 20, 20]], [0], [0.9], masks=[_square(64, 10, 20, 10, 20)])],
                              CLASSES[:1], iou_type="segm")
    assert list(masks.curves) == ["mask_pr"] and set(masks.curves["mask_pr"]["mean"]) == {1.0}
    points = np.array([[[10, 10, 2], [20, 20, 2]]], dtype=float)
    pose = detection_results([truth([[0, 0, 50, 50]], [0], keypoints=points, area=[1000])],
                             [found([[0, 0, 50, 50]], [0], [0.9], keypoints=points[..., :2])], ["person"],
                             iou_type="keypoints")
    assert list(pose.curves) == ["pose_pr"] and set(pose.curves["pose_pr"]["per_class"]["person"]) == {1.0}


def _square(size: int, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def test_masks_are_scored_by_mask_overlap_as_arrays_or_rles():
    from pycocotools import mask as mask_utils

    whole, half = _square(64, 10, 20, 10, 20), _square(64, 10, 15, 10, 20)  # IoU 0.5
    gt = [truth([[10, 10, 20, 20]], [0], masks=[whole])]
    result = detection_results(gt, [found([[10, 10, 20, 20]], [0], [0.9], masks=[half])], CLASSES[:1], iou_type="segm")
    assert result.metrics == {"val/mask_precision": 1.0, "val/mask_recall": 1.0,
                              "val/mask_mAP50": pytest.approx(1.0), "val/mask_mAP50-95": pytest.approx(0.1)}
    rle = mask_utils.encode(np.asfortranarray(half))
    as_rle = detection_results(gt, [found([[10, 10, 20, 20]], [0], [0.9], masks=[rle])], CLASSES[:1], iou_type="segm")
    assert as_rle.metrics == result.metrics
    with pytest.raises(ValueError, match="needs the masks"):
        detection_results([truth([A], [0])], [found([A], [0], [0.9])], CLASSES[:1], iou_type="segm")


def test_keypoints_are_scored_by_oks_and_unlabelled_keypoints_do_not_count():
    points = np.array([[[10, 10, 2], [20, 20, 2], [30, 30, 2], [40, 40, 0]]], dtype=float)
    predicted = points[..., :2].copy()
    predicted[0, 3] = [90, 5]  # far off, but not labelled in the ground truth
    gt = [truth([[0, 0, 50, 50]], [0], keypoints=points, area=[1000])]
    perfect = detection_results(gt, [found([[0, 0, 50, 50]], [0], [0.9], keypoints=predicted)], ["person"],
                                iou_type="keypoints")
    assert perfect.metrics == {"val/pose_precision": 1.0, "val/pose_recall": 1.0,
                               "val/pose_mAP50": pytest.approx(1.0), "val/pose_mAP50-95": pytest.approx(1.0)}
    # Each labelled keypoint 10 px off (6, 8): with sigma 1/4 (4 keypoints) and area 1000,
    # e = d² / (2σ)² / area / 2 = 100 / 0.25 / 1000 / 2 = 0.2, OKS = exp(-0.2) = 0.819: a hit at 0.50 … 0.80
    shifted = predicted + [6, 8]
    result = detection_results(gt, [found([[0, 0, 50, 50]], [0], [0.9], keypoints=shifted)], ["person"],
                               iou_type="keypoints")
    assert math.exp(-0.2) == pytest.approx(0.8187, abs=1e-4)
    assert result.metrics["val/pose_mAP50-95"] == pytest.approx(0.7)


def test_keypoint_sigmas_are_cocos_for_17_points_else_uniform():
    assert keypoint_sigmas(17).tolist() == COCO_PERSON_SIGMAS.tolist()
    assert COCO_PERSON_SIGMAS[0] == pytest.approx(0.026)
    assert keypoint_sigmas(4).tolist() == [0.25] * 4
    assert keypoint_sigmas(2, [0.1, 0.2]).tolist() == [0.1, 0.2]
    with pytest.raises(ValueError, match="3 keypoint sigmas for 2 keypoints"):
        keypoint_sigmas(2, [0.1, 0.2, 0.3])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="1 images of ground truth but 2"):
        detection_results([truth([A], [0])], [found([], [], [])] * 2, CLASSES)
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 3\); found \[7\]"):
        detection_results([truth([A], [7])], [found([], [], [])], CLASSES)
    with pytest.raises(ValueError, match="2 scores for 1 detections"):
        detection_results([truth([A], [0])], [found([A], [0], [0.9, 0.8])], CLASSES)
    with pytest.raises(ValueError, match="Unknown iou_type 'obb'"):
        detection_results([truth([A], [0])], [found([A], [0], [0.9])], CLASSES, iou_type="obb")
