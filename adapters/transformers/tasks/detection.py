"""Object detection: D-FINE, RT-DETR, DETR, Conditional DETR... through ``AutoModelForObjectDetection``.

Targets are what the model's processor makes from COCO-style annotations (``class_labels`` and
normalized cxcywh ``boxes`` per image, plus the image's ``orig_size``). Crowd / difficult objects
(``Annotation.ignore``) are no training target; they travel beside the targets as
``crowd_boxes`` so that evaluation treats them as COCO ``iscrowd`` regions (a detection there is
neither a hit nor a false positive).

Evaluation is pycocotools' ``COCOeval`` on boxes in the pixels of the original images, through
``adapters.evaluation.detection`` (the one COCO code of every framework), run once per evaluation:
mAP50-95, mAP50, mAP75, precision and recall, each class's AP50, AP50-95, precision and recall,
and the matched confusion matrix with its background row and column (``detection_evaluation``,
which takes plain per-image ground truth and detections, so it is tested by hand).
The Trainer would hand ``compute_metrics`` every tensor the model returns (D-FINE: the
auxiliary and intermediate outputs of each decoder layer too); ``DetectionTrainer`` keeps only
``logits`` and ``pred_boxes``, and ``eval_do_concat_batches=False`` keeps batches apart (the
targets are lists of dicts, which cannot be concatenated).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image, to_pixels
from adapters.evaluation import detection as coco
from adapters.evaluation.detection import average_precision, run_cocoeval
from adapters.evaluation.record import Evaluation
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.common import flip_image, image_processor, in_shape_groups, per_image_inputs

#: Most detections ``predict`` returns for one image (the most confident first).
MAX_DETECTIONS = 100
#: The IoU threshold of each metric ``detection_map`` gives (None: COCO's 0.50:0.95).
MAP_IOUS = {"mAP50-95": None, "mAP50": 0.5, "mAP75": 0.75}


class DetectionTask(HFTask):
    name = "object_detection"
    auto_model = "AutoModelForObjectDetection"
    primary = "mAP50-95"
    training_args = {"eval_do_concat_batches": False}

    def __init__(self, job) -> None:
        super().__init__(job)
        #: What :meth:`predict_batch` returns: boxes scoring at least this (None: ``detection.predict_threshold``),
        #: the most confident this many (None: all of them). ``prepare_evaluation`` changes both.
        self.predict_threshold: float | None = None
        self.max_detections: int | None = MAX_DETECTIONS

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForObjectDetection

        processor = image_processor(source, self.spec.image_size)
        if dataset is None:
            model = AutoModelForObjectDetection.from_pretrained(source)
            self.class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
            return model, processor
        labels = {"num_labels": len(self.class_names), "id2label": dict(enumerate(self.class_names)),
                  "label2id": {name: i for i, name in enumerate(self.class_names)}}
        if pretrained:
            model = AutoModelForObjectDetection.from_pretrained(source, ignore_mismatched_sizes=True, **labels)
        else:
            model = AutoModelForObjectDetection.from_config(AutoConfig.from_pretrained(source, **labels))
        return model, processor

    # ------------------------------------------------------------ data

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        import torch

        record = to_pixels(record)
        image = open_image(record)
        objects = [(a.class_id, a.box, a.ignore) for a in record.annotations if a.box is not None]
        if train and self.setting("augmentation.random_flip", True):
            flipped = flip_image(image)
            if flipped is not image:
                width = image.width
                objects = [(c, (width - x2, y1, width - x1, y2), ignore) for c, (x1, y1, x2, y2), ignore in objects]
                image = flipped
        annotations = [{"bbox": [x1, y1, x2 - x1, y2 - y1], "category_id": c, "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": 0} for c, (x1, y1, x2, y2), ignore in objects if not ignore]
        encoded = self.image_processor()(images=image, annotations={"image_id": 0, "annotations": annotations},
                                         return_tensors="pt")
        labels = dict(encoded["labels"][0])
        crowd = [(c, box) for c, box, ignore in objects if ignore]
        labels["crowd_class_labels"] = torch.tensor([c for c, _ in crowd], dtype=torch.long)
        labels["crowd_boxes"] = torch.tensor([_normalized_cxcywh(box, image.width, image.height) for _, box in crowd],
                                             dtype=torch.float32).reshape(-1, 4)
        item = {"pixel_values": encoded["pixel_values"][0], "labels": labels}
        if "pixel_mask" in encoded:  # DETR-style processors
            item["pixel_mask"] = encoded["pixel_mask"][0]
        return item

    def image_processor(self):
        """What turns an image and its COCO annotations into ``pixel_values`` and targets: the processor (a
        zero-shot detector's holds a tokenizer too: its image processor, there)."""
        return self.processor

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Images stacked (zero-padded at the bottom/right when sizes differ, ``pixel_mask`` saying
        where the image is), targets kept as a list of dicts.

        Boxes stay normalized to each image's own size, as in the original DETR: its position
        embedding follows the mask, and post-processing scales by the original size.
        """
        import torch

        images = [item["pixel_values"] for item in batch]
        height, width = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
        pixels = images[0].new_zeros((len(images), images[0].shape[0], height, width))
        mask = torch.zeros((len(images), height, width), dtype=torch.long)
        for i, image in enumerate(images):
            pixels[i, :, : image.shape[1], : image.shape[2]] = image
            mask[i, : image.shape[1], : image.shape[2]] = batch[i].get("pixel_mask", 1)
        out = {"pixel_values": pixels, "labels": [item["labels"] for item in batch]}
        if "pixel_mask" in batch[0]:
            out["pixel_mask"] = mask
        return out

    # ------------------------------------------------------------ evaluation and inference

    def trainer_class(self):
        return detection_trainer()

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Per-batch ``(logits, pred_boxes)`` and targets → post-processed detections → COCO mAP50-95, mAP50,
        mAP75, precision and recall; per-class results and the matched confusion matrix stay in ``evaluation``."""
        import torch

        ground_truth, detections = [], []
        for (logits, boxes), targets in zip(eval_pred.predictions, eval_pred.label_ids, strict=True):
            sizes = [tuple(int(v) for v in target["orig_size"]) for target in targets]
            results = self.processor.post_process_object_detection(
                _Outputs(torch.as_tensor(logits), torch.as_tensor(boxes)),
                threshold=self.setting("detection.threshold", 0.05), target_sizes=sizes)
            detections += [{key: r[key].cpu().numpy() for key in ("boxes", "scores", "labels")} for r in results]
            ground_truth += [_ground_truth(target, size) for target, size in zip(targets, sizes, strict=True)]
        self.evaluation = detection_evaluation(ground_truth, detections, self.class_names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def prepare_evaluation(self) -> None:
        """Predict as the training-time evaluation scores: every box down to ``detection.threshold`` (the
        threshold ``compute_metrics`` post-processes with; COCO AP needs the low-score tail that predict's
        ``detection.predict_threshold`` cuts), none of them cut by ``MAX_DETECTIONS``."""
        self.predict_threshold = float(self.setting("detection.threshold", 0.05))
        self.max_detections = None

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Every box scoring at least ``detection.predict_threshold`` (the most confident ``MAX_DETECTIONS``;
        for an evaluation, see :meth:`prepare_evaluation`), in each image's pixels, the most confident first;
        ``top_k`` is a classification notion and is not used. Images whose processed inputs have one shape go
        through the model together (any images, for a processor that resizes to one size: RT-DETR, D-FINE;
        DETR's keep their aspect ratio, so one batch per shape)."""
        threshold = self.predict_threshold
        if threshold is None:
            threshold = self.setting("detection.predict_threshold", 0.3)
        names, most = model.config.id2label, self.max_detections

        def run(batch, members):
            sizes = [(images[i].height, images[i].width) for i in members]
            found = processor.post_process_object_detection(model(**batch), threshold=threshold, target_sizes=sizes)
            return [_detections(result, names, images[i], annotate, most)
                    for i, result in zip(members, found, strict=True)]
        return in_shape_groups(per_image_inputs(processor, images), model.device, run)


def _detections(result: dict[str, Any], names, image, annotate: bool,
                most: int | None = MAX_DETECTIONS) -> dict[str, Any]:
    """One image's post-processed ``{"scores", "labels", "boxes"}`` → its predict result: the ``most`` most
    confident boxes (None: all), ties in the post-processing's order."""
    order = result["scores"].argsort(descending=True, stable=True)[:most].tolist()
    predictions = [{"label": names[int(result["labels"][i])], "score": float(result["scores"][i]),
                    "index": int(result["labels"][i]), "box": [float(v) for v in result["boxes"][i].tolist()]}
                   for i in order]
    out: dict[str, Any] = {"predictions": predictions}
    if annotate:
        out["image_png"] = draw_boxes(image, predictions)
    return out


class _Outputs:
    """The two fields ``post_process_object_detection`` reads from a model output."""

    def __init__(self, logits, pred_boxes) -> None:
        self.logits, self.pred_boxes = logits, pred_boxes


def detection_trainer():
    """A ``Trainer`` whose evaluation keeps only ``logits`` and ``pred_boxes`` of the outputs.

    ``Trainer.prediction_step`` takes every output but the loss as "logits", in the model's field
    order (DETR puts ``loss_dict`` first; D-FINE adds per-layer intermediate tensors), and moves
    them all to the CPU for every batch. Trimming the outputs in ``compute_loss`` keeps the rest
    of its machinery (autocast, loss scaling, gathering).
    """
    from transformers import Trainer

    class DetectionTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
            if not return_outputs:
                return loss
            return loss, {"loss": loss, "logits": outputs["logits"], "pred_boxes": outputs["pred_boxes"]}

    return DetectionTrainer


# ---------------------------------------------------------------- boxes and metrics


def _normalized_cxcywh(box, width: int, height: int) -> list[float]:
    x1, y1, x2, y2 = box
    return [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]


def _pixel_xyxy(boxes, size) -> np.ndarray:
    """Normalized cxcywh → absolute xyxy in an image of ``size`` (height, width)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    height, width = size
    cx, cy, w, h = boxes[:, 0] * width, boxes[:, 1] * height, boxes[:, 2] * width, boxes[:, 3] * height
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _ground_truth(target: dict[str, Any], size) -> dict[str, np.ndarray]:
    boxes, crowd = _pixel_xyxy(target["boxes"], size), _pixel_xyxy(target.get("crowd_boxes", []), size)
    labels = np.asarray(target["class_labels"]).reshape(-1)
    crowd_labels = np.asarray(target.get("crowd_class_labels", []), dtype=np.int64).reshape(-1)
    return {"boxes": np.concatenate([boxes, crowd]), "labels": np.concatenate([labels, crowd_labels]),
            "iscrowd": np.concatenate([np.zeros(len(boxes), bool), np.ones(len(crowd), bool)])}


def detection_map(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]]) -> dict[str, float]:
    """COCO mAP50-95, mAP50 and mAP75 of per-image detections against per-image ground truth
    (``adapters.evaluation.detection``, which documents the input and COCO's conventions).

    ``ground_truth[i]``: ``{"boxes": [[x1, y1, x2, y2], ...], "labels": [class, ...]}`` and
    optionally ``"iscrowd": [bool, ...]`` (regions whose detections are ignored);
    ``detections[i]``: ``{"boxes", "scores", "labels"}`` for the same image. Pixels, any unit as
    long as both agree. Categories without ground truth do not count; with no ground truth at all
    every metric is 0.0 (a number, so the Trainer can still pick a best checkpoint).
    """
    evaluation = run_cocoeval(ground_truth, detections)
    return {name: average_precision(evaluation, iou) or 0.0 for name, iou in MAP_IOUS.items()}


def detection_evaluation(ground_truth: list[dict[str, Any]], detections: list[dict[str, Any]],
                         class_names: list[str]) -> Evaluation:
    """What ``adapters.evaluation.detection.detection_results`` gives for boxes (``val/precision``,
    ``val/recall``, ``val/mAP50``, ``val/mAP50-95``, per-class rows ``{"class", "AP50", "AP50-95",
    "precision", "recall", "support"}``, the matched confusion matrix with background), plus ``val/mAP75``
    from the same ``COCOeval`` (``box_results``; input as ``detection_map``'s)."""
    return coco.box_results(ground_truth, detections, class_names)


def draw_boxes(image, predictions: list[dict[str, Any]]) -> bytes:
    """The image with each prediction's box and "label score" drawn on it, as PNG bytes."""
    from PIL import ImageDraw

    palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240)]
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for p in predictions:
        colour = palette[p["index"] % len(palette)]
        x1, y1, x2, y2 = p["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
        draw.text((x1 + 2, y1 + 1), f"{p['label']} {p['score']:.2f}", fill=colour)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
