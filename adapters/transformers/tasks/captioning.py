"""Image captioning: GIT (``GitForCausalLM``), BLIP (``BlipForConditionalGeneration``) and BLIP-2
(``Blip2ForConditionalGeneration``), each loaded by ``AutoModelForImageTextToText`` with its ``AutoProcessor``.

A record is an image with one or more reference captions (the ``captions`` dataset format). Training
labels are one of them, drawn at random each time the image is drawn (so each epoch pairs an image
with a random one of its captions), written as the model was pretrained to read them: ``[start]
caption [end]`` (GIT: ``[CLS] … [SEP]``; BLIP: its decoder's ``bos`` instead of ``[CLS]``, as BLIP's
own training does; BLIP-2: the image's query-token placeholders, then ``</s> … \\n`` for OPT), pads
-100. The loss is the model's own (GIT over the text after its image tokens, BLIP's decoder with
its built-in label smoothing of 0.1), so ``advanced.label_smoothing`` is not used here.

Evaluation generates each validation image's caption from the image alone (a ``Trainer`` whose
``prediction_step`` first takes the teacher-forced ``val/loss`` on the image's first caption, then
generates up to ``generation.max_length`` tokens, greedily unless the model's generation config
says otherwise) and scores the captions against all the image's references: ``val/cider``
(CIDEr-D) and ``val/bleu4``, as the COCO caption evaluation computes them
(``adapters.evaluation.captions``). Each sample's caption, references, CIDEr-D and BLEU-4 go into
the validation record, the lowest CIDEr-D first.

Images are resized to the vision encoder's own size (``vision_config.image_size``): its position
embeddings fit that size only, so a spec's other ``image_size`` is ignored with a warning.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.captions import caption_results
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.common import in_shape_groups, per_image_inputs, pixel_values

log = logging.getLogger("visionyard.transformers")

#: ``model_type``\\s this task trains (the catalog's ``ARCHITECTURES`` entry says the same).
MODEL_TYPES = ("git", "blip", "blip-2")
#: How many captions ``build`` tokenises to warn about captions longer than ``generation.max_length``.
LENGTH_SAMPLE = 2000


@dataclass
class TextLayout:
    """How a model reads a caption: the token ids around it, the image placeholders before it (BLIP-2), and
    what its ``generate`` needs to start and stop where training did."""

    start: int
    end: int
    pad: int
    #: Placeholder ids in ``input_ids`` that the model fills with the image's query embeddings (BLIP-2); the
    #: labels leave them out.
    image_tokens: tuple[int, ...] = ()
    generate: dict[str, int] = field(default_factory=dict)


class CaptioningTask(HFTask):
    name = "image_captioning"
    auto_model = "AutoModelForImageTextToText"
    primary = "cider"

    def __init__(self, job) -> None:
        super().__init__(job)
        self.max_length = int(self.setting("generation.max_length", 64))
        #: The caption's token budget, start and end included: ``generation.max_length``, or fewer where the text
        #: model has fewer positions (set by ``build``).
        self.max_tokens = self.max_length
        self.layout: TextLayout | None = None

    def trainer_class(self):
        return _caption_trainer(self)

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        config = AutoConfig.from_pretrained(source)
        if config.model_type not in MODEL_TYPES:
            raise ValueError(f"'{source}' is a '{config.model_type}' model; image_captioning trains "
                             f"{', '.join(MODEL_TYPES)} (GIT, BLIP, BLIP-2)")
        processor = AutoProcessor.from_pretrained(source)
        if not (hasattr(processor, "tokenizer") and hasattr(processor, "image_processor")):
            raise ValueError(f"'{source}' has no processor with a tokenizer and an image processor "
                             f"({type(processor).__name__}); save one next to the model (save_pretrained)")
        if pretrained or dataset is None:
            model = AutoModelForImageTextToText.from_pretrained(source)
        else:
            model = AutoModelForImageTextToText.from_config(config)
        self._fit_image_size(model, processor)
        self.layout = _layout(model, processor.tokenizer)
        text = getattr(model.config, "text_config", model.config)
        positions = getattr(text, "max_position_embeddings", None)
        self.max_tokens = min(self.max_length, positions - len(self.layout.image_tokens)) if positions else \
            self.max_length
        model.generation_config.max_length = self.max_tokens + len(self.layout.image_tokens)
        self.processor = processor
        if dataset is not None:
            self._warn_long_captions(dataset)
        return model, processor

    def _fit_image_size(self, model, processor) -> None:
        """The image processor makes images of the vision encoder's size (``vision_config.image_size``)."""
        size = getattr(getattr(model.config, "vision_config", None), "image_size", None)
        if not isinstance(size, int):
            return
        if self.spec.image_size and int(self.spec.image_size) != size:
            log.warning("image_size %s ignored: the model's vision encoder takes %dx%d images", self.spec.image_size,
                        size, size)
        image_processor = processor.image_processor
        current = getattr(image_processor, "size", None) or {}
        if "height" in current and "width" in current:
            image_processor.size = {"height": size, "width": size}
        elif "shortest_edge" in current:  # CLIP's (GIT): resize the short side, then crop the centre
            image_processor.size = {"shortest_edge": size}
            if getattr(image_processor, "crop_size", None) is not None:
                image_processor.crop_size = {"height": size, "width": size}

    def _warn_long_captions(self, dataset) -> None:
        captions = list(islice((c for r in dataset.train + dataset.val for c in getattr(r, "captions", ())),
                               LENGTH_SAMPLE))
        if not captions:
            return
        longest = max(len(ids) for ids in self.processor.tokenizer(captions, add_special_tokens=False).input_ids) + 2
        if longest > self.max_tokens:
            log.warning("captions run to %d tokens (start and end included) but the model takes %d "
                        "(generation.max_length, or fewer where its text model has fewer positions): longer ones are "
                        "cut short in training and can't be generated whole", longest, self.max_tokens)

    # ------------------------------------------------------------ data

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        """The image's pixels and one caption's ids: a random reference in training, the first in evaluation
        (its teacher-forced ``val/loss``; the scores use every reference)."""
        captions = getattr(record, "captions", None) or (record.text,)
        caption = random.choice(captions) if train else captions[0]
        return {"pixel_values": pixel_values(self.processor.image_processor, open_image(record)),
                "ids": self.caption_ids(caption)}

    def caption_ids(self, caption: str) -> list[int]:
        """``[start] caption [end]``, cut to the token budget."""
        layout = self.layout
        ids = self.processor.tokenizer(caption, add_special_tokens=False, truncation=True,
                                       max_length=max(self.max_tokens - 2, 1)).input_ids
        return [layout.start, *ids, layout.end]

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """``input_ids`` (the image placeholders, then the caption, padded), their ``attention_mask`` and the
        ``labels``: the caption's ids, -100 on padding and image placeholders."""
        import torch

        layout = self.layout
        longest = max(len(item["ids"]) for item in batch)
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        for row, item in zip(labels, batch, strict=True):
            row[:len(item["ids"])] = torch.tensor(item["ids"], dtype=torch.long)
        text = labels.masked_fill(labels == -100, layout.pad)
        mask = (labels != -100).long()
        if layout.image_tokens:  # labels as long as the input (-100 on the images): BLIP-2's loss needs that
            image = torch.tensor(layout.image_tokens, dtype=torch.long).expand(len(batch), -1)
            text, mask = torch.cat([image, text], dim=1), torch.cat([torch.ones_like(image), mask], dim=1)
            labels = torch.cat([torch.full_like(image, -100), labels], dim=1)
        return {"pixel_values": torch.stack([item["pixel_values"] for item in batch]), "input_ids": text,
                "attention_mask": mask, "labels": labels}

    # ------------------------------------------------------------ evaluation and inference

    def generate(self, model, pixels) -> Any:
        """Generated ids for a batch of ``pixel_values`` (the model's start token and image placeholders may
        lead them)."""
        return model.generate(pixel_values=pixels, max_length=self.max_tokens + len(self.layout.image_tokens),
                              **self.layout.generate)

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Generated captions against every reference of each validation image (the Trainer evaluates them
        in the dataset's order); each sample's scores stay in ``evaluation``. Another eval set (of another
        size) is scored against the one caption in its labels."""
        predicted = self.decode(np.asarray(eval_pred.predictions))
        records = self.dataset.val if self.dataset is not None else []
        if len(records) == len(predicted):
            references = [list(getattr(r, "captions", None) or (r.text,)) for r in records]
        else:
            references = [[text] for text in self.decode(np.asarray(eval_pred.label_ids))]
        self.evaluation = caption_results(predicted, references, self.val_names(len(predicted)))
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def decode(self, ids: np.ndarray) -> list[str]:
        """Each row's caption: the text between the start token (and image placeholders) and the end token;
        -100 and pads dropped."""
        layout = self.layout
        rows = []
        for row in np.asarray(ids).tolist():
            row = [i for i in row if i >= 0]
            if layout.image_tokens and row[:len(layout.image_tokens)] == list(layout.image_tokens):
                row = row[len(layout.image_tokens):]
            if row and row[0] == layout.start:
                row = row[1:]
            if layout.end in row:
                row = row[:row.index(layout.end)]
            rows.append([i for i in row if i != layout.pad])
        return [text.strip() for text in self.processor.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Each image's caption (``text``), generated for the images together (one batch: the processor makes
        every image the encoder's size); greedy or beam search decodes each sequence on its own."""
        def run(batch, members):
            generated = self.generate(model, batch["pixel_values"])
            return [{"text": text, "predictions": []} for text in self.decode(generated.cpu().numpy())]
        inputs = per_image_inputs(processor.image_processor, images, keys=("pixel_values",))
        return in_shape_groups(inputs, model.device, run)


def _layout(model, tokenizer) -> TextLayout:
    """The ids a model's captions start and end with, its pad and image placeholders: GIT ``[CLS] … [SEP]``
    (its config's bos/eos), BLIP its text decoder's ``bos … [SEP]``, BLIP-2 ``<image>``×queries then the
    language model's ``bos … eos``."""
    config = model.config
    kind = config.model_type
    if kind == "git":
        start = _first(config.bos_token_id, tokenizer.cls_token_id, tokenizer.bos_token_id)
        end = _first(config.eos_token_id, tokenizer.sep_token_id, tokenizer.eos_token_id)
        pad = _first(config.pad_token_id, tokenizer.pad_token_id, end)
        return TextLayout(start, end, pad, generate={"bos_token_id": start, "eos_token_id": end, "pad_token_id": pad})
    text = config.text_config
    if kind == "blip":  # its generate() starts at text_config.bos and stops at sep itself
        return TextLayout(_first(text.bos_token_id, tokenizer.bos_token_id, tokenizer.cls_token_id),
                          _first(text.sep_token_id, tokenizer.sep_token_id),
                          _first(text.pad_token_id, tokenizer.pad_token_id))
    if kind == "blip-2":
        if not config.use_decoder_only_language_model:
            raise ValueError("image_captioning trains BLIP-2 with a decoder-only language model (OPT: "
                             "Salesforce/blip2-opt-*), not an encoder-decoder one (Flan-T5)")
        end = _first(model.generation_config.eos_token_id, text.eos_token_id, tokenizer.eos_token_id)
        end = end[0] if isinstance(end, list) else end
        pad = _first(text.pad_token_id, tokenizer.pad_token_id, end)
        image = _first(getattr(config, "image_token_id", None), getattr(config, "image_token_index", None))
        return TextLayout(_first(text.bos_token_id, tokenizer.bos_token_id), int(end), pad,
                          image_tokens=(image,) * int(config.num_query_tokens),
                          generate={"eos_token_id": int(end), "pad_token_id": pad})
    raise ValueError(f"image_captioning trains {', '.join(MODEL_TYPES)}, not '{kind}'")


def _first(*ids) -> Any:
    found = next((i for i in ids if i is not None), None)
    if found is None:
        raise ValueError("the model and its tokenizer name no token id for a caption's start, end or padding")
    return found


def _caption_trainer(task: CaptioningTask):
    """A ``Trainer`` whose evaluation generates captions (and keeps the teacher-forced loss)."""
    from transformers import Trainer

    class CaptionTrainer(Trainer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if self.label_smoother is not None:  # GIT's logits include its image tokens: the smoother can't align
                log.warning("advanced.label_smoothing is not used for image captioning: the model's own loss is "
                            "(BLIP's has a label smoothing of 0.1 built in)")
                self.label_smoother = None

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            loss, _, _ = super().prediction_step(model, inputs, True, ignore_keys=ignore_keys)
            if prediction_loss_only:
                return loss, None, None
            inputs = self._prepare_inputs(inputs)
            generated = task.generate(self.model, inputs["pixel_values"])
            return loss, generated, inputs["labels"]

    return CaptionTrainer
