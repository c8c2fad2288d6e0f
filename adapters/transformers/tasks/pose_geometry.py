"""Top-down pose geometry, without torch at the top: boxes, heatmap sizes and targets, the heatmap loss, flips,
a person's score and its picture. ``pose`` (the task) documents the geometry these follow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The Gaussian targets' σ, in heatmap pixels (ViTPose's, for 64 x 48 heatmaps).
HEATMAP_SIGMA = 2.0
#: A person's score is the mean confidence of its keypoints above this (0 when none is).
KEYPOINT_SCORE_ABOVE = 0.2
#: Boxes one image may be given at most (each is a crop through the model).
MAX_BOXES = 100


def check_boxes(boxes, width: int, height: int) -> None:
    """ValueError naming ``boxes`` unless each is [x1, y1, x2, y2] with x2 > x1 and y2 > y1 inside a ``width`` x
    ``height`` image, at most ``MAX_BOXES`` of them."""
    if len(boxes) > MAX_BOXES:
        raise ValueError(f"boxes: {len(boxes)} boxes for one image; at most {MAX_BOXES}")
    for box in boxes:
        if len(box) != 4 or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"boxes: {list(box)} is not a box [x1, y1, x2, y2] with x2 > x1 and y2 > y1")
        if box[0] < 0 or box[1] < 0 or box[2] > width or box[3] > height:
            raise ValueError(f"boxes: {list(box)} reaches outside the {width}x{height} image (x1, y1, x2, y2 in its "
                             f"pixels, within 0..{width} and 0..{height})")


def input_size(config) -> tuple[int, int]:
    """(height, width) of the model's input: its backbone's ``image_size``."""
    size = config.backbone_config.image_size
    height, width = (size, size) if isinstance(size, int) else size
    return int(height), int(width)


def heatmap_size(config) -> tuple[int, int]:
    """(height, width) of the model's heatmaps: the patch grid upsampled 4 times (the simple decoder's
    ``scale_factor``; the classic decoder's two stride-2 deconvolutions)."""
    height, width = input_size(config)
    patch = config.backbone_config.patch_size
    patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
    factor = int(config.scale_factor) if config.use_simple_decoder else 4
    return height // patch_h * factor, width // patch_w * factor


def xywh(box) -> list[float]:
    """x1 y1 x2 y2 → COCO's x y w h (what the processor takes)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def heatmap_targets(points, center, scale, size: tuple[int, int], count: int,
                    sigma: float = HEATMAP_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian targets (count x h x w, float32) and weights (count, float32) of one person's keypoints (K x 3 in
    the image's pixels, or None) in the heatmaps of the crop at ``center``/``scale`` (see the module: the region's
    edges on the heatmap's first and last pixel). Weight 0: not labelled, or the Gaussian lies outside the heatmap."""
    height, width = size
    target = np.zeros((count, height, width), dtype=np.float32)
    weight = np.zeros(count, dtype=np.float32)
    if points is None:
        return target, weight
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) != count:
        raise ValueError(f"a person has {len(points)} keypoints but the model predicts {count}")
    span = np.asarray(scale, dtype=np.float64) * 200.0
    rows, cols = np.arange(height, dtype=np.float64)[:, None], np.arange(width, dtype=np.float64)[None, :]
    reach = 3 * sigma
    for k, (x, y, v) in enumerate(points):
        if v <= 0:
            continue
        hx = (x - center[0] + span[0] / 2) * (width - 1) / span[0]
        hy = (y - center[1] + span[1] / 2) * (height - 1) / span[1]
        if not (-reach <= hx <= width - 1 + reach and -reach <= hy <= height - 1 + reach):
            continue
        target[k] = np.exp(-((cols - hx) ** 2 + (rows - hy) ** 2) / (2 * sigma ** 2))
        weight[k] = 1.0
    return target, weight


def heatmap_loss(predicted, target, weight):
    """The mean over batch, keypoints and pixels of ``weight * (predicted - target)²`` (mmpose's JointsMSELoss):
    a keypoint of weight 0 adds nothing."""
    return ((predicted.float() - target.float()) ** 2 * weight.float()[..., None, None]).mean()


def flip_box(box, width: int) -> tuple[float, float, float, float]:
    """A box mirrored in an image ``width`` pixels wide (pixel ``i`` to ``width - 1 - i``, as the keypoints)."""
    x1, y1, x2, y2 = box
    return width - 1 - x2, y1, width - 1 - x1, y2


def flip_keypoints(points, width: int, pairs) -> np.ndarray | None:
    """K x 3 keypoints mirrored in an image ``width`` pixels wide, left and right swapped (``pairs``)."""
    if points is None:
        return None
    flipped = np.array(points, dtype=np.float64)
    flipped[:, 0] = width - 1 - flipped[:, 0]
    for left, right in pairs:
        flipped[[left, right]] = flipped[[right, left]]
    return flipped


def person_score(points: np.ndarray) -> float:
    """The mean confidence of the keypoints above ``KEYPOINT_SCORE_ABOVE`` (0 when none is)."""
    confident = points[:, 2][points[:, 2] > KEYPOINT_SCORE_ABOVE]
    return float(confident.mean()) if len(confident) else 0.0


def draw_people(image, predictions: list[dict[str, Any]]) -> bytes:
    """The image with each person's box and its keypoints of confidence above ``KEYPOINT_SCORE_ABOVE``, as PNG."""
    import io

    from PIL import ImageDraw

    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    radius = max(2, round(min(canvas.size) / 150))
    for prediction in predictions:
        draw.rectangle(prediction["box"], outline=(0, 130, 200), width=2)
        for x, y, confidence in prediction["keypoints"]:
            if confidence > KEYPOINT_SCORE_ABOVE:
                draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(230, 25, 75))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
