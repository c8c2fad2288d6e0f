"""Monocular depth: AbsRel, RMSE and δ1 against ground truth in metres, and the worst images named.

Over an image's valid pixels (ground truth > 0 and finite), with the prediction ``p`` clamped to at least
``MIN_DEPTH_M`` (as the standard evaluations clamp it: no division by or log of 0) and ground truth ``g``:

- AbsRel = mean(|p − g| / g);
- RMSE = sqrt(mean((p − g)²)), in metres;
- δ1 = the share of pixels with max(p / g, g / p) < 1.25.

``val/abs_rel``, ``val/rmse`` and ``val/delta1`` average them **per image** (``weighting="image"``, the
default): each image's metric over its own pixels, then the mean over images. That is what the NYU-Depth v2
and KITTI evaluations report (Eigen et al.'s protocol as monodepth2, BTS, AdaBins, ZoeDepth and Depth
Anything compute it: ``errors.append(compute_errors(gt, pred))`` per image, then ``mean(0)``), so the numbers
compare with published ones. ``weighting="pixel"`` pools every valid pixel of the set instead (an image with
more valid pixels weighs more). Neither crops (no Eigen crop) nor caps depths: the dataset's valid pixels
are the ones scored.

The prediction is metric depth in metres; a model of relative (inverse) depth is trained to metric depth
first (``adapters.transformers.tasks.depth``), so no median scaling happens here.

Host-importable: numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_ABS_REL, VAL_DELTA1, VAL_RMSE

EVALUATOR = "visionyard.depth"
#: A record lists this many images at most, the worst first (the metrics cover every image).
PER_IMAGE_LIMIT = 100
#: Predictions are clamped to at least this depth (metres) before scoring.
MIN_DEPTH_M = 1e-3
DELTA1_THRESHOLD = 1.25
WEIGHTINGS = ("image", "pixel")


@dataclass(frozen=True)
class ImageErrors:
    """One image's sums over its valid pixels, from which both weightings follow."""

    pixels: int
    abs_rel_sum: float
    squared_sum: float
    delta1_count: int

    @property
    def abs_rel(self) -> float:
        return self.abs_rel_sum / self.pixels

    @property
    def rmse(self) -> float:
        return float(np.sqrt(self.squared_sum / self.pixels))

    @property
    def delta1(self) -> float:
        return self.delta1_count / self.pixels


def image_errors(predicted, target) -> ImageErrors | None:
    """The sums of one image (``predicted`` and ``target`` depth maps in metres, the same shape); None when the
    target has no valid pixel."""
    predicted, target = np.asarray(predicted, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"a prediction of shape {predicted.shape} against a depth map of shape {target.shape}")
    valid = np.isfinite(target) & (target > 0)
    pixels = int(np.count_nonzero(valid))
    if not pixels:
        return None
    g = target[valid]
    p = np.nan_to_num(predicted[valid], nan=MIN_DEPTH_M, posinf=np.finfo(np.float64).max)
    p = np.maximum(p, MIN_DEPTH_M)
    ratio = np.maximum(p / g, g / p)
    return ImageErrors(pixels, float(np.sum(np.abs(p - g) / g)), float(np.sum((p - g) ** 2)),
                       int(np.count_nonzero(ratio < DELTA1_THRESHOLD)))


def depth_metrics(errors: Sequence[ImageErrors], weighting: str = "image") -> dict[str, float]:
    """``val/abs_rel``, ``val/rmse`` and ``val/delta1`` of images' errors, averaged per image or pooled over
    pixels (see the module); 0.0 each with no image."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"Unknown weighting '{weighting}'. Valid: {', '.join(WEIGHTINGS)}")
    if not errors:
        return {VAL_ABS_REL: 0.0, VAL_RMSE: 0.0, VAL_DELTA1: 0.0}
    if weighting == "image":
        return {VAL_ABS_REL: float(np.mean([e.abs_rel for e in errors])),
                VAL_RMSE: float(np.mean([e.rmse for e in errors])),
                VAL_DELTA1: float(np.mean([e.delta1 for e in errors]))}
    pixels = sum(e.pixels for e in errors)
    return {VAL_ABS_REL: sum(e.abs_rel_sum for e in errors) / pixels,
            VAL_RMSE: float(np.sqrt(sum(e.squared_sum for e in errors) / pixels)),
            VAL_DELTA1: sum(e.delta1_count for e in errors) / pixels}


class DepthErrors:
    """Each image's errors, added image by image (or batch by batch); ``metrics`` and ``evaluation`` at the end.
    An image without a valid pixel is counted in ``skipped`` and scored nowhere."""

    def __init__(self, weighting: str = "image") -> None:
        if weighting not in WEIGHTINGS:
            raise ValueError(f"Unknown weighting '{weighting}'. Valid: {', '.join(WEIGHTINGS)}")
        self.weighting = weighting
        self.images: list[str] = []
        self.errors: list[ImageErrors] = []
        self.skipped: list[str] = []
        self._positions: list[int] = []  # each scored image's position among those seen
        self._seen = 0

    def update(self, predicted, target, name: str | None = None) -> None:
        """Score one image (H x W depth maps in metres); ``name`` defaults to its position (``#i``)."""
        name = f"#{self._seen}" if name is None else name
        position, self._seen = self._seen, self._seen + 1
        errors = image_errors(predicted, target)
        if errors is None:
            self.skipped.append(name)
            return
        self.images.append(name)
        self.errors.append(errors)
        self._positions.append(position)

    @property
    def count(self) -> int:
        """The images seen, scored or skipped."""
        return self._seen

    def metrics(self) -> dict[str, float]:
        return depth_metrics(self.errors, self.weighting)

    def evaluation(self, limit: int = PER_IMAGE_LIMIT, names: Sequence[str] | None = None) -> Evaluation:
        """The metrics, and ``per_image`` rows ``{"image", "abs_rel", "rmse", "delta1", "pixels"}``: the ``limit``
        worst images, the highest AbsRel first (then the order seen). No classes, no confusion matrix.
        ``names``: every image's name in the order scored (images without a valid pixel included), in place
        of those given to ``update``."""
        scored = self.images
        if names is not None:
            if len(names) != self._seen:
                raise ValueError(f"{len(names)} names for {self._seen} images")
            scored = [names[position] for position in self._positions]
        rows = sorted(range(len(scored)), key=lambda i: (-self.errors[i].abs_rel, i))[:limit]
        per_image: list[dict[str, Any]] = [
            {"image": scored[i], "abs_rel": self.errors[i].abs_rel, "rmse": self.errors[i].rmse,
             "delta1": self.errors[i].delta1, "pixels": self.errors[i].pixels} for i in rows]
        return Evaluation(evaluator=EVALUATOR, classes=[], metrics=self.metrics(), per_class=[], per_image=per_image)


def depth_results(predicted: Sequence, targets: Sequence, images: Sequence[str], weighting: str = "image",
                  limit: int = PER_IMAGE_LIMIT) -> Evaluation:
    """The ``Evaluation`` of predicted depth maps against their targets (metres), named by ``images``."""
    if not len(predicted) == len(targets) == len(images):
        raise ValueError(f"{len(predicted)} predictions, {len(targets)} depth maps and {len(images)} images")
    scorer = DepthErrors(weighting)
    for p, t, name in zip(predicted, targets, images, strict=True):
        scorer.update(p, t, name)
    return scorer.evaluation(limit)
