"""Image classification: any ``AutoModelForImageClassification`` (ViT, DeiT, DINOv2, Swin, ConvNeXt...)."""

from __future__ import annotations

from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.classification import classification_results
from adapters.evaluation.confusion import confusion_matrix
from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_TOP5
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.common import (flip_image, image_processor, in_shape_groups, per_image_inputs,
                                                pixel_values)


class ClassificationTask(HFTask):
    name = "image_classification"
    auto_model = "AutoModelForImageClassification"
    primary = "accuracy"

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForImageClassification

        processor = image_processor(source, self.spec.image_size)
        if dataset is None:
            model = AutoModelForImageClassification.from_pretrained(source)
            self.class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
            return model, processor
        labels = {"num_labels": len(self.class_names), "id2label": dict(enumerate(self.class_names)),
                  "label2id": {name: i for i, name in enumerate(self.class_names)}}
        if pretrained:
            model = AutoModelForImageClassification.from_pretrained(source, ignore_mismatched_sizes=True, **labels)
        else:
            model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(source, **labels))
        return model, processor

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        image = open_image(record)
        if train and self.setting("augmentation.random_flip", True):
            image = flip_image(image)
        return {"pixel_values": pixel_values(self.processor, image), "labels": record.label}

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Accuracy, macro precision / recall / F1 and (5+ classes) top-5 accuracy; the confusion matrix
        and per-class rows stay in ``evaluation``."""
        logits, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        names = self.class_names or [f"class_{i}" for i in range(logits.shape[-1])]
        self.evaluation = classification_evaluation(logits, labels, names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Top-k classes per image; the images go through the model together (one batch for a processor
        that resizes to one size, as classification processors do)."""
        names = model.config.id2label

        def run(batch, members):
            probs = model(**batch).logits.softmax(-1)
            scores, indices = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
            return [{"predictions": [{"label": names[int(i)], "score": float(s), "index": int(i)}
                                     for s, i in zip(row_scores, row_indices, strict=True)]}
                    for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True)]
        return in_shape_groups(per_image_inputs(processor, images), model.device, run)


def classification_evaluation(logits: np.ndarray, labels: np.ndarray, class_names: list[str]) -> Evaluation:
    """The confusion matrix of the top-1 classes and what ``adapters.evaluation.classification`` makes of it
    (as every framework's classification), plus ``val/top5`` with 5 or more classes."""
    predicted = logits.argmax(-1)
    evaluation = classification_results(confusion_matrix(predicted, labels, len(class_names)), class_names)
    if logits.shape[-1] >= 5:
        top5 = np.argpartition(-logits, 4, axis=-1)[:, :5]  # the 5 highest logits, in any order
        evaluation.metrics[VAL_TOP5] = float((top5 == labels[:, None]).any(-1).mean()) if len(labels) else 0.0
    return evaluation


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy, top-5 accuracy (with 5+ classes) and macro F1 over the classes present, from the logits alone
    (self-contained: ``bench/bench_transformers.py`` runs its source in a bare Trainer script)."""
    predicted = logits.argmax(-1)
    out = {"accuracy": float((predicted == labels).mean())}
    if logits.shape[-1] >= 5:
        top5 = np.argsort(-logits, axis=-1)[:, :5]
        out["top5"] = float((top5 == labels[:, None]).any(-1).mean())
    f1s = []
    for c in np.union1d(labels, predicted):
        tp = float(((predicted == c) & (labels == c)).sum())
        fp = float(((predicted == c) & (labels != c)).sum())
        fn = float(((predicted != c) & (labels == c)).sum())
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out["f1"] = float(np.mean(f1s)) if f1s else 0.0
    return out
