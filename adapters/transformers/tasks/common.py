"""Helpers the task modules share: processors with the job's image size, flips, tensors."""

from __future__ import annotations

import random
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
