"""Depth metrics on hand-made cases with known answers: AbsRel, RMSE and δ1 over valid pixels, per-image (the
NYU/KITTI protocol) and pixel-pooled averaging, the prediction clamp, and the worst images first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.evaluation.depth import (EVALUATOR, MIN_DEPTH_M, DepthErrors, depth_metrics, depth_results,
                                       image_errors)
from adapters.evaluation.record import ValidationRecord
from adapters.metrics import PRIMARY_METRICS, VAL_ABS_REL, VAL_DELTA1, VAL_RMSE

#: Image A: ground truth 1, 2, 4 m and one invalid pixel (0, whatever is predicted there); predicted 1.5, 2, 4.
A_TRUTH, A_PREDICTED = np.array([[1.0, 2.0], [4.0, 0.0]]), np.array([[1.5, 2.0], [4.0, 9.0]])
#: Image B: ground truth 2, 2 m; predicted 1 and 4 (both a factor of 2 off).
B_TRUTH, B_PREDICTED = np.array([[2.0, 2.0]]), np.array([[1.0, 4.0]])


def test_one_image_over_its_valid_pixels():
    errors = image_errors(A_PREDICTED, A_TRUTH)
    assert errors.pixels == 3  # the 0 is no measurement: its prediction (9 m) counts nowhere
    assert errors.abs_rel == pytest.approx((0.5 / 1 + 0 + 0) / 3)
    assert errors.rmse == pytest.approx(math.sqrt(0.5 ** 2 / 3))
    assert errors.delta1 == pytest.approx(2 / 3)  # 1.5 is off by a ratio of 1.5 (not < 1.25)


def test_per_image_averaging_is_the_default_and_pixel_pooling_weighs_pixels():
    scorer = DepthErrors()
    scorer.update(A_PREDICTED, A_TRUTH)
    scorer.update(B_PREDICTED, B_TRUTH)
    b_abs_rel, b_rmse = (1 / 2 + 2 / 2) / 2, math.sqrt((1 + 4) / 2)
    assert scorer.metrics() == {VAL_ABS_REL: pytest.approx((1 / 6 + b_abs_rel) / 2),
                                VAL_RMSE: pytest.approx((math.sqrt(0.25 / 3) + b_rmse) / 2),
                                VAL_DELTA1: pytest.approx((2 / 3 + 0) / 2)}
    assert depth_metrics(scorer.errors, "pixel") == {VAL_ABS_REL: pytest.approx((0.5 + 0.5 + 1.0) / 5),
                                                     VAL_RMSE: pytest.approx(math.sqrt((0.25 + 1 + 4) / 5)),
                                                     VAL_DELTA1: pytest.approx(2 / 5)}
    with pytest.raises(ValueError, match="weighting"):
        depth_metrics(scorer.errors, "images")


def test_perfect_predictions_and_the_delta1_threshold():
    truth = np.array([[1.0, 2.0, 3.0, 4.0]])
    assert image_errors(truth, truth) == image_errors(truth.copy(), truth)
    perfect = image_errors(truth, truth)
    assert (perfect.abs_rel, perfect.rmse, perfect.delta1) == (0.0, 0.0, 1.0)
    # ratio 1.25 exactly is not < 1.25; just under is; under-prediction by 1 / 1.25 the same
    edge = image_errors(np.array([[1.25, 1.2499, 0.8, 0.8001]]), np.ones((1, 4)))
    assert edge.delta1 == pytest.approx(2 / 4)


def test_predictions_are_clamped_and_bad_values_count_as_the_clamp():
    truth = np.ones((1, 4))
    errors = image_errors(np.array([[0.0, -3.0, np.nan, MIN_DEPTH_M]]), truth)
    assert errors.abs_rel == pytest.approx(1 - MIN_DEPTH_M)
    assert errors.rmse == pytest.approx(1 - MIN_DEPTH_M)
    assert errors.delta1 == 0.0


def test_images_without_a_valid_pixel_are_skipped_and_shapes_must_agree():
    scorer = DepthErrors()
    scorer.update(np.ones((2, 2)), np.zeros((2, 2)), "empty.png")
    scorer.update(np.ones((2, 2)), np.full((2, 2), np.nan), "nan.png")
    assert scorer.skipped == ["empty.png", "nan.png"] and scorer.count == 2
    assert scorer.metrics() == {VAL_ABS_REL: 0.0, VAL_RMSE: 0.0, VAL_DELTA1: 0.0}
    with pytest.raises(ValueError, match="shape"):
        image_errors(np.ones((2, 3)), np.ones((3, 2)))


def test_the_evaluation_lists_the_worst_images_first():
    evaluation = depth_results([A_PREDICTED, np.zeros((1, 1)), B_PREDICTED, B_TRUTH],
                               [A_TRUTH, np.zeros((1, 1)), B_TRUTH, B_TRUTH], ["a.png", "none.png", "b.png", "c.png"])
    assert (evaluation.evaluator, evaluation.classes, evaluation.per_class) == (EVALUATOR, [], [])
    assert evaluation.confusion_matrix is None
    assert [row["image"] for row in evaluation.per_image] == ["b.png", "a.png", "c.png"]  # none.png: no valid pixel
    assert evaluation.per_image[0] == {"image": "b.png", "abs_rel": 0.75, "rmse": pytest.approx(math.sqrt(2.5)),
                                       "delta1": 0.0, "pixels": 2}
    assert evaluation.metrics[VAL_ABS_REL] == pytest.approx((1 / 6 + 0.75 + 0) / 3)
    assert [row["image"] for row in depth_results([B_PREDICTED, A_PREDICTED], [B_TRUTH, A_TRUTH], ["b", "a"],
                                                  limit=1).per_image] == ["b"]
    record = ValidationRecord.of(evaluation, task="depth_estimation", epoch=1, step=2, source="training").to_dict()
    assert record["per_image"][0]["image"] == "b.png" and record["metrics"][VAL_DELTA1] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_names_given_at_the_end_replace_positions_skipped_images_included():
    scorer = DepthErrors()
    for predicted, truth in ((A_PREDICTED, A_TRUTH), (np.ones((1, 1)), np.zeros((1, 1))), (B_PREDICTED, B_TRUTH)):
        scorer.update(predicted, truth)
    named = scorer.evaluation(names=["val/a.png", "val/none.png", "val/b.png"])
    assert [row["image"] for row in named.per_image] == ["val/b.png", "val/a.png"]
    assert [row["image"] for row in scorer.evaluation().per_image] == ["#2", "#0"]
    with pytest.raises(ValueError, match="3 images"):
        scorer.evaluation(names=["one"])


def test_matches_the_per_image_compute_errors_of_the_standard_evaluations():
    """monodepth2 / BTS style: each image's errors over its valid pixels, then the mean over images."""
    rng = np.random.default_rng(0)
    truths = [rng.uniform(0.5, 10, (12, 16)) * (rng.random((12, 16)) > 0.2) for _ in range(5)]
    predictions = [t * rng.uniform(0.7, 1.4, t.shape) + 0.05 for t in truths]
    rows = []
    for p, g in zip(predictions, truths):
        p, g = p[g > 0], g[g > 0]
        thresh = np.maximum(g / p, p / g)
        rows.append([np.mean(np.abs(g - p) / g), np.sqrt(np.mean((g - p) ** 2)), (thresh < 1.25).mean()])
    expected = np.array(rows).mean(0)
    metrics = depth_results(predictions, truths, [f"{i}" for i in range(5)]).metrics
    assert [metrics[VAL_ABS_REL], metrics[VAL_RMSE], metrics[VAL_DELTA1]] == pytest.approx(expected.tolist())


def test_abs_rel_is_the_task_primary_metric_lower_is_better():
    primary = PRIMARY_METRICS["depth_estimation"]
    assert primary.name == VAL_ABS_REL and not primary.higher_is_better
