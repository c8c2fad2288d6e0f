"""Open-vocabulary (zero-shot) detection through ``AutoModelForZeroShotObjectDetection``: Grounding DINO trains
(HF has its loss) and predicts; OWL-ViT and OWLv2 predict and evaluate only (HF has no loss for them: a job
that would train one is refused, by the catalog at submit and in ``build``).

Classes are text. A COCO dataset's category names are the queries, in class order: Grounding DINO reads
them as one prompt, ``"car. bike."`` (lower case, each phrase ended by a full stop, as its processor
merges a label list), and a class's score for a query box is the mean of the sigmoid of its phrase's tokens
(the phrases as the model's own loss splits them, ``build_label_maps``: between [CLS], [SEP], "." and
"?"); OWL-ViT/OWLv2 read each name as its own query and give a logit per name. Either way each image gets
a (boxes x classes) score table, and its best (box, class) pairs are its detections: the most confident
100 (COCO's limit) above ``detection.threshold`` for an evaluation, above ``detection.predict_threshold``
for predict. Targets, crowd regions, the COCO evaluation (mAP50-95, mAP50, per class) and the
validation record are the detection task's (``tasks/detection.py``).

The same prompt serves every image of a job, so the Grounding DINO loss's per-image label maps agree (it
offsets the class ids of images after the first by one image's phrase count, which is right only then).
A model saved by a job keeps its classes in ``config.id2label``: predict looks for them unless it is
given other labels (``--labels``: predict's ``labels``), and ``eval`` on another dataset looks for that
dataset's categories. An evaluation before training (epoch 0) gives the zero-shot baseline.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from adapters.transformers.tasks.common import in_shape_groups, per_image_inputs
from adapters.transformers.tasks.detection import (MAX_DETECTIONS, DetectionTask, _detections, _ground_truth,
                                                   detection_evaluation)

log = logging.getLogger("visionyard.transformers")

#: Model types read with one prompt of all the labels, scored per token (Grounding DINO's kind), and those that
#: read each label as a query, scored per label (OWL's); of them, those whose loss HF has (they train).
PROMPTED = ("grounding-dino", "mm-grounding-dino")
QUERIED = ("owlvit", "owlv2")
TRAINS = ("grounding-dino",)
#: Detections kept per image for an evaluation: COCO's ``maxDets``.
EVAL_DETECTIONS = 100
#: ``id2label`` values that name no class (a hub config's defaults).
DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")


class ZeroShotDetectionTask(DetectionTask):
    name = "zero_shot_detection"
    auto_model = "AutoModelForZeroShotObjectDetection"
    primary = "mAP50-95"
    training_args = {"eval_do_concat_batches": False}
    #: Evaluate the model as loaded before training (``report.evaluate_before_training``): the zero-shot mAP.
    evaluate_before_training = True
    #: Its classes are text: ``eval`` looks for the evaluated dataset's (``TransformersAdapter.prepare_evaluation``).
    open_vocabulary = True

    def __init__(self, job) -> None:
        super().__init__(job)
        self.model_type = ""
        self.max_text_len: int | None = None
        self._prompts: dict[tuple[str, ...], tuple[dict, Any]] = {}

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForZeroShotObjectDetection, AutoProcessor

        config = AutoConfig.from_pretrained(source)
        self.model_type = config.model_type
        if self.model_type not in PROMPTED + QUERIED:
            raise ValueError(f"'{source}' is a {self.model_type} model; {self.name} takes "
                             f"{', '.join(PROMPTED + QUERIED)} models")
        if dataset is not None and self.model_type not in TRAINS:
            why = "Transformers has no training loss for it" if self.model_type in QUERIED else "not tried here"
            raise ValueError(f"'{source}' (model_type '{self.model_type}') predicts and evaluates zero-shot only "
                             f"({why}); train a {' or '.join(TRAINS)} model")
        processor = AutoProcessor.from_pretrained(source)
        if pretrained or dataset is None:
            model = AutoModelForZeroShotObjectDetection.from_pretrained(source)
        else:
            model = AutoModelForZeroShotObjectDetection.from_config(config)
        self.max_text_len = getattr(model.config, "max_text_len", None)
        _fit_size(processor.image_processor, model.config, self.spec.image_size)
        if dataset is None:
            names = [model.config.id2label[i] for i in sorted(model.config.id2label)]
            self.class_names = [] if all(DEFAULT_LABEL.match(str(n)) for n in names) else [str(n) for n in names]
        else:  # the classes go with the checkpoint: what its predict looks for by default
            model.config.id2label = dict(enumerate(self.class_names))
            model.config.label2id = {name: i for i, name in enumerate(self.class_names)}
            self.processor = processor
            self.prompt(self.class_names)  # a class list the model can't read fails here, before training
        return model, processor

    # ------------------------------------------------------------ labels and prompts

    def prompt(self, names: list[str]) -> tuple[dict, Any]:
        """Grounding DINO: (the text inputs of ``names`` as one prompt, batch of one; each name's token weights,
        names x the model's text length, summing to 1). OWL: (each name's query tokens, None)."""
        key = tuple(names)
        if key not in self._prompts:
            self._prompts[key] = (self._grounding_prompt(names) if self.model_type in PROMPTED
                                  else (_owl_queries(self.processor.tokenizer, names), None))
        return self._prompts[key]

    def _grounding_prompt(self, names: list[str]) -> tuple[dict, Any]:
        from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

        bad = [name for name in names if "." in name or "?" in name]
        if bad:
            raise ValueError(f"class name(s) {', '.join(map(repr, bad))}: Grounding DINO splits its prompt at '.' "
                             "and '?', so a name can't hold them; rename the class(es)")
        text = ". ".join(name.strip().lower() for name in names) + "."
        inputs = dict(self.processor.tokenizer(text, return_tensors="pt"))
        length, most = int(inputs["input_ids"].shape[1]), int(self.max_text_len or 256)
        if length > most:
            raise ValueError(f"the {len(names)} class names make a prompt of {length} tokens; Grounding DINO reads at "
                             f"most {most}: look for fewer or shorter labels")
        maps = build_label_maps(inputs["input_ids"].new_zeros((1, 1, most)).float(), inputs["input_ids"])[0].float()
        if maps.shape[0] != len(names):
            raise ValueError(f"the prompt {text!r} splits into {maps.shape[0]} phrases, not the {len(names)} names; "
                             "rename the classes (no punctuation of their own)")
        return inputs, maps / maps.sum(-1, keepdim=True)

    # ------------------------------------------------------------ data

    def image_processor(self):
        return self.processor.image_processor

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """The detection batch plus the class prompt's text inputs, the same for every image."""
        out = super().collate(batch)
        text, _ = self.prompt(self.class_names)
        out.update({key: value.expand(len(batch), -1) for key, value in text.items()})
        return out

    # ------------------------------------------------------------ evaluation and inference

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Per-batch ``(logits, pred_boxes)`` and targets → each image's best (box, class) pairs → COCO mAP50-95,
        mAP50, mAP75, precision and recall; per-class results and the confusion matrix stay in ``evaluation``."""
        import torch

        _, weights = self.prompt(self.class_names)
        threshold = float(self.setting("detection.threshold", 0.05))
        ground_truth, detections = [], []
        for (logits, boxes), targets in zip(eval_pred.predictions, eval_pred.label_ids, strict=True):
            scores = class_scores(torch.as_tensor(logits), weights)
            for table, image_boxes, target in zip(scores, torch.as_tensor(boxes), targets, strict=True):
                size = tuple(int(v) for v in target["orig_size"])
                found = best_pairs(table, image_boxes, size, threshold, EVAL_DETECTIONS, self.model_type)
                detections.append({key: value.cpu().numpy() for key, value in found.items()})
                ground_truth.append(_ground_truth(target, size))
        self.evaluation = detection_evaluation(ground_truth, detections, self.class_names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool,
                      labels: list[str] | None = None) -> list[dict[str, Any]]:
        """Every box scoring at least ``detection.predict_threshold`` for one of ``labels`` (None: the model's
        classes), the most confident ``MAX_DETECTIONS`` (for an evaluation, see ``prepare_evaluation``), each with
        the ``label`` it matched and its ``index`` in the labels, in each image's pixels; ``top_k`` is not used.
        Images of one processed shape go through together."""
        names = [str(label).strip() for label in labels or () if str(label).strip()] or list(self.class_names)
        if not names:
            raise ValueError("this model has no classes of its own: give the labels to look for (--labels cat,dog)")
        text, weights = self.prompt(names)
        threshold = self.predict_threshold
        if threshold is None:
            threshold = float(self.setting("detection.predict_threshold", 0.3))
        most = self.max_detections
        keep = most if most is not None else EVAL_DETECTIONS

        def run(batch, members):
            count = len(members)
            if weights is None:  # OWL: every image its copy of the queries
                queries = {key: value.repeat(count, 1).to(model.device) for key, value in text.items()}
            else:
                queries = {key: value.expand(count, -1).to(model.device) for key, value in text.items()}
            out = model(**batch, **queries)
            scores = class_scores(out.logits, None if weights is None else weights.to(out.logits.device))
            found = []
            for i, table, boxes in zip(members, scores, out.pred_boxes, strict=True):
                size = (images[i].height, images[i].width)
                pairs = best_pairs(table, boxes, size, threshold, keep, self.model_type)
                found.append(_detections(pairs, names, images[i], annotate, most))
            return found
        return in_shape_groups(per_image_inputs(processor.image_processor, images), model.device, run)


# ---------------------------------------------------------------- scores and boxes


def class_scores(logits, weights):
    """Each query box's score per class, (images, boxes, classes): Grounding DINO's token logits (images, boxes,
    text length) → the mean sigmoid over each class's phrase tokens (``weights``, classes x text length, rows
    summing to 1); OWL's logits are per class already (``weights`` None)."""
    probs = logits.float().sigmoid()
    return probs if weights is None else probs @ weights.T


def best_pairs(scores, boxes, size: tuple[int, int], threshold: float, keep: int | None, model_type: str) -> dict:
    """One image's (box, class) pairs of highest score, at most ``keep`` (None: all) and each at least
    ``threshold``: ``{"scores", "labels", "boxes"}``, boxes absolute xyxy in an image of ``size`` (height,
    width) and clipped to it. OWLv2 boxes are fractions of the square the image was padded to (its longer side)."""
    import torch

    height, width = size
    flat = scores.reshape(-1)
    count = flat.numel() if keep is None else min(int(keep), flat.numel())
    top, index = flat.topk(count)
    chosen = top >= threshold
    top, index = top[chosen], index[chosen]
    classes = scores.shape[-1]
    cx, cy, w, h = boxes[index // classes].float().unbind(-1)
    scale_x, scale_y = (max(height, width),) * 2 if model_type == "owlv2" else (width, height)
    corners = torch.stack([(cx - w / 2) * scale_x, (cy - h / 2) * scale_y, (cx + w / 2) * scale_x,
                           (cy + h / 2) * scale_y], -1)
    corners[:, 0::2] = corners[:, 0::2].clamp(0, width)
    corners[:, 1::2] = corners[:, 1::2].clamp(0, height)
    return {"scores": top, "labels": index % classes, "boxes": corners}


def _owl_queries(tokenizer, names: list[str]) -> dict:
    """Each name as its own OWL text query, padded as its processor pads them."""
    return dict(tokenizer(names, padding="max_length", truncation=True, return_tensors="pt"))


def _fit_size(image_processor, config, image_size: int | None) -> None:
    """The input size: OWL's vision tower takes only its own (a spec's other size is ignored, with a warning);
    Grounding DINO's shortest edge becomes ``image_size`` (its longest edge scaled alike), or stays the
    processor's own when none is asked."""
    size = getattr(image_processor, "size", None)
    fixed = getattr(getattr(config, "vision_config", None), "image_size", None)
    if isinstance(fixed, int):
        if image_size and int(image_size) != fixed:
            log.warning("image_size %s ignored: the model's vision tower takes %dx%d images", image_size, fixed, fixed)
        image_processor.size = {"height": fixed, "width": fixed}
        return
    if not image_size or size is None:
        return
    shortest, longest = getattr(size, "shortest_edge", None), getattr(size, "longest_edge", None)
    if isinstance(size, dict):
        shortest, longest = size.get("shortest_edge"), size.get("longest_edge")
    if shortest and longest:
        image_processor.size = {"shortest_edge": int(image_size),
                                "longest_edge": round(int(image_size) * int(longest) / int(shortest))}
    elif "height" in size and "width" in size:
        image_processor.size = {"height": int(image_size), "width": int(image_size)}


__all__ = ["MAX_DETECTIONS", "ZeroShotDetectionTask", "best_pairs", "class_scores"]
