"""Super-resolution quality per image (numpy, host): PSNR of known errors, SSIM of known images, the worst
images first in the record. The torchmetrics route is checked against these in the transformers env
(``tests/adapters/transformers/test_hf_super_resolution.py``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adapters.evaluation.record import ValidationRecord
from adapters.evaluation.restoration import PSNR_CAP_DB, ImageQuality, image_quality, psnr, ssim

GREY = np.full((3, 16, 16), 0.5)


@pytest.mark.parametrize(("predicted", "expected"), [
    (GREY + 0.1, 20.0),  # MSE 0.01: 10 log10(1 / 0.01)
    (GREY + 0.01, 40.0),  # MSE 1e-4
    (np.where(np.arange(16) % 2, 0.7, 0.5) * np.ones((3, 16, 1)), 10 * math.log10(1 / 0.02)),  # half the pixels off by 0.2
    (GREY, PSNR_CAP_DB),  # equal: infinite, capped
    (GREY + 1e-9, PSNR_CAP_DB),  # 180 dB: capped too
])
def test_psnr_of_known_errors(predicted, expected):
    assert psnr(predicted, GREY) == pytest.approx(expected)


def test_psnr_takes_the_data_range_and_clamps_the_prediction_into_it():
    target = np.full((1, 4, 4), 100.0)
    assert psnr(target + 25.5, target, data_range=255.0) == pytest.approx(20.0)  # MSE 25.5² = (255 / 10)²
    assert psnr(np.full((3, 8, 8), 7.0), np.ones((3, 8, 8))) == PSNR_CAP_DB  # clamped to 1.0: equal


def test_ssim_of_equal_constant_and_structured_images():
    rng = np.random.default_rng(0)
    image = rng.random((3, 24, 24))
    assert ssim(image, image) == pytest.approx(1.0)
    # constant images: no variance, SSIM is the luminance term alone
    c1 = 0.01 ** 2
    assert ssim(GREY + 0.1, GREY) == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.5 ** 2 + 0.6 ** 2 + c1))
    # an image against its negative: the structure term is negative, SSIM well below 0
    assert ssim(1 - image, image) < -0.5
    # one channel (H x W) is the same as 1 x H x W; noise lowers SSIM, more noise more
    grey = image[0]
    noisy, noisier = (np.clip(grey + s * rng.standard_normal(grey.shape), 0, 1) for s in (0.05, 0.2))
    assert ssim(noisy, grey) == ssim(noisy[None], grey[None])
    assert 1.0 > ssim(noisy, grey) > ssim(noisier, grey) > 0.0


def test_an_image_against_a_target_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(3, 8, 8\) against a target of shape \(3, 8, 9\)"):
        psnr(np.zeros((3, 8, 8)), np.zeros((3, 8, 9)))


def test_image_quality_scores_each_image_of_a_batch():
    batch = np.stack([GREY + 0.1, GREY, GREY + 0.01])
    peak, similarity = image_quality(batch, np.stack([GREY] * 3))
    assert peak == pytest.approx([20.0, PSNR_CAP_DB, 40.0])
    assert similarity[1] == pytest.approx(1.0) and similarity[0] < similarity[2] < 1.0


def test_the_record_lists_every_image_worst_first_and_the_means_of_all():
    quality = ImageQuality()
    quality.update(np.stack([GREY + 0.01, GREY]), np.stack([GREY, GREY]), names=["a.png", "b.png"])
    quality.update((GREY + 0.1)[None], GREY[None], names=["c.png"])
    evaluation = quality.evaluation()
    assert evaluation.metrics == {"val/psnr": pytest.approx((40 + 100 + 20) / 3), "val/ssim": pytest.approx(
        np.mean(quality.ssim))}
    assert [row["image"] for row in evaluation.per_image] == ["c.png", "a.png", "b.png"]
    assert [row["psnr"] for row in evaluation.per_image] == pytest.approx([20.0, 40.0, 100.0])
    assert (evaluation.evaluator, evaluation.classes, evaluation.per_class, evaluation.confusion_matrix) == (
        "visionyard.restoration", [], [], None)
    data = json.loads(ValidationRecord.of(evaluation, task="super_resolution", epoch=1, step=2,
                                          source="training").to_json())
    assert data["confusion_matrix"] is None and data["per_image"][0] == {
        "image": "c.png", "psnr": pytest.approx(20.0), "ssim": pytest.approx(evaluation.per_image[0]["ssim"])}


def test_the_record_keeps_the_worst_images_up_to_its_limit_and_names_them_by_position_by_default():
    quality = ImageQuality()
    offsets = [0.05, 0.2, 0.01, 0.1]
    quality.update(np.stack([GREY + o for o in offsets]), np.stack([GREY] * 4))
    evaluation = quality.evaluation(limit=2)
    assert [row["image"] for row in evaluation.per_image] == ["#1", "#3"]  # 0.2, then 0.1 off
    assert evaluation.metrics["val/psnr"] == pytest.approx(np.mean([-20 * math.log10(o) for o in offsets]))
    named = quality.evaluation(names=["w", "x", "y", "z"])
    assert [row["image"] for row in named.per_image] == ["x", "z", "w", "y"]
    with pytest.raises(ValueError, match="3 names for 4 images"):
        quality.evaluation(names=["w", "x", "y"])
    assert ImageQuality().evaluation().metrics == {"val/psnr": 0.0, "val/ssim": 0.0}
