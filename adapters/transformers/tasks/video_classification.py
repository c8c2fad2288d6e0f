"""Video classification: VideoMAE, TimeSformer... through ``AutoModelForVideoClassification``.

A record is one video file of a ``video_folder`` dataset. ``num_frames`` frames (the model's
``config.num_frames``) are decoded with PyAV, sampled uniformly over the clip (``adapters.datasets.video_folder
.read_clip``: each equal segment's middle; a random frame of each segment for training, with a random
horizontal flip of the whole clip), and the model's image processor (``VideoMAEImageProcessor``) resizes,
crops and normalises them into ``pixel_values`` (frames x channels x height x width). These models have
position embeddings of one size (``config.image_size``): the processor is set to it whatever ``image_size``
the spec gives.

Evaluation is classification's: accuracy, macro precision / recall / F1, top-5 accuracy from 5 classes on,
the confusion matrix and per-class rows (``adapters.evaluation.classification``). Predict takes a video
path (``open_input``) and returns the top-k classes.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord
from adapters.datasets.video_folder import read_clip
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.classification import classification_evaluation
from adapters.transformers.tasks.common import in_shape_groups

log = logging.getLogger("visionyard.transformers")


@dataclass
class Clip:
    """A video's sampled frames (RGB ``uint8`` arrays) and the video's size, as predict opens it."""

    frames: list
    width: int
    height: int


class VideoClassificationTask(HFTask):
    name = "video_classification"
    auto_model = "AutoModelForVideoClassification"
    primary = "accuracy"

    def __init__(self, job) -> None:
        super().__init__(job)
        self.num_frames = 16  # the model's, set by ``build``

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForVideoClassification

        processor = AutoImageProcessor.from_pretrained(source)
        if dataset is None:
            model = AutoModelForVideoClassification.from_pretrained(source)
            self.class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        else:
            labels = {"num_labels": len(self.class_names), "id2label": dict(enumerate(self.class_names)),
                      "label2id": {name: i for i, name in enumerate(self.class_names)}}
            if pretrained:
                model = AutoModelForVideoClassification.from_pretrained(source, ignore_mismatched_sizes=True,
                                                                        **labels)
            else:
                model = AutoModelForVideoClassification.from_config(AutoConfig.from_pretrained(source, **labels))
        self.num_frames = int(getattr(model.config, "num_frames", 0) or 16)
        self._fit_image_size(model.config, processor)
        return model, processor

    def _fit_image_size(self, config, processor) -> None:
        """Resize and crop to the model's own ``image_size`` (its position embeddings fit that one only)."""
        size = getattr(config, "image_size", None)
        if not isinstance(size, int):
            return
        if self.spec.image_size and int(self.spec.image_size) != size:
            log.warning("image_size %s ignored: the model takes %dx%d frames", self.spec.image_size, size, size)
        if getattr(processor, "crop_size", None) is not None and getattr(processor, "do_center_crop", False):
            processor.size = {"shortest_edge": size}
            processor.crop_size = {"height": size, "width": size}
        else:
            processor.size = {"height": size, "width": size}

    # ------------------------------------------------------------ data

    def clip(self, path: str, train: bool) -> list:
        """The ``num_frames`` frames of the video at ``path``; for training at random points of their segments,
        flipped as one with ``augmentation.random_flip``."""
        rng = random.Random() if train else None
        frames = read_clip(path, self.num_frames, rng)
        if train and self.setting("augmentation.random_flip", True) and random.random() < 0.5:
            frames = [np.ascontiguousarray(frame[:, ::-1]) for frame in frames]
        return frames

    def pixel_values(self, frames: list):
        return self.processor(list(frames), return_tensors="pt")["pixel_values"][0]

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        return {"pixel_values": self.pixel_values(self.clip(record.path, train)), "labels": record.label}

    # ------------------------------------------------------------ evaluation and inference

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Accuracy, macro precision / recall / F1 and (5+ classes) top-5 accuracy; the confusion matrix and
        per-class rows stay in ``evaluation``."""
        logits, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        names = self.class_names or [f"class_{i}" for i in range(logits.shape[-1])]
        self.evaluation = classification_evaluation(logits, labels, names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def open_input(self, path: str) -> Clip:
        """What predict reads from a video file: its sampled frames (the evaluation's: segment middles)."""
        frames = self.clip(str(path), train=False)
        height, width = frames[0].shape[:2]
        return Clip(frames, int(width), int(height))

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Top-k classes per clip (``open_input``'s), the clips through the model together."""
        names = model.config.id2label
        inputs = [{"pixel_values": self.pixel_values(clip.frames)[None]} for clip in images]

        def run(batch, members):
            probs = model(**batch).logits.softmax(-1)
            scores, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
            return [{"predictions": [{"label": names[int(i)], "score": float(s), "index": int(i)}
                                     for s, i in zip(row_scores, row_indices, strict=True)]}
                    for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True)]
        return in_shape_groups(inputs, model.device, run)
