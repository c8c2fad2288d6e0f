"""Helpers the task modules share: processors with the job's image size, flips, tensors, batched predict."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any


def image_processor(source: str, image_size: int | None):
    """``AutoImageProcessor`` of ``source``, resized to ``image_size`` when it takes height/width."""
    from transformers import AutoImageProcessor

    processor = AutoImageProcessor.from_pretrained(source)
    size = getattr(processor, "size", None)
    if image_size and size is not None and "height" in size and "width" in size:  # a dict or SizeDict
        processor.size = {"height": int(image_size), "width": int(image_size)}
    return processor


def pixel_values(processor, image) -> Any:
    return processor(images=image, return_tensors="pt")["pixel_values"][0]


def flip_image(image, p: float = 0.5):
    """A horizontal flip with probability ``p`` (PIL image)."""
    from PIL import Image

    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random.random() < p else image


def per_image_inputs(processor, images, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The processor's tensors for each image alone (``keys`` only, when given), a batch of one each.

    One call per image, as HF pipelines preprocess a ``batch_size`` batch: a processor given several
    images pads them to the largest (DETR, Mask2Former), and a padded input gives other outputs."""
    out = []
    for image in images:
        encoded = processor(images=[image], return_tensors="pt")
        out.append({k: v for k, v in encoded.items() if hasattr(v, "shape") and (keys is None or k in keys)})
    return out


def in_shape_groups(inputs: list[dict[str, Any]], device, run: Callable[[dict[str, Any], list[int]], list]) -> list:
    """One result per input, in order: ``run(batch, members)`` once per group of inputs whose tensors
    have the same shapes, ``batch`` being theirs concatenated on ``device`` and ``members`` their indices,
    under ``torch.inference_mode``.

    Each image's input in a batch is then exactly its input alone, so a batch gives every image the
    result that predicting it alone gives (up to float rounding). Processors that resize to one size
    (ViT, RT-DETR, SegFormer, TrOCR) make one group of any images.
    """
    import torch

    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(inputs):
        groups.setdefault(tuple((key, tuple(value.shape)) for key, value in item.items()), []).append(i)
    results: list = [None] * len(inputs)
    with torch.inference_mode():
        for members in groups.values():
            batch = {key: torch.cat([inputs[i][key] for i in members]).to(device) for key in inputs[members[0]]}
            for i, result in zip(members, run(batch, members), strict=True):
                results[i] = result
    return results
