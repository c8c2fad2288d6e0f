"""The Ultralytics adapter's predict path, apart from training: images read as Ultralytics' own loader
reads them, its ``Results`` turned into the task-generic prediction shape, an annotated image as PNG."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any


def load_images(paths: list[str | Path]) -> list:
    """Each image as Ultralytics' own loader reads a file of a folder: its ``imread`` (BGR, turned as
    its EXIF orientation says), 8 or more decoded in threads as its loader decodes a batch; a file
    OpenCV does not read is opened by Pillow (whose error names what is wrong with it)."""
    import numpy as np
    from ultralytics.utils import NUM_THREADS
    from ultralytics.utils.patches import imread

    def read(path):
        image = imread(str(path))
        return image if image is not None else np.ascontiguousarray(np.asarray(open_upright(path))[..., ::-1])

    if len(paths) < 8 or NUM_THREADS < 2:
        return [read(path) for path in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(len(paths), NUM_THREADS)) as pool:
        return list(pool.map(read, paths))


def open_upright(path: str | Path):
    """The image as RGB, turned as its EXIF orientation says, as Ultralytics would turn it: its size is
    then the size Ultralytics sees."""
    from PIL import ImageOps

    from adapters.datasets import ImageRecord, open_image

    image = open_image(ImageRecord(str(path)))
    ImageOps.exif_transpose(image, in_place=True)
    return image


def predictions_of(result, task: str, top_k: int) -> list[dict[str, Any]]:
    names = result.names
    if task == "image_classification":
        probs = result.probs.data.float().cpu()
        scores, indices = probs.topk(min(top_k, probs.numel()))
        return [{"label": names[int(i)], "score": float(p), "index": int(i)}
                for p, i in zip(scores.tolist(), indices.tolist(), strict=True)]
    if task == "obb_detection":
        obb = result.obb
        return [{"label": names[int(c)], "score": float(p), "index": int(c), "box": [float(v) for v in box],
                 "rotated_box": [float(v) for v in rbox]}
                for c, p, box, rbox in zip(obb.cls.tolist(), obb.conf.tolist(), obb.xyxy.tolist(),
                                           obb.xywhr.tolist(), strict=True)]
    boxes = result.boxes
    out = [{"label": names[int(c)], "score": float(p), "index": int(c), "box": [float(v) for v in box]}
           for c, p, box in zip(boxes.cls.tolist(), boxes.conf.tolist(), boxes.xyxy.tolist(), strict=True)]
    if task == "instance_segmentation" and result.masks is not None:
        for item, polygon in zip(out, result.masks.xy, strict=True):
            item["polygon"] = [[float(x), float(y)] for x, y in polygon.tolist()]
    if task == "pose_estimation" and result.keypoints is not None:
        for item, points in zip(out, result.keypoints.data.tolist(), strict=True):
            item["keypoints"] = [[float(v) for v in point] + [1.0] * (3 - len(point)) for point in points]
    return out


def png_bytes(rgb) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb.copy()).save(buffer, format="PNG")
    return buffer.getvalue()
