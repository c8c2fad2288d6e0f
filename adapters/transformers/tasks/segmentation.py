"""Semantic segmentation: per-pixel models (SegFormer and the rest of ``AutoModelForSemanticSegmentation``)
and the universal mask-classification models Mask2Former and EoMT.

Both kinds train on images and masks resized to one square size (``image_size``; EoMT: its config's
``image_size``, which its position embeddings fix). Per-pixel models take ``labels``, the class map
with 255 ignored. Universal models take ``mask_labels`` + ``class_labels`` (one binary mask per class
present), which their processor builds from the class map; 255 becomes a "class" there, which we drop,
so ignored pixels are in no mask. Evaluation and predict turn either output into per-class logits
(universal: class probabilities x mask probabilities, as ``post_process_semantic_segmentation`` does),
upsample them to the label's size (SegFormer predicts at 1/4 resolution) and take the argmax.

mIoU and pixel accuracy come from a pixel confusion matrix summed batch by batch
(``batch_eval_metrics``: the Trainer keeps no predictions), computed by the evaluators every
framework shares (``adapters.evaluation``); the matrix and each class's IoU, pixel accuracy and
support go into the evaluation's validation record.

The module imports only numpy at the top, so the host can test the metric functions.
"""

from __future__ import annotations

import io
import logging
import random
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.confusion import confusion_matrix
from adapters.evaluation.segmentation import segmentation_results
from adapters.transformers.tasks.own_loss import OwnLossTask
from adapters.transformers.tasks.common import in_shape_groups, per_image_inputs

log = logging.getLogger("visionyard.transformers")

IGNORE_ID = 255
#: Universal (mask-classification) architectures this task trains; per-pixel ones come from
#: ``AutoModelForSemanticSegmentation``.
UNIVERSAL = ("mask2former", "eomt")


class SegmentationTask(OwnLossTask):
    name = "semantic_segmentation"
    auto_model = "AutoModelForSemanticSegmentation"
    primary = "mIoU"
    #: One confusion matrix summed per batch: no eval-set-sized prediction arrays.
    training_args = {"batch_eval_metrics": True}

    def __init__(self, job) -> None:
        super().__init__(job)
        self.universal = False
        self.num_classes = 0
        self._confusion: np.ndarray | None = None

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        import transformers
        from transformers import AutoConfig, AutoImageProcessor
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES

        model_type = AutoConfig.from_pretrained(source).model_type
        if model_type not in UNIVERSAL and model_type not in MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES:
            raise ValueError(f"'{source}' is a '{model_type}' model; semantic segmentation trains per-pixel models "
                             f"({', '.join(sorted(MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES))}) and "
                             f"{', '.join(UNIVERSAL)}")
        self.universal = model_type in UNIVERSAL
        auto = getattr(transformers, "AutoModelForUniversalSegmentation" if self.universal
                       else "AutoModelForSemanticSegmentation")
        processor = AutoImageProcessor.from_pretrained(source)
        if dataset is None:  # a checkpoint of ours: head and processor already fit
            model = auto.from_pretrained(source)
            self.class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
        else:
            if len(self.class_names) > IGNORE_ID:
                raise ValueError(f"the dataset has {len(self.class_names)} classes; class ids must stay below "
                                 f"{IGNORE_ID} (which marks ignored pixels)")
            labels = {"num_labels": len(self.class_names), "id2label": dict(enumerate(self.class_names)),
                      "label2id": {name: i for i, name in enumerate(self.class_names)}}
            if not self.universal:
                labels["semantic_loss_ignore_index"] = IGNORE_ID
            if pretrained:
                model = auto.from_pretrained(source, ignore_mismatched_sizes=True, **labels)
            else:
                model = auto.from_config(AutoConfig.from_pretrained(source, **labels))
            self._fit_processor(processor, model)
        self.num_classes = model.config.num_labels
        return model, processor

    def _fit_processor(self, processor, model) -> None:
        """Our masks as they are (0.. = classes, 255 = ignore), resized with the image to one square size."""
        size = self.spec.image_size
        if model.config.model_type == "eomt":
            if size != model.config.image_size:
                log.warning("EoMT takes %d px inputs (its config's image_size); image_size %s is not used",
                            model.config.image_size, size)
            size = model.config.image_size
            processor.do_split_image = False
            processor.do_pad = False
        for name, value in (("do_reduce_labels", False), ("ignore_index", None)):
            if hasattr(processor, name):
                setattr(processor, name, value)
        processor.size = {"height": int(size), "width": int(size)}

    # ------------------------------------------------------------ data

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        from PIL import Image

        image, mask = open_image(record), read_mask(record.mask)
        if train and self.setting("augmentation.random_flip", True) and random.random() < 0.5:
            image, mask = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), mask[:, ::-1].copy()
        if not self.universal:
            out = self.processor(images=image, segmentation_maps=mask, return_tensors="pt")
            return {"pixel_values": out["pixel_values"][0], "labels": out["labels"][0]}
        out = self.processor(images=[image], segmentation_maps=[mask], return_tensors="pt")
        keep = out["class_labels"][0] != IGNORE_ID
        item = {"pixel_values": out["pixel_values"][0], "mask_labels": out["mask_labels"][0][keep],
                "class_labels": out["class_labels"][0][keep]}
        if "pixel_mask" in out:
            item["pixel_mask"] = out["pixel_mask"][0]
        return item

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        return {key: [item[key] for item in batch] if key in ("mask_labels", "class_labels")
                else torch.stack([item[key] for item in batch]) for key in batch[0]}

    # ------------------------------------------------------------ evaluation

    def loss_and_outputs(self, model, inputs: dict[str, Any]) -> tuple[Any, Any]:
        """The model's own loss (a per-batch mean) and its outputs."""
        outputs = model(**inputs)
        return outputs.loss, outputs

    def eval_outputs(self, model, inputs: dict[str, Any], outputs) -> tuple[Any, Any]:
        """(predicted class map, true class map) of a batch, nothing else: the default ``prediction_step`` would
        hand on every output tensor (Mask2Former's hidden states included) and, for universal models, labels as
        two ragged lists."""
        target = self.target_map(inputs)
        return upsample(self.semantic_logits(outputs), target.shape[-2:]).argmax(1), target

    def semantic_logits(self, outputs):
        """Per-class scores (B, C, h, w) from either kind of model."""
        import torch

        if not self.universal:
            return outputs.logits
        classes = outputs.class_queries_logits.softmax(-1)[..., :-1]  # drop the "no object" class
        return torch.einsum("bqc,bqhw->bchw", classes, outputs.masks_queries_logits.sigmoid())

    def target_map(self, inputs: dict[str, Any]):
        """The batch's true class maps (B, H, W); universal models' masks are painted back into one."""
        import torch

        if "labels" in inputs:
            return inputs["labels"]
        masks = inputs["mask_labels"]
        target = torch.full((len(masks), *inputs["pixel_values"].shape[-2:]), IGNORE_ID, dtype=torch.long,
                            device=inputs["pixel_values"].device)
        for i, (image_masks, classes) in enumerate(zip(masks, inputs["class_labels"], strict=True)):
            for mask, class_id in zip(image_masks, classes, strict=True):
                target[i][mask > 0.5] = class_id
        return target

    def start_evaluation(self) -> None:
        """Forget the batches of an evaluation that stopped half-way."""
        self._confusion = None

    def compute_metrics(self, eval_pred, compute_result: bool = True) -> dict[str, float]:
        """Called per batch (``batch_eval_metrics``); the last call returns the eval set's metrics."""
        predicted, target = _numpy(eval_pred.predictions), _numpy(eval_pred.label_ids)
        batch = confusion_matrix(predicted, target, self.num_classes or len(self.class_names), ignore_id=IGNORE_ID)
        self._confusion = batch if self._confusion is None else self._confusion + batch
        if not compute_result:
            return {}
        confusion, self._confusion = self._confusion, None
        names = self.class_names or [f"class_{i}" for i in range(len(confusion))]
        self.evaluation = segmentation_results(confusion, names)
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    # ------------------------------------------------------------ inference

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Per image, the class map as an 8-bit PNG (value = class id), each class present with its pixel
        share. Images whose processed inputs have one shape go through the model together (any images,
        for the one square size this task trains at).

        ``top_k`` does not cut the list: every class present is listed, largest share first.
        """
        def run(batch, members):
            logits = upsample(self.semantic_logits(model(**batch)), batch["pixel_values"].shape[-2:])
            masks = batch.get("pixel_mask")
            return [self._class_map(logits[j:j + 1], None if masks is None else masks[j], images[i], model, annotate)
                    for j, i in enumerate(members)]
        inputs = per_image_inputs(processor, images, keys=("pixel_values", "pixel_mask"))
        return in_shape_groups(inputs, model.device, run)

    def _class_map(self, logits, pixel_mask, image, model, annotate: bool) -> dict[str, Any]:
        """One image's logits at the input's size (1, C, H, W) → its predict result."""
        from PIL import Image

        if pixel_mask is not None:  # drop the processor's bottom/right padding before resizing back
            valid = pixel_mask.bool()
            logits = logits[..., : int(valid.any(1).sum()), : int(valid.any(0).sum())]
        class_map = upsample(logits, (image.height, image.width))[0].argmax(0).cpu().numpy()
        counts = np.bincount(class_map.ravel(), minlength=model.config.num_labels)
        names = model.config.id2label
        present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i]]
        out: dict[str, Any] = {
            "predictions": [{"label": names[i], "score": float(counts[i] / class_map.size), "index": i}
                            for i in present],
            "mask_png": _png(Image.fromarray(class_map.astype(np.uint8))),
        }
        if annotate:
            colours = np.array([class_colour(i) for i in range(model.config.num_labels)], dtype=np.uint8)
            overlay = Image.blend(image, Image.fromarray(colours[class_map]), 0.5)
            out["image_png"] = _png(overlay)
        return out


# ---------------------------------------------------------------- helpers


def read_mask(path: str) -> np.ndarray:
    """A class-id mask as uint8 (palette PNGs give their indices)."""
    from PIL import Image

    with Image.open(path) as opened:
        pixels = np.array(opened)  # a writable copy: torch warns about read-only arrays
    if pixels.ndim != 2:
        raise ValueError(f"{path}: a mask must be single-channel (class ids), found shape {pixels.shape}")
    if pixels.dtype != np.uint8:
        if pixels.size and pixels.max() > IGNORE_ID:
            raise ValueError(f"{path}: holds class id {int(pixels.max())}; ids must be below {IGNORE_ID} "
                             f"({IGNORE_ID} = ignore)")
        pixels = pixels.astype(np.uint8)
    return pixels


def upsample(logits, size):
    import torch.nn.functional as F

    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits.float(), size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def class_colour(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC palette: distinct, stable colours by class id."""
    r = g = b = 0
    for bit in range(8):
        r |= ((index >> 0) & 1) << (7 - bit)
        g |= ((index >> 1) & 1) << (7 - bit)
        b |= ((index >> 2) & 1) << (7 - bit)
        index >>= 3
    return r, g, b


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
