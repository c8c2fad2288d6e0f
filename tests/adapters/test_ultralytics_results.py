"""Per-class rows of an Ultralytics validation record, from its metrics objects (host side: no Ultralytics)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from adapters.ultralytics.results import detection_rows, match_images, pr_curves


def metric(classes, p, r, all_ap):
    """An Ultralytics ``Metric`` as its validator leaves it: values for the classes with objects only."""
    return SimpleNamespace(ap_class_index=np.array(classes), p=np.array(p), r=np.array(r),
                           ap50=np.array(all_ap)[:, 0], ap=np.array(all_ap).mean(1))


def test_a_class_without_objects_has_no_ap_and_the_twins_follow_the_box_keys():
    box = metric([0, 2], [0.5, 1.0], [0.25, 0.75], [[0.8] * 5 + [0.4] * 5, [0.6] * 10])
    mask = metric([0, 2], [0.4, 0.9], [0.2, 0.7], [[0.7] * 10, [float("nan")] * 10])
    metrics = SimpleNamespace(box=box, seg=mask, nt_per_class=np.array([3, 0, 5]))
    rows = detection_rows(metrics, ["cat", "dog", "owl"], "instance_segmentation")
    assert rows[0] == pytest.approx({"class": "cat", "AP50": 0.8, "AP50-95": 0.6, "precision": 0.5, "recall": 0.25,
                                     "mask_AP50": 0.7, "mask_AP50-95": 0.7, "mask_precision": 0.4, "mask_recall": 0.2,
                                     "support": 3})
    assert rows[1] == {"class": "dog", "AP50": None, "AP50-95": None, "precision": None, "recall": None,
                       "mask_AP50": None, "mask_AP50-95": None, "mask_precision": None, "mask_recall": None,
                       "support": 0}
    assert rows[2]["mask_AP50-95"] is None  # NaN: null
    assert rows[2]["AP50-95"] == pytest.approx(0.6) and rows[2]["support"] == 5
    pose = detection_rows(SimpleNamespace(box=box, pose=mask, nt_per_class=np.array([3, 0, 5])), ["a", "b", "c"],
                          "pose_estimation")
    assert list(pose[0]) == ["class", "AP50", "AP50-95", "precision", "recall", "pose_AP50", "pose_AP50-95",
                             "pose_precision", "pose_recall", "support"]


def test_matching_counts_each_object_once_in_its_row():
    """Image 1: two cats; a dog detected on the first (0.9), a cat on it too (0.8: it is taken), a cat on the
    second at 0.2 (too weak). Image 2: no objects, an owl detected (0.7)."""
    matrix = np.zeros((4, 4), dtype=np.int64)
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    found = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [5, 5, 9, 9]], dtype=np.float32)
    match_images(matrix, truth, np.array([0, 0]), [2, 0], found, np.array([0.9, 0.8, 0.2, 0.7]),
                 np.array([1, 0, 0, 2]), [3, 1])
    #                   predicted: cat dog owl background
    assert matrix.tolist() == [[0, 1, 0, 1],   # cat: one taken for a dog, one missed
                               [0, 0, 0, 0],   # dog
                               [0, 0, 0, 0],   # owl
                               [1, 0, 1, 0]]   # background: the second cat detection, the owl


def curve_part(classes, rows):
    """A ``Metric`` with Ultralytics' PR curve: ``prec_values`` a row per class of ``ap_class_index`` over ``px``."""
    return SimpleNamespace(ap_class_index=np.array(classes), px=np.linspace(0, 1, 1000), prec_values=np.array(rows))


def test_pr_curves_are_ultralytics_own_resampled_at_the_101_recall_points():
    px = np.linspace(0, 1, 1000)
    box = curve_part([0, 2], [1 - px, np.where(px <= 0.5, 1.0, 0.0)])  # dog (1) has no objects
    mask = curve_part([0, 2], [np.full(1000, 0.8), np.full(1000, 0.4)])
    curves = pr_curves(SimpleNamespace(box=box, seg=mask), ["cat", "dog", "owl"], "instance_segmentation")
    assert list(curves) == ["pr", "mask_pr"]
    pr = curves["pr"]
    assert len(pr["recall"]) == 101 and set(pr["per_class"]) == {"cat", "owl"}
    cat, owl = pr["per_class"]["cat"], pr["per_class"]["owl"]
    assert (cat[0], cat[25], cat[50], cat[100]) == pytest.approx((1.0, 0.75, 0.5, 0.0), abs=1e-3)
    assert (owl[0], owl[49], owl[51], owl[100]) == (1.0, 1.0, 0.0, 0.0)  # a step between the points: linear
    assert pr["mean"][25] == pytest.approx((0.75 + 1.0) / 2, abs=1e-3)
    assert curves["mask_pr"]["mean"] == [pytest.approx(0.6)] * 101
    assert pr_curves(SimpleNamespace(box=box), ["cat", "dog", "owl"], "image_classification") is None


def test_rows_that_do_not_line_up_with_the_classes_give_the_mean_only():
    """An Ultralytics that keeps a row only for the classes it detected: the other class found nothing (0)."""
    box = curve_part([0, 1], [np.full(1000, 0.8)])
    curve = pr_curves(SimpleNamespace(box=box), ["cat", "dog"], "object_detection")["pr"]
    assert "per_class" not in curve and curve["mean"] == [pytest.approx(0.4)] * 101
    old = SimpleNamespace(ap_class_index=np.array([0]), p=np.array([1.0]))  # no curves at all
    assert pr_curves(SimpleNamespace(box=old), ["cat"], "object_detection") is None
