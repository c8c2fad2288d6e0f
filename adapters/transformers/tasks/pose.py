"""Top-down pose estimation: ViTPose and ViTPose+ through ``VitPoseForPoseEstimation``.

Top-down: each person's box is cropped from the image and the model predicts one heatmap per keypoint for that crop.
Training and evaluation crop the dataset's boxes (COCO ``person_keypoints_*.json``, or any pose format the dataset
layer reads: YOLO pose's records come in image fractions and are read in pixels); predict crops the boxes it is given
(``boxes``: per image a list of ``[x1, y1, x2, y2]``) or, given none, the whole image as one box.

Geometry, as ``VitPoseImageProcessor`` does it (its code crops and decodes; this module adds the targets): a box
becomes a centre and a scale (``box_to_center_and_scale``: widened to the model's input aspect ratio, padded by 1.25),
the crop is the unbiased affine warp of that region to the model's input size (``get_warp_matrix``: the region's
edges land on the first and last pixel), and a heatmap of ``h x w`` spans the same region, so an image point ``x``
lies at heatmap column ``(x - cx + sw / 2) * (w - 1) / sw`` (``sw`` the region's width in pixels; rows alike).
Targets are Gaussians (σ = ``pose_geometry.HEATMAP_SIGMA`` heatmap pixels) at each labelled keypoint; a keypoint
that is not labelled (v = 0) or whose Gaussian lies wholly outside the heatmap has weight 0. Decoding is the
processor's ``keypoints_from_heatmaps``: the arg-max refined by DARK, mapped back to the image.

The loss: Transformers raises "Training is not yet supported" when VitPose gets labels, so the task's ``Trainer``
computes the heatmap MSE with target weights (mmpose's ``JointsMSELoss``): the mean over batch, keypoints and pixels
of ``weight * (predicted - target)²``.

Flip: with COCO's 17 keypoints (whose left/right pairs are known), training flips crops at random
(``augmentation.random_flip``) and evaluation and predict average the heatmaps of the crop and of its mirror image
(``pose.flip_test``), as ViTPose evaluates. Other keypoint sets are not flipped.

Evaluation crops the validation set's boxes (crowd regions excepted), decodes each person's keypoints and scores them
with ``eval``'s pose scorer (``adapters.evaluation.scoring.PoseScorer``: COCO OKS AP, ``val/pose_mAP50-95`` and
``val/pose_mAP50``, precision and recall); a person's score is the mean confidence of its keypoints above
``KEYPOINT_SCORE_ABOVE`` (mmpose's rescoring). The boxes being the dataset's, only the keypoint metrics are reported.
``eval`` does the same through predict (COCO's keypoint protocol with ground-truth boxes): ``prepare_evaluation``
says ``boxes: "truth"``, and ``adapters.evaluate`` gives each image its own boxes (``Scorer.truth_boxes``).

Only numpy at the top (the geometry, targets, loss and pictures are in ``pose_geometry``): the host can test
the helpers.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image, to_pixels
from adapters.transformers.tasks.own_loss import OwnLossTask
from adapters.transformers.tasks.pose_geometry import (check_boxes, draw_people, flip_box, flip_keypoints, heatmap_loss,
                                                       heatmap_size, heatmap_targets, input_size, person_score, xywh)

log = logging.getLogger("visionyard.transformers")

ARCHITECTURES = ("vitpose",)
#: DARK's Gaussian kernel when decoding (the processor's default).
DARK_KERNEL = 11
#: COCO's 17 keypoints and their left/right pairs.
COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
#: The object class a model predicts when its config names none (the hub's ViTPose models: people).
DEFAULT_CLASS = "person"


@dataclass(frozen=True)
class Person:
    """One box to crop: its image (an index into the split's records), ``box`` x1 y1 x2 y2 in pixels, its keypoints
    (K x 3, pixels; None: none labelled) and class."""

    record: int
    box: tuple[float, float, float, float]
    keypoints: np.ndarray | None
    class_id: int


class PoseTask(OwnLossTask):
    name = "pose_estimation"
    auto_model = "VitPoseForPoseEstimation"
    primary = "pose_mAP50-95"
    #: Keypoints decoded per batch as they come: no eval-set-sized heatmaps kept.
    training_args = {"batch_eval_metrics": True}

    def __init__(self, job) -> None:
        super().__init__(job)
        #: Per split (True: train): the records in pixels and the people cropped from them.
        self.split: dict[bool, tuple[list[ImageRecord], list[Person]]] = {}
        #: Keypoints (K x 3: x, y, confidence) decoded so far in an evaluation, by person.
        self._found: dict[int, np.ndarray] | None = None
        #: The model's config (set by ``build``): keypoints, input and heatmap sizes.
        self.config = None

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, VitPoseForPoseEstimation, VitPoseImageProcessor

        config = AutoConfig.from_pretrained(source)
        if config.model_type not in ARCHITECTURES:
            raise ValueError(f"'{source}' is a '{config.model_type}' model; pose estimation trains "
                             f"{', '.join(ARCHITECTURES)}")
        if dataset is None:
            model = VitPoseForPoseEstimation.from_pretrained(source)
        else:
            count = (dataset.kpt_shape or (0, 0))[0]
            if not count:
                raise ValueError(f"the dataset at {dataset.root} has no keypoints: pose estimation needs a pose "
                                 "dataset (COCO person_keypoints_*.json, YOLO pose with kpt_shape)")
            names = COCO_KEYPOINTS if count == len(COCO_KEYPOINTS) else [f"keypoint_{i}" for i in range(count)]
            labels = {"num_labels": count, "id2label": dict(enumerate(names)),
                      "label2id": {name: i for i, name in enumerate(names)}}
            if pretrained:
                model = VitPoseForPoseEstimation.from_pretrained(source, ignore_mismatched_sizes=True, **labels)
            else:
                model = VitPoseForPoseEstimation(AutoConfig.from_pretrained(source, **labels))
            model.config.object_classes = list(self.class_names)
        self.config = model.config
        processor = VitPoseImageProcessor.from_pretrained(source)
        height, width = input_size(model.config)
        processor.size = {"height": height, "width": width}  # the backbone's position embeddings fix it
        if self.spec is not None and self.spec.image_size and (self.spec.image_size, self.spec.image_size) != (
                height, width):
            log.info("pose estimation crops people to the model's input size %dx%d (image_size %s is not used)",
                     width, height, self.spec.image_size)
        return model, processor

    def model_classes(self, model) -> list[str]:
        """The object classes the model predicts keypoints of (its config's ``object_classes``; the hub's: people)."""
        return list(getattr(model.config, "object_classes", None) or [DEFAULT_CLASS])

    # ------------------------------------------------------------ data

    def samples(self, records: list[ImageRecord], train: bool) -> list[int]:
        """The people of ``records`` to crop (their indices): training takes those with a labelled keypoint, evaluation
        every box but crowd regions."""
        records = [to_pixels(record) for record in records]
        people = []
        for i, record in enumerate(records):
            for a in record.annotations:
                if a.box is None or a.ignore:
                    continue
                points = None if a.keypoints is None else np.asarray(a.keypoints, dtype=np.float64).reshape(-1, 3)
                if train and (points is None or not (points[:, 2] > 0).any()):
                    continue
                people.append(Person(i, tuple(float(v) for v in a.box), points, a.class_id))
        self.split[train] = (records, people)
        return list(range(len(people)))

    def encode(self, index: int, train: bool) -> dict[str, Any]:
        import torch

        records, people = self.split[train]
        person = people[index]
        image = open_image(records[person.record])
        box, points = person.box, person.keypoints
        pairs = COCO_FLIP_PAIRS if self.config.num_labels == len(COCO_KEYPOINTS) else None
        if train and pairs and self.setting("augmentation.random_flip", True) and random.random() < 0.5:
            from PIL import Image

            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            box, points = flip_box(box, image.width), flip_keypoints(points, image.width, pairs)
        center, scale = self.center_scale(box)
        target, weight = heatmap_targets(points, center, scale, heatmap_size(self.config), self.config.num_labels)
        return {"pixel_values": self.crops(image, [box])[0], "labels": torch.from_numpy(target),
                "target_weight": torch.from_numpy(weight), "person": index}

    def crops(self, image, boxes):
        """The processor's crops of ``boxes`` (x1 y1 x2 y2) of one PIL image: (len(boxes), 3, H, W)."""
        return self.processor(images=image, boxes=[[xywh(box) for box in boxes]], return_tensors="pt")["pixel_values"]

    def center_scale(self, box) -> tuple[np.ndarray, np.ndarray]:
        from transformers.models.vitpose.image_processing_vitpose import box_to_center_and_scale

        size = self.processor.size
        return box_to_center_and_scale(xywh(box), image_width=size["width"], image_height=size["height"],
                                       normalize_factor=getattr(self.processor, "normalize_factor", 200.0))

    # ------------------------------------------------------------ training and evaluation

    def loss_and_outputs(self, model, inputs):
        """Heatmap MSE with target weights (VitPose has no loss)."""
        heatmaps = forward_heatmaps(model, inputs["pixel_values"])
        return heatmap_loss(heatmaps, inputs["labels"], inputs["target_weight"]), {"heatmaps": heatmaps}

    def start_evaluation(self) -> None:
        self._found = None

    def eval_outputs(self, model, inputs, outputs):
        """(heatmaps, flip-averaged under ``flip_test``; person indices)."""
        heatmaps = outputs["heatmaps"]
        if self.flip_test():
            heatmaps = flip_averaged(model, inputs["pixel_values"], heatmaps)
        return heatmaps, inputs["person"]

    def prepare_evaluation(self) -> dict[str, Any]:
        """Top-down: ``eval`` gives predict each image's own boxes (``boxes: "truth"``), as training's validation
        crops them."""
        return {"boxes": "truth"}

    def flip_test(self) -> bool:
        return bool(self.setting("pose.flip_test", True)) and self.config.num_labels == len(COCO_KEYPOINTS)

    def compute_metrics(self, eval_pred, compute_result: bool = True) -> dict[str, float]:
        """Called per batch (``batch_eval_metrics``): each person's keypoints decoded as its batch comes; the last call
        scores them all (COCO OKS AP) and leaves the evaluation in ``evaluation``."""
        if self._found is None:
            self._found = {}
        records, people = self.split[False]
        indices = [int(i) for i in _numpy(eval_pred.label_ids).reshape(-1)]
        if indices:
            decoded = self.decode(_numpy(eval_pred.predictions), [people[i].box for i in indices])
            self._found.update(zip(indices, decoded, strict=True))
        if not compute_result:
            return {}
        found, self._found = self._found, None
        self.evaluation = score_people(records, people, found, self.dataset.root, self.class_names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()
                if name.startswith("val/pose_")}

    def decode(self, heatmaps: np.ndarray, boxes) -> list[np.ndarray]:
        """Heatmaps (N x K x h x w) of the crops of ``boxes`` → each one's keypoints, K x 3 (x, y, confidence) in
        the image's pixels."""
        if not len(boxes):
            return []
        placed = [self.center_scale(box) for box in boxes]
        centers = np.stack([c for c, _ in placed]).astype(np.float32)
        scales = np.stack([s for _, s in placed]).astype(np.float32)
        coords, scores = self.processor.keypoints_from_heatmaps(heatmaps.astype(np.float32), centers, scales,
                                                                kernel=DARK_KERNEL)
        return [np.concatenate([coords[i], scores[i]], axis=1).astype(np.float64) for i in range(len(boxes))]

    # ------------------------------------------------------------ inference

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool,
                      boxes: list | None = None) -> list[dict[str, Any]]:
        """Each image's people: the keypoints in each of ``boxes[i]`` (x1 y1 x2 y2 in the image's pixels; none given:
        the whole image as one box), each prediction ``{"label", "score", "index", "box", "keypoints": [[x, y,
        confidence], ...]}``; every crop of the batch through the model together. ``top_k`` is not used."""
        import torch

        self.config = model.config
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"boxes: {len(boxes)} lists of boxes for {len(images)} images (one list per image)")
        per_image = [[tuple(float(v) for v in box) for box in boxes[i]] if boxes is not None else
                     [(0.0, 0.0, float(image.width), float(image.height))] for i, image in enumerate(images)]
        for image, chosen in zip(images, per_image, strict=True):
            check_boxes(chosen, image.width, image.height)
        crops = [self.crops(image, chosen) for image, chosen in zip(images, per_image, strict=True) if chosen]
        flat = [box for chosen in per_image for box in chosen]
        keypoints: list[np.ndarray] = []
        if crops:
            with torch.inference_mode():
                pixels = torch.cat(crops).to(model.device)
                heatmaps = forward_heatmaps(model, pixels)
                if self.flip_test():
                    heatmaps = flip_averaged(model, pixels, heatmaps)
            keypoints = self.decode(heatmaps.float().cpu().numpy(), flat)
        name = self.model_classes(model)[0]
        out, start = [], 0
        for image, chosen in zip(images, per_image, strict=True):
            predictions = [{"label": name, "score": person_score(points), "index": 0, "box": list(box),
                            "keypoints": points.tolist()}
                           for box, points in zip(chosen, keypoints[start:start + len(chosen)], strict=True)]
            start += len(chosen)
            result: dict[str, Any] = {"predictions": predictions}
            if annotate:
                result["image_png"] = draw_people(image, predictions)
            out.append(result)
        return out


# ---------------------------------------------------------------- the model and scores


def forward_heatmaps(model, pixel_values, flip_pairs=None):
    """The model's heatmaps; ViTPose+ (experts per dataset) is asked for its first dataset's (COCO's)."""
    import torch

    extra = {}
    if int(getattr(model.config.backbone_config, "num_experts", 1) or 1) > 1:
        extra["dataset_index"] = torch.zeros(pixel_values.shape[0], dtype=torch.long, device=pixel_values.device)
    if flip_pairs is not None:
        extra["flip_pairs"] = torch.tensor(flip_pairs, device=pixel_values.device)
    return model(pixel_values=pixel_values, **extra).heatmaps


def flip_averaged(model, pixel_values, heatmaps):
    """The mean of ``heatmaps`` and those of the mirrored crops, mirrored back with left and right swapped."""
    return (heatmaps + forward_heatmaps(model, pixel_values.flip(-1), COCO_FLIP_PAIRS)) / 2


def score_people(records, people: list[Person], found: dict[int, np.ndarray], root: str, class_names):
    """The decoded keypoints of ``people`` (by index in ``found``) scored against ``records`` by ``eval``'s pose
    scorer: one prediction per person, its box the dataset's."""
    from adapters.evaluation.scoring import make_scorer

    results: list[dict[str, Any]] = [{"predictions": []} for _ in records]
    for i, person in enumerate(people):
        points = found.get(i)
        if points is None:
            continue
        results[person.record]["predictions"].append(
            {"label": class_names[person.class_id], "index": person.class_id, "score": person_score(points),
             "box": list(person.box), "keypoints": points.tolist()})
    scorer = make_scorer("pose_estimation", root, list(class_names), list(class_names))
    scorer.update(records, results)
    return scorer.evaluation()


def _numpy(value) -> np.ndarray:
    return value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
