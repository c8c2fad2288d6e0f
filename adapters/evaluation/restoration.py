"""Image restoration (super-resolution) quality per image: PSNR and SSIM, and the worst images named.

The definitions are torchmetrics' (``PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3))`` and
``StructuralSimilarityIndexMeasure(data_range=1.0)``), on C x H x W images in [0, ``data_range``]
(a prediction is clamped into that range first, as saving it as an image would):

- PSNR = 10 log10(data_range² / MSE), the MSE over every pixel and channel; an image equal to its
  target has an infinite PSNR, counted as ``PSNR_CAP_DB``;
- SSIM with an 11 px Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, each image reflected 5 px
  at its border, the SSIM map averaged over every pixel and channel.

``val/psnr`` and ``val/ssim`` are the means over images. ``image_quality`` scores a batch with
torchmetrics where the env has it (imported on first use) and with the numpy functions here
otherwise; both follow the same definitions.

Host-importable: numpy only at import.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_PSNR, VAL_SSIM

EVALUATOR = "visionyard.restoration"
#: What a perfect reconstruction scores (its PSNR is infinite).
PSNR_CAP_DB = 100.0
#: A record lists this many images at most, the worst first (the metrics cover every image).
PER_IMAGE_LIMIT = 100
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


def psnr(predicted, target, data_range: float = 1.0) -> float:
    """PSNR (dB) of one image against its target, capped at ``PSNR_CAP_DB``."""
    predicted, target = _pair(predicted, target, data_range)
    mse = float(np.mean((predicted - target) ** 2))
    return min(PSNR_CAP_DB, 10 * math.log10(data_range ** 2 / mse)) if mse > 0 else PSNR_CAP_DB


def ssim(predicted, target, data_range: float = 1.0) -> float:
    """SSIM of one image (C x H x W, or H x W) against its target."""
    predicted, target = _pair(predicted, target, data_range)
    window = _gaussian(SSIM_SIGMA)
    pad = len(window) // 2

    def blur(image: np.ndarray) -> np.ndarray:  # the Gaussian mean around each pixel, reflected at the border
        padded = np.pad(image, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
        rows = np.lib.stride_tricks.sliding_window_view(padded, len(window), axis=2) @ window
        return np.lib.stride_tricks.sliding_window_view(rows, len(window), axis=1) @ window

    mu_p, mu_t = blur(predicted), blur(target)
    var_p = np.clip(blur(predicted * predicted) - mu_p ** 2, 0, None)
    var_t = np.clip(blur(target * target) - mu_t ** 2, 0, None)
    covariance = blur(predicted * target) - mu_p * mu_t
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    similarity = ((2 * mu_p * mu_t + c1) * (2 * covariance + c2)) / ((mu_p ** 2 + mu_t ** 2 + c1) * (var_p + var_t + c2))
    return float(similarity.mean())


def image_quality(predicted, target, data_range: float = 1.0) -> tuple[list[float], list[float]]:
    """(PSNR, SSIM) of each image of a batch (B x C x H x W, torch tensors or arrays)."""
    if hasattr(predicted, "detach"):
        try:
            from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
        except ImportError:
            predicted, target = predicted.detach().float().cpu().numpy(), target.detach().float().cpu().numpy()
        else:
            predicted = predicted.detach().float().clamp(0, data_range).cpu()
            target = target.detach().float().cpu()
            peak = peak_signal_noise_ratio(predicted, target, data_range=data_range, dim=(1, 2, 3), reduction="none")
            similarity = structural_similarity_index_measure(predicted, target, data_range=data_range,
                                                             reduction="none")
            return ([min(PSNR_CAP_DB, float(v)) for v in peak.reshape(-1)],
                    [float(v) for v in similarity.reshape(-1)])
    pairs = list(zip(np.asarray(predicted), np.asarray(target), strict=True))
    return [psnr(p, t, data_range) for p, t in pairs], [ssim(p, t, data_range) for p, t in pairs]


class ImageQuality:
    """PSNR and SSIM of each image, added batch by batch; ``metrics`` and ``evaluation`` at the end."""

    def __init__(self, data_range: float = 1.0) -> None:
        self.data_range = data_range
        self.images: list[str] = []
        self.psnr: list[float] = []
        self.ssim: list[float] = []

    def update(self, predicted, target, names: list[str] | None = None) -> None:
        """Score a batch of same-size images (B x C x H x W) named ``names`` (default: their positions, ``#i``)."""
        peak, similarity = image_quality(predicted, target, self.data_range)
        if names is None:
            names = [f"#{i}" for i in range(len(self.images), len(self.images) + len(peak))]
        if not len(names) == len(peak):
            raise ValueError(f"{len(names)} names for {len(peak)} images")
        self.images += list(names)
        self.psnr += peak
        self.ssim += similarity

    def metrics(self) -> dict[str, float]:
        """``val/psnr`` and ``val/ssim``: the means over every image (0.0 with none)."""
        return {VAL_PSNR: float(np.mean(self.psnr)) if self.psnr else 0.0,
                VAL_SSIM: float(np.mean(self.ssim)) if self.ssim else 0.0}

    def evaluation(self, limit: int = PER_IMAGE_LIMIT, names: list[str] | None = None) -> Evaluation:
        """The metrics, and ``per_image`` rows ``{"image", "psnr", "ssim"}``: the ``limit`` worst images, the
        lowest PSNR first (then the lowest SSIM, then the order seen). No classes, no confusion matrix.
        ``names``: every image's name in the order scored, in place of those given to ``update``."""
        names = self.images if names is None else list(names)
        if len(names) != len(self.images):
            raise ValueError(f"{len(names)} names for {len(self.images)} images")
        order = sorted(range(len(names)), key=lambda i: (self.psnr[i], self.ssim[i], i))[:limit]
        per_image: list[dict[str, Any]] = [{"image": names[i], "psnr": self.psnr[i], "ssim": self.ssim[i]}
                                           for i in order]
        return Evaluation(evaluator=EVALUATOR, classes=[], metrics=self.metrics(), per_class=[], per_image=per_image)


def _pair(predicted, target, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 C x H x W, the prediction clamped to [0, data_range]."""
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), 0, data_range)
    target = np.asarray(target, dtype=np.float64)
    if predicted.shape != target.shape:
        raise ValueError(f"an image of shape {predicted.shape} against a target of shape {target.shape}")
    return (predicted[None], target[None]) if predicted.ndim == 2 else (predicted, target)


def _gaussian(sigma: float) -> np.ndarray:
    """torchmetrics' 1-D Gaussian window: ``int(3.5 sigma + 0.5) * 2 + 1`` taps (11 for 1.5), summing to 1."""
    size = int(3.5 * sigma + 0.5) * 2 + 1
    distance = np.arange((1 - size) / 2, (1 + size) / 2)
    window = np.exp(-((distance / sigma) ** 2) / 2)
    return window / window.sum()
