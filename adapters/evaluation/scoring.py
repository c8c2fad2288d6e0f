"""Scoring a model's predictions of a dataset's images against the dataset's labels: what ``eval``
(``adapters.evaluate``) does between the predict path and the evaluators, one scorer per task, the
same for every framework.

A scorer is made from the model's classes (what its predictions' ``index`` means; the dataset's class
names are mapped to them by name) and takes, batch by batch, the records of the images and what the
adapter's ``predict_batch`` returned for them (``predictions`` with ``index``, ``score``, ``box`` and, by
task, ``polygon``, ``keypoints`` or ``rotated_box``; ``mask_png``; ``image_png``; ``text``). At the end it
gives an ``Evaluation``:

- image classification: each image's top-1 against its label → the confusion matrix →
  ``classification_results`` (and ``val/top5`` from 5 classes on, as training reports it);
- object detection: every returned box against the record's boxes in pixels of the original image,
  crowd / difficult objects (``Annotation.ignore``) as COCO ``iscrowd`` regions → ``box_results``
  (``detection_results`` and ``val/mAP75``);
- instance segmentation, pose, OBB: the same, with the task's geometry (``scoring_instances``): masks
  (the predictions' ``polygon`` and the records' polygons or RLEs, rasterised) → COCO mask AP
  (``val/mask_*``) beside the box AP; keypoints → COCO OKS AP (``val/pose_*``) beside the box AP; rotated
  boxes rasterised → their mask AP named as detection's (``val/mAP50-95`` …; COCO has no rotated boxes);
- semantic segmentation: the predicted class map (``mask_png``, at the image's size) against the
  record's mask, 255 ignored → the pixel confusion matrix → ``segmentation_results``;
- super-resolution: the upscaled image (``image_png``) against the HR image (cropped to ``scale`` x
  the LR image) → ``ImageQuality`` (PSNR, SSIM per image);
- OCR: the predicted text against the record's → ``ocr_results`` (CER, WER per sample);
- zero-shot classification and detection: as classification and detection, the dataset's class names being
  what the model looks for (the adapter's ``prepare_evaluation`` takes them: prompts, text queries);
- depth estimation: the predicted depth in metres at the image's size against the record's depth map, 0
  (invalid) not scored → ``DepthErrors`` (AbsRel, RMSE, δ1 per image, averaged over the images);
- image captioning and visual QA (``scoring_text``): the predicted ``text`` against every reference caption
  (CIDEr-D, BLEU-4) or the answers people gave (the VQA accuracy); each question goes to predict with its
  image, a batch's in one call (``VQAScorer.per_image_options``).

``per_image`` keeps at most ``GALLERY_LIMIT`` rows: for classification and the object tasks the images of
a gallery (``image``, ``predicted``, ``truth``; classification's mistakes first, the object tasks' boxes,
axis-aligned, scoring above ``GALLERY_SCORE_ABOVE``), for semantic segmentation each image's pixel
accuracy and mIoU (the worst first), for super-resolution, OCR, depth, captioning and VQA what their
evaluators list (the worst first). Images are named by their path relative to the dataset's folder.

Host-importable: numpy at import; Pillow where an image or mask is decoded, pycocotools where objects are
scored.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adapters.evaluation import scoring_instances as instances
from adapters.evaluation.classification import classification_results
from adapters.evaluation.confusion import ConfusionMatrix, confusion_matrix
from adapters.evaluation.depth import DepthErrors
from adapters.evaluation.detection import MATRIX_SCORE_ABOVE, box_results
from adapters.evaluation.ocr import ocr_results
from adapters.evaluation.record import Evaluation
from adapters.evaluation.restoration import ImageQuality
from adapters.evaluation.scorer import Scorer
from adapters.evaluation.scoring_text import CaptionScorer, VQAScorer
from adapters.evaluation.segmentation import segmentation_metrics, segmentation_results
from adapters.metrics import VAL_TOP5

#: Rows of ``per_image`` at most (the metrics cover every image).
GALLERY_LIMIT = 100
#: A detection gallery lists an image's boxes scoring above this (the matched confusion matrix's
#: threshold), at most ``GALLERY_BOXES`` of them.
GALLERY_SCORE_ABOVE = MATRIX_SCORE_ABOVE
GALLERY_BOXES = 20
IGNORE_ID = 255


class ClassesDiffer(ValueError):
    """The dataset has classes the model does not know."""


def class_map(dataset_names: Sequence[str], model_names: Sequence[str]) -> np.ndarray:
    """The model's class id of each of the dataset's classes, matched by name; ClassesDiffer naming the
    classes the model lacks. The dataset may have fewer classes than the model, in any order."""
    index = {name: i for i, name in enumerate(model_names)}
    unknown = [name for name in dataset_names if name not in index]
    if unknown:
        raise ClassesDiffer(
            f"the dataset's class(es) {_names(unknown)} are not classes of the model, whose classes are "
            f"{_names(model_names)}: evaluate on a dataset whose class names are the model's (all of them or a "
            "subset, in any order): rename those classes, or leave their images out")
    return np.array([index[name] for name in dataset_names], dtype=np.int64)


def _names(names: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(repr(str(n)) for n in names[:most])
    return shown + (f", ... ({len(names)} in all)" if len(names) > most else "") if names else "(none)"


def predictions(result: Any) -> list[dict[str, Any]]:
    """A predict result's predictions: the dict's ``predictions``, or the result itself when it is a list."""
    return list(result) if isinstance(result, (list, tuple)) else list(result.get("predictions") or [])


def decode_png(data: bytes, mode: str | None = None) -> np.ndarray:
    """PNG (or any image) bytes as an array (``mode``: converted first, e.g. ``RGB``)."""
    from PIL import Image

    with Image.open(io.BytesIO(bytes(data))) as image:
        return np.array(image.convert(mode) if mode else image)


def read_class_ids(path: str) -> np.ndarray:
    """A class-id mask file as an int64 array (a palette PNG gives its indices)."""
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.array(image)
    if pixels.ndim != 2:
        raise ValueError(f"{path}: a mask must be single-channel (class ids), found shape {pixels.shape}")
    return pixels.astype(np.int64)


class ClassificationScorer(Scorer):
    top_k = 5

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.to_model = class_map(dataset_classes, self.classes)
        self.confusion = ConfusionMatrix(len(self.classes))
        self.top5_hits = self.seen = 0
        self.wrong: list[dict[str, Any]] = []
        self.right: list[dict[str, Any]] = []

    def update(self, records, results) -> None:
        predicted, truth = [], []
        for record, result in zip(records, results, strict=True):
            found = predictions(result)
            label = int(self.to_model[record.label])
            top = int(found[0]["index"]) if found else -1
            predicted.append(top)
            truth.append(label)
            self.top5_hits += any(int(p["index"]) == label for p in found[:5])
            self.seen += 1
            row = {"image": self.name(record), "predicted": str(found[0]["label"]) if found else None,
                   "score": float(found[0]["score"]) if found else None, "truth": self.classes[label]}
            kept = self.right if top == label else self.wrong
            if len(kept) < GALLERY_LIMIT:
                kept.append(row)
        self.confusion.update(np.array(predicted), np.array(truth))

    def evaluation(self) -> Evaluation:
        evaluation = classification_results(self.confusion.matrix, self.classes)
        if len(self.classes) >= 5:
            evaluation.metrics[VAL_TOP5] = self.top5_hits / self.seen if self.seen else 0.0
        evaluation.per_image = (self.wrong + self.right)[:GALLERY_LIMIT]
        return evaluation


class DetectionScorer(Scorer):
    """Boxes. The scorers of the other object tasks add their geometry to each image's entries
    (``add_geometry``) and evaluate them their way (``adapters.evaluation.scoring_instances``)."""

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.to_model = class_map(dataset_classes, self.classes)
        self.truth: list[dict[str, Any]] = []
        self.found: list[dict[str, Any]] = []
        self.sizes: list[tuple[int, int]] = []  # (height, width) of each image whose masks are kept
        self.gallery: list[dict[str, Any]] = []

    def update(self, records, results) -> None:
        from adapters.datasets import to_pixels

        for record, result in zip(records, results, strict=True):
            record = to_pixels(record)
            objects = [a for a in record.annotations if a.box is not None]
            truth = {"boxes": np.array([a.box for a in objects], dtype=np.float64).reshape(-1, 4),
                     "labels": self.to_model[[a.class_id for a in objects]].reshape(-1),
                     "iscrowd": np.array([a.ignore for a in objects], dtype=bool)}
            boxes = self.detections(predictions(result))
            found = {"boxes": np.array([p["box"] for p in boxes], dtype=np.float64).reshape(-1, 4),
                     "scores": np.array([p["score"] for p in boxes], dtype=np.float64),
                     "labels": np.array([p["index"] for p in boxes], dtype=np.int64)}
            self.add_geometry(record, objects, boxes, truth, found)
            self.truth.append(truth)
            self.found.append(found)
            if len(self.gallery) < GALLERY_LIMIT:
                self.gallery.append(self._row(record, boxes, truth))

    def detections(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The predictions scored: those with a ``box``."""
        return [p for p in found if p.get("box") is not None]

    def add_geometry(self, record, objects: list, boxes: list[dict[str, Any]], truth: dict[str, Any],
                     found: dict[str, Any]) -> None:
        """Add what the task scores besides boxes to the image's ``truth`` and ``found`` entries."""

    def _row(self, record, boxes: list[dict[str, Any]], truth: dict[str, np.ndarray]) -> dict[str, Any]:
        shown = sorted((p for p in boxes if p["score"] > GALLERY_SCORE_ABOVE), key=lambda p: -p["score"])
        return {"image": self.name(record),
                "predicted": [{"label": self.classes[int(p["index"])], "score": round(float(p["score"]), 4),
                               "box": [round(float(v), 1) for v in p["box"]]} for p in shown[:GALLERY_BOXES]],
                "truth": [{"label": self.classes[int(label)], "box": [round(float(v), 1) for v in box],
                           **({"crowd": True} if crowd else {})}
                          for box, label, crowd in zip(truth["boxes"], truth["labels"], truth["iscrowd"], strict=True)]}

    def evaluation(self) -> Evaluation:
        evaluation = box_results(self.truth, self.found, self.classes)
        evaluation.per_image = self.gallery
        return evaluation


class InstanceSegmentationScorer(DetectionScorer):
    """Masks (the records' polygons or RLEs, the predictions' ``polygon``, rasterised) and boxes."""

    def add_geometry(self, record, objects, boxes, truth, found) -> None:
        height, width = size = instances.pixel_size(record)
        truth["masks"] = [instances.truth_mask(a, height, width) for a in objects]
        found["masks"] = [instances.predicted_mask(p, height, width) for p in boxes]
        self.sizes.append(size)

    def evaluation(self) -> Evaluation:
        evaluation = instances.instance_results(self.truth, self.found, self.classes, self.sizes, "segm")
        evaluation.per_image = self.gallery
        return evaluation


class PoseScorer(DetectionScorer):
    """Keypoints by OKS, and boxes."""

    def add_geometry(self, record, objects, boxes, truth, found) -> None:
        truth["keypoints"] = [instances.keypoint_array(a.keypoints) for a in objects]
        found["keypoints"] = [instances.keypoint_array(p.get("keypoints")) for p in boxes]

    def evaluation(self) -> Evaluation:
        evaluation = instances.instance_results(self.truth, self.found, self.classes, None, "keypoints")
        evaluation.per_image = self.gallery
        return evaluation


class RotatedBoxScorer(DetectionScorer):
    """Rotated boxes (the records' ``rbox`` corners, the predictions' ``rotated_box``) rasterised to masks."""

    def detections(self, found):
        """The predictions with a ``rotated_box``; ``box``, when missing, the axis-aligned box around it."""
        return [p if p.get("box") is not None else {**p, "box": instances.corners_box(
            instances.rotated_corners(p["rotated_box"]))} for p in found if p.get("rotated_box") is not None]

    def add_geometry(self, record, objects, boxes, truth, found) -> None:
        height, width = size = instances.pixel_size(record)
        truth["masks"] = [instances.polygons_rle([a.rbox], height, width) if a.rbox
                          else instances.truth_mask(a, height, width) for a in objects]
        found["masks"] = [instances.polygons_rle([instances.rotated_corners(p["rotated_box"])], height, width)
                          for p in boxes]
        self.sizes.append(size)

    def evaluation(self) -> Evaluation:
        evaluation = instances.obb_results(self.truth, self.found, self.classes, self.sizes)
        evaluation.per_image = self.gallery
        return evaluation


class SegmentationScorer(Scorer):
    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        to_model = class_map(dataset_classes, self.classes)
        self.lookup = np.full(max(IGNORE_ID + 1, len(to_model)), IGNORE_ID, dtype=np.int64)
        self.lookup[:len(to_model)] = to_model  # 255 (and any id the dataset does not name) stays ignored
        self.confusion = ConfusionMatrix(len(self.classes), ignore_id=IGNORE_ID)
        self.rows: list[dict[str, Any]] = []

    def update(self, records, results) -> None:
        for record, result in zip(records, results, strict=True):
            if not result.get("mask_png"):
                raise ValueError(f"the predict path returned no class map for {record.path}")
            predicted = decode_png(result["mask_png"]).astype(np.int64)
            ids = read_class_ids(record.mask)
            truth = np.where(ids < len(self.lookup), self.lookup[np.clip(ids, 0, len(self.lookup) - 1)], IGNORE_ID)
            if predicted.shape != truth.shape:
                raise ValueError(f"the predicted class map of {record.path} is {predicted.shape[1]}x"
                                 f"{predicted.shape[0]} px but its mask {record.mask} is {truth.shape[1]}x"
                                 f"{truth.shape[0]} px")
            self.confusion.update(predicted, truth)
            metrics, _ = segmentation_metrics(confusion_matrix(predicted, truth, len(self.classes), IGNORE_ID))
            self.rows.append({"image": self.name(record), "pixel_accuracy": metrics["pixel_accuracy"],
                              "mIoU": metrics["mIoU"]})

    def evaluation(self) -> Evaluation:
        evaluation = segmentation_results(self.confusion.matrix, self.classes)
        order = sorted(range(len(self.rows)), key=lambda i: (self.rows[i]["mIoU"], i))[:GALLERY_LIMIT]
        evaluation.per_image = [self.rows[i] for i in order]
        return evaluation


class RestorationScorer(Scorer):
    """Super-resolution: each record's LR image (the dataset's, or its HR image cropped to a multiple of
    ``scale`` and downscaled bicubically, as training makes it) is predicted; the upscaled image is scored
    against the HR image cropped to ``scale`` x the LR image."""

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        if not scale:
            raise ValueError("super-resolution needs the model's upscaling factor")
        self.quality = ImageQuality()
        self.low_sizes: dict[str, tuple[int, int]] = {}

    def inputs(self, records, folder) -> list[str]:
        from PIL import Image

        from adapters.datasets import ImageRecord, image_size, open_image

        paths, s = [], int(self.scale)
        for i, record in enumerate(records):
            if record.lr is not None:
                paths.append(record.lr)
                self.low_sizes[record.path] = image_size(ImageRecord(record.lr))
                continue
            hr = open_image(record)
            hr = hr.crop((0, 0, hr.width // s * s, hr.height // s * s))
            low = hr.resize((hr.width // s, hr.height // s), Image.Resampling.BICUBIC)
            paths.append(str(folder / f"lr-{i}-{Path(record.path).stem}.png"))
            low.save(paths[-1])
            self.low_sizes[record.path] = low.size
        return paths

    def update(self, records, results) -> None:
        from adapters.datasets import open_image

        s = int(self.scale)
        for record, result in zip(records, results, strict=True):
            if not result.get("image_png"):
                raise ValueError(f"the predict path returned no image for {record.path}")
            width, height = self.low_sizes.pop(record.path)
            hr = open_image(record)
            if hr.width < width * s or hr.height < height * s:
                raise ValueError(f"{record.path} is {hr.width}x{hr.height} px, smaller than x{s} its LR image "
                                 f"({width}x{height} px)")
            target = np.asarray(hr.crop((0, 0, width * s, height * s)), dtype=np.float64) / 255.0
            upscaled = decode_png(result["image_png"], "RGB").astype(np.float64) / 255.0
            if upscaled.shape != target.shape:
                raise ValueError(f"the upscaled {record.path} is {upscaled.shape[1]}x{upscaled.shape[0]} px, its HR "
                                 f"image {target.shape[1]}x{target.shape[0]} px")
            self.quality.update(upscaled.transpose(2, 0, 1)[None], target.transpose(2, 0, 1)[None],
                                [self.name(record)])

    def evaluation(self) -> Evaluation:
        return self.quality.evaluation(limit=GALLERY_LIMIT)


class TextScorer(Scorer):
    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.predicted: list[str] = []
        self.expected: list[str] = []
        self.names: list[str] = []

    def update(self, records, results) -> None:
        for record, result in zip(records, results, strict=True):
            self.predicted.append(str(result.get("text") or "").strip())
            self.expected.append(str(record.text or ""))
            self.names.append(self.name(record))

    def evaluation(self) -> Evaluation:
        return ocr_results(self.predicted, self.expected, self.names, limit=GALLERY_LIMIT)


class DepthScorer(Scorer):
    """Depth maps: each image's predicted depth in metres at the image's size (``depth_m``, the float map predict
    gives once prepared for an evaluation; else ``depth_png``, 16-bit millimetres) against its depth map
    (``read_depth``: metres, 0 = invalid, not scored) → ``DepthErrors``: AbsRel, RMSE and δ1 per image, then
    their mean over the images, as a training validation scores them. A model that predicts relative depth
    (a hub checkpoint no job trained) is refused: the metrics compare metres."""

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.errors = DepthErrors()

    def update(self, records, results) -> None:
        from adapters.datasets.depth import MILLIMETRES_PER_METRE, read_depth

        for record, result in zip(records, results, strict=True):
            summary = result.get("depth") or {}
            if summary.get("kind", "metric") != "metric":
                raise ValueError(f"the model predicts {summary.get('kind')} depth ({summary.get('unit')}), not metres: "
                                 "eval scores metric depth; evaluate a checkpoint that a depth_estimation job trained")
            predicted = result.get("depth_m")
            if predicted is None:
                if not result.get("depth_png"):
                    raise ValueError(f"the predict path returned no depth map for {record.path}")
                predicted = decode_png(result["depth_png"]).astype(np.float64) / MILLIMETRES_PER_METRE
            target = read_depth(record.depth)
            if np.shape(predicted) != target.shape:
                raise ValueError(f"the predicted depth of {record.path} is {np.shape(predicted)[1]}x"
                                 f"{np.shape(predicted)[0]} px but its depth map {record.depth} is {target.shape[1]}x"
                                 f"{target.shape[0]} px")
            self.errors.update(predicted, target, self.name(record))

    def evaluation(self) -> Evaluation:
        return self.errors.evaluation(limit=GALLERY_LIMIT)


SCORERS: dict[str, type[Scorer]] = {
    "image_classification": ClassificationScorer,
    "zero_shot_classification": ClassificationScorer,
    "object_detection": DetectionScorer,
    "zero_shot_detection": DetectionScorer,
    "video_classification": ClassificationScorer,
    "instance_segmentation": InstanceSegmentationScorer,
    "pose_estimation": PoseScorer,
    "obb_detection": RotatedBoxScorer,
    "semantic_segmentation": SegmentationScorer,
    "super_resolution": RestorationScorer,
    "ocr": TextScorer,
    "depth_estimation": DepthScorer,
    "image_captioning": CaptionScorer,
    "visual_qa": VQAScorer,
}


def make_scorer(task: str, root: str, dataset_classes: Sequence[str], model_classes: Sequence[str],
                scale: int | None = None) -> Scorer:
    """The scorer of ``task``; ValueError naming the tasks scored for any other, ClassesDiffer when the
    dataset has classes the model lacks."""
    if task not in SCORERS:
        raise ValueError(f"eval does not score {task} yet; it scores {', '.join(SCORERS)}")
    return SCORERS[task](root, dataset_classes, model_classes, scale)
