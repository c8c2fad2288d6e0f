"""OCR (text recognition): ``VisionEncoderDecoderModel``, e.g. TrOCR, or any image encoder + text decoder pair.

A record is one image of a line of text. The image processor makes its ``pixel_values``; the
tokenizer makes its ``labels`` (padded with -100, which the loss ignores). Evaluation generates
text (``Seq2SeqTrainer`` with ``predict_with_generate``) and scores it against the labels by
character and word error rate (``adapters.evaluation.ocr``): edit distance summed over the
evaluation set, divided by the references' length (as torchmetrics computes them), lower is
better. Each sample's text, prediction and CER, the worst first, go into the evaluation's
validation record.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.ocr import ocr_results
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.common import in_shape_groups, per_image_inputs, pixel_values

log = logging.getLogger("visionyard.transformers")


class OCRTask(HFTask):
    name = "ocr"
    auto_model = "VisionEncoderDecoderModel"
    primary = "cer"

    def __init__(self, job) -> None:
        super().__init__(job)
        self.max_length = int(self.setting("generation.max_length", 64))
        # Set by ``build`` from the model and its tokenizer.
        self.start_id = self.pad_id = self.eos_id = 0
        self.max_label_tokens: int | None = None

    @property
    def training_args(self) -> dict[str, Any]:
        return {"predict_with_generate": True, "generation_max_length": self.max_length}

    def trainer_class(self):
        from transformers import Seq2SeqTrainer

        return Seq2SeqTrainer

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, VisionEncoderDecoderModel

        processor = _processor(source)
        if pretrained or dataset is None:
            model = VisionEncoderDecoderModel.from_pretrained(source)
        else:
            model = VisionEncoderDecoderModel(AutoConfig.from_pretrained(source))
        self._fit_image_size(model, processor)
        self.start_id, self.pad_id, self.eos_id = _special_ids(model, processor.tokenizer)
        for config in (model.config, model.generation_config):
            config.decoder_start_token_id, config.pad_token_id = self.start_id, self.pad_id
            config.eos_token_id = self.eos_id
        model.generation_config.max_length = self.max_length
        self.max_label_tokens = getattr(model.config.decoder, "max_position_embeddings", None)
        self.processor = processor
        if dataset is not None:
            self._warn_long_texts(dataset)
        return model, processor

    def _fit_image_size(self, model, processor) -> None:
        """An encoder with a fixed input size (ViT, DeiT: TrOCR) gets that size whatever ``image_size`` says:
        its position embeddings fit only that one, and the spec's default for an uncatalogued model is a guess."""
        image_processor = processor.image_processor
        size = getattr(image_processor, "size", None)
        if not (isinstance(size, dict) and {"height", "width"} <= set(size)):
            return
        fixed = getattr(model.config.encoder, "image_size", None)
        if isinstance(fixed, int):
            height = width = fixed
        elif isinstance(fixed, (list, tuple)) and len(fixed) == 2:
            height, width = map(int, fixed)
        elif self.spec.image_size:
            height = width = int(self.spec.image_size)
        else:  # no size asked (a model without a job): the processor's own
            return
        if self.spec.image_size and {height, width} != {int(self.spec.image_size)}:
            log.warning("image_size %s ignored: the model's encoder takes %dx%d images", self.spec.image_size,
                        width, height)
        image_processor.size = {"height": height, "width": width}

    def _warn_long_texts(self, dataset) -> None:
        tokenizer = self.processor.tokenizer
        texts = [r.text for r in dataset.train + dataset.val if r.text]
        longest = max((len(ids) for ids in tokenizer(texts).input_ids), default=0) if texts else 0
        if longest > self.max_length:
            log.warning("the longest text is %d tokens but generation.max_length is %d: longer texts are cut "
                        "short when generated, which counts as errors", longest, self.max_length)

    # ------------------------------------------------------------ data

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        limit = self.max_label_tokens
        ids = list(self.processor.tokenizer(record.text, truncation=limit is not None, max_length=limit).input_ids)
        if ids and ids[0] == self.start_id:  # the model prepends the start token itself
            ids = ids[1:]
        if not ids or ids[-1] != self.eos_id:  # generation stops only where training showed an end
            ids.append(self.eos_id)
        return {"pixel_values": pixel_values(self.processor, open_image(record)), "labels": ids}

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Labels padded with -100 to the batch's longest; ``decoder_input_ids`` are the labels shifted
        right after the start token, as the model would make them. Giving them here keeps training
        working when the Trainer takes ``labels`` away from the model (label smoothing)."""
        import torch

        labels = torch.full((len(batch), max(len(item["labels"]) for item in batch)), -100, dtype=torch.long)
        for row, item in zip(labels, batch, strict=True):
            row[:len(item["labels"])] = torch.tensor(item["labels"], dtype=torch.long)
        decoder_input_ids = torch.full_like(labels, self.start_id)
        decoder_input_ids[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, self.pad_id)
        return {"pixel_values": torch.stack([item["pixel_values"] for item in batch]), "labels": labels,
                "decoder_input_ids": decoder_input_ids}

    # ------------------------------------------------------------ evaluation and inference

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Generated ids and labels (both padded with -100 or pad) → text → CER and WER; each sample's CER
        stays in ``evaluation``, named by the validation images (in the Trainer's order)."""
        predicted = self._decode(np.asarray(eval_pred.predictions))
        expected = self._decode(np.asarray(eval_pred.label_ids))
        self.evaluation = ocr_results(predicted, expected, self.val_names(len(expected)))
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def _decode(self, ids: np.ndarray) -> list[str]:
        ids = np.where(ids < 0, self.pad_id, ids)
        return [text.strip() for text in self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Each image's text, generated for the images together (one batch for an encoder that takes one
        size, as TrOCR's does): greedy or beam search decodes each sequence on its own, and a sequence
        that ends first is padded, which the decoding drops."""
        def run(batch, members):
            generated = model.generate(pixel_values=batch["pixel_values"], max_length=self.max_length)
            return [{"text": text.strip(), "predictions": []}
                    for text in processor.tokenizer.batch_decode(generated, skip_special_tokens=True)]
        return in_shape_groups(per_image_inputs(processor, images, keys=("pixel_values",)), model.device, run)


def _processor(source: str):
    """The checkpoint's processor (image processor + tokenizer); a folder with the two saved apart
    (no processor config) is combined into a ``TrOCRProcessor``."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer, TrOCRProcessor

    try:
        processor = AutoProcessor.from_pretrained(source)
    except (OSError, ValueError, KeyError):
        processor = None
    if processor is not None and hasattr(processor, "tokenizer") and hasattr(processor, "image_processor"):
        return processor
    return TrOCRProcessor(image_processor=AutoImageProcessor.from_pretrained(source),
                          tokenizer=AutoTokenizer.from_pretrained(source))


def _special_ids(model, tokenizer) -> tuple[int, int, int]:
    """(decoder start, pad, end) token ids.

    Pad and end come from the tokenizer (it writes the labels); a tokenizer without a pad token
    pads with its end token. The start token is the model's own when it has one (TrOCR starts at
    ``</s>``, as it was pretrained), else the tokenizer's ``<s>``/``[CLS]``, else pad (as T5).
    """
    if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    if pad is None or eos is None:
        raise ValueError(f"the tokenizer ({type(tokenizer).__name__}) needs a pad and an end-of-sequence token")
    candidates = (getattr(model.config, "decoder_start_token_id", None), model.generation_config.decoder_start_token_id,
                  getattr(model.config.decoder, "decoder_start_token_id", None), tokenizer.bos_token_id,
                  tokenizer.cls_token_id, pad)
    start = next(i for i in candidates if i is not None)
    return int(start), int(pad), int(eos)
