"""Zero-shot image classification: an image-text model (CLIP, SigLIP) scores an image against one text
prompt per class, and fine-tuning trains both towers on those scores.

Class names become prompts through ``advanced.prompt_template`` (default ``"a photo of a {}"``,
underscores in a name read as spaces: ``golden_retriever`` → "a photo of a golden retriever").
Every step scores each image against the prompts of ALL the classes (``logits_per_image``, the
image-text similarity times the model's learnt scale, plus SigLIP's bias): HF's own
``return_loss`` pairs the images of a batch with the texts of the same batch, which is not a
classification. The loss (``ZeroShotTrainer.compute_loss``):

- CLIP: cross-entropy of each image's logits over the class prompts against its class (with
  ``advanced.label_smoothing``), as CLIP's contrastive loss is, image side, with the classes as
  the texts;
- SigLIP: its own sigmoid loss on the same logits: the image's class prompt a positive pair, every
  other class prompt a negative one, ``-log sigmoid(±logit)`` summed over the prompts, averaged
  over the images (SigLIP's normalisation). It keeps SigLIP's scores what they were trained to be:
  an independent probability per prompt, which predict reports.

Before the first step of a fresh run (not a resumed one) the model is evaluated once as it was
loaded (``evaluate_before_training``): the zero-shot baseline, reported as epoch 0 (step 0) with
its validation record; it never counts as the best epoch, which no checkpoint holds. Each epoch
reports accuracy, macro precision/recall/F1 and (5+ classes) top-5, with the confusion matrix in
the record, as classification does.

Predict scores an image against any list of labels given at predict time (``labels``: each through
the template), or, without one, the job's classes (kept in the checkpoint's ``config.id2label``):
the top-k with a softmax over the labels (CLIP) or each label's sigmoid (SigLIP). ``eval`` scores a
checkpoint, or a model without a job, on any ImageFolder dataset's classes (``open_vocabulary``), as
classification is scored.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.classification import classification_evaluation
from adapters.transformers.tasks.common import flip_image, in_shape_groups, per_image_inputs, pixel_values

log = logging.getLogger("visionyard.transformers")

DEFAULT_TEMPLATE = "a photo of a {}"
#: Architectures whose scores are independent sigmoids (trained with the sigmoid loss).
SIGMOID_MODELS = ("siglip",)


class ZeroShotClassificationTask(HFTask):
    name = "zero_shot_classification"
    auto_model = "AutoModelForZeroShotImageClassification"
    primary = "accuracy"

    def __init__(self, job) -> None:
        super().__init__(job)
        self.template = prompt_template(self.setting("prompt_template", DEFAULT_TEMPLATE))
        self.sigmoid = False  # set by ``build``: SigLIP
        self._prompts: tuple[tuple[str, ...], dict[str, Any]] = ((), {})  # the class names and their prompts' tokens
        self._text_config = None  # the text tower's (``build``)

    #: ``labels`` is no argument of ``CLIPModel.forward``: the Trainer is told it is the label.
    training_args = {"label_names": ["labels"]}
    #: The zero-shot baseline: the model as loaded, evaluated as epoch 0 (``report.evaluate_before_training``).
    evaluate_before_training = True
    #: ``eval`` of another dataset scores the model on that dataset's classes (``prepare_evaluation``).
    open_vocabulary = True

    def trainer_class(self):
        return _trainer_class(self)

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForZeroShotImageClassification

        processor = _processor(source)
        if dataset is None or pretrained:
            model = AutoModelForZeroShotImageClassification.from_pretrained(source)
        else:
            model = AutoModelForZeroShotImageClassification.from_config(AutoConfig.from_pretrained(source))
        if dataset is not None:
            if len(self.class_names) < 2:
                raise ValueError(f"zero-shot classification needs at least 2 classes to choose from, the dataset has "
                                 f"{len(self.class_names)}")
            # the job's classes travel with the checkpoint: predict without labels uses them
            model.config.id2label = dict(enumerate(self.class_names))
            model.config.label2id = {name: i for i, name in enumerate(self.class_names)}
        else:
            self.class_names = own_labels(model.config)
        self.sigmoid = model.config.model_type in SIGMOID_MODELS
        self._fit_image_size(model, processor)
        self.processor = processor
        self._text_config = model.config.text_config
        return model, processor

    def _fit_image_size(self, model, processor) -> None:
        """The vision tower takes one size (its position embeddings): the processor gives it that size whatever
        ``image_size`` says (the spec's default for a model is a guess; a hub processor already does)."""
        fixed = int(getattr(model.config.vision_config, "image_size", 0) or 0)
        if not fixed:
            return
        if self.spec.image_size and int(self.spec.image_size) != fixed:
            log.warning("image_size %s ignored: the model's vision tower takes %dx%d images", self.spec.image_size,
                        fixed, fixed)
        image_processor = processor.image_processor
        crop = getattr(image_processor, "crop_size", None) if getattr(image_processor, "do_center_crop", False) \
            else None
        size = getattr(image_processor, "size", None)
        if crop is not None:  # CLIP: shortest edge, then a centre crop
            if (crop.get("height"), crop.get("width")) != (fixed, fixed):
                image_processor.size = {"shortest_edge": fixed}
                image_processor.crop_size = {"height": fixed, "width": fixed}
        elif size is not None and "height" in size and "width" in size:  # SigLIP: a plain resize
            if (size.get("height"), size.get("width")) != (fixed, fixed):
                image_processor.size = {"height": fixed, "width": fixed}

    @property
    def text_inputs(self) -> dict[str, Any]:
        """The class prompts, tokenized (again only when the classes changed: ``eval`` of another dataset)."""
        names = tuple(self.class_names)
        if self._prompts[0] != names:
            self._prompts = (names, self.tokenize(names))
        return self._prompts[1]

    def tokenize(self, names) -> dict[str, Any]:
        """The prompts of ``names`` as the text tower takes them: SigLIP padded to its length without a mask (as it
        was trained), CLIP padded to the longest with its mask."""
        limit = int(getattr(self._text_config, "max_position_embeddings", 77) or 77)
        prompts = [self.template.format(name.replace("_", " ")) for name in names]
        tokenizer = self.processor.tokenizer
        if self.sigmoid:
            tokens = tokenizer(prompts, padding="max_length", truncation=True, max_length=limit, return_tensors="pt")
            return {"input_ids": tokens["input_ids"]}
        tokens = tokenizer(prompts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
        return {key: tokens[key] for key in ("input_ids", "attention_mask") if key in tokens}

    # ------------------------------------------------------------ data and loss

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        image = open_image(record)
        if train and self.setting("augmentation.random_flip", True):
            image = flip_image(image)
        # the image processor itself: the processor's own call (text and images) costs twice as much per image
        images = getattr(self.processor, "image_processor", self.processor)
        return {"pixel_values": pixel_values(images, image), "labels": record.label}

    def logits(self, model, pixel_values, text_inputs: dict[str, Any] | None = None):
        """Each image's logits against each prompt (images x prompts)."""
        text = {key: value.to(pixel_values.device) for key, value in (text_inputs or self.text_inputs).items()}
        return model(pixel_values=pixel_values, **text).logits_per_image

    def loss(self, logits, labels, label_smoothing: float = 0.0):
        """Cross-entropy over the class prompts (CLIP), or SigLIP's sigmoid loss (see the module)."""
        import torch.nn.functional as F

        if self.sigmoid:
            signs = 2 * F.one_hot(labels, logits.shape[-1]).to(logits.dtype) - 1
            return -F.logsigmoid(signs * logits).sum(-1).mean()
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    # ------------------------------------------------------------ evaluation and inference

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """As classification: accuracy, macro precision / recall / F1, top-5 with 5+ classes; the confusion matrix
        and per-class rows stay in ``evaluation``."""
        logits, labels = np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids)
        self.evaluation = classification_evaluation(logits, labels, self.class_names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool,
                      labels: list[str] | None = None) -> list[dict[str, Any]]:
        """Top-k of ``labels`` (default: the job's classes) per image; the images go through the model together."""
        if isinstance(labels, str):  # "cat,dog" as the command line gives it
            labels = labels.split(",")
        names = [str(label).strip() for label in labels or () if str(label).strip()] or self.class_names
        if not names:
            raise ValueError("zero-shot classification needs labels to choose from: pass labels (--labels cat,dog) "
                             "or predict with a job's checkpoint, which keeps the job's classes")
        text = self.tokenize(names) if labels else self.text_inputs

        def run(batch, members):
            logits = self.logits(model, batch["pixel_values"], text)
            scores = logits.sigmoid() if self.sigmoid else logits.softmax(-1)
            best, indices = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
            return [{"predictions": [{"label": names[int(i)], "score": float(s), "index": int(i)}
                                     for s, i in zip(row_scores, row_indices, strict=True)]}
                    for row_scores, row_indices in zip(best.tolist(), indices.tolist(), strict=True)]
        return in_shape_groups(per_image_inputs(processor, images, keys=("pixel_values",)), model.device, run)


def prompt_template(template: str) -> str:
    """``template`` checked: one ``{}`` where the class name goes."""
    if not isinstance(template, str) or template.count("{}") != 1:
        raise ValueError(f"advanced.prompt_template {template!r} needs exactly one {{}} where the class name goes, "
                         f"e.g. {DEFAULT_TEMPLATE!r}")
    try:
        template.format("x")
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"advanced.prompt_template {template!r} is not a format string with one {{}}: {exc}") from exc
    return template


def own_labels(config) -> list[str]:
    """A checkpoint's classes (``config.id2label``), or none when it has only the placeholder names (``LABEL_0``)
    every config has: a hub CLIP knows no classes."""
    names = [str(config.id2label[i]) for i in range(len(config.id2label or {}))]
    return [] if all(name == f"LABEL_{i}" for i, name in enumerate(names)) else names


def _processor(source: str):
    """The checkpoint's processor (image processor + tokenizer); a folder with the two saved apart is combined."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, CLIPProcessor

    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError):
        processor = None
    if processor is not None and hasattr(processor, "tokenizer") and hasattr(processor, "image_processor"):
        return processor
    return CLIPProcessor(image_processor=AutoImageProcessor.from_pretrained(source),
                         tokenizer=AutoTokenizer.from_pretrained(source))


def _trainer_class(task: ZeroShotClassificationTask):
    from transformers import Trainer

    class ZeroShotTrainer(Trainer):
        """Scores every image against all the class prompts; the task's loss on those logits (see the module)."""

        loss_is_scaled_for_ga = False  # a per-batch mean: the Trainer divides it by the accumulation steps

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logits = task.logits(model, inputs["pixel_values"])
            loss = task.loss(logits, inputs["labels"], self.args.label_smoothing_factor)
            return (loss, {"logits": logits}) if return_outputs else loss

    return ZeroShotTrainer
