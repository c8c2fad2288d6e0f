"""Monocular depth estimation: DPT, Depth Anything (V1, V2) and GLPN through ``AutoModelForDepthEstimation``,
trained to metric depth (metres) with a scale-invariant log loss.

The loss: HF's DPT and Depth Anything raise "Training is not implemented yet" when given labels, so the
task's ``Trainer`` subclass computes SiLog (Eigen et al., 2014) itself, for every architecture, GLPN included
(GLPN's own loss is the same formula with λ = 0.5; one loss keeps ``val/loss`` comparable across models):
``d = log(g) − log(p)`` over the valid pixels of the batch (ground truth > 0), the prediction upsampled
(bilinear) to each depth map's own size and clamped to at least ``MIN_DEPTH_M``,
``SiLog = sqrt(mean(d²) − λ·mean(d)²)`` with λ = ``SILOG_LAMBDA`` (0.85, Depth Anything's and ZoeDepth's
training value: their ``var(d) + 0.15·mean(d)²``).

Relative and metric models. GLPN predicts metres (``sigmoid × max_depth``). The hub's DPT (MiDaS) and
Depth Anything checkpoints predict relative inverse depth (disparity), which has no unit. Every model is
trained to metric depth: Depth Anything switches to its metric head (``depth_estimation_type: metric``,
``sigmoid × max_depth``; ``max_depth`` from ``advanced.depth.max_depth``, else 1.25 × the deepest valid
pixel of up to ``MAX_DEPTH_SAMPLE`` training depth maps, rounded up to a metre), its head's last layer
restarted at zero (every pixel at half ``max_depth``: the relative output's scale means nothing in metres);
DPT, which has no such head, reads its ReLU output as metres and learns the scale. The checkpoint's config
says ``depth_estimation_type: metric``, and the metrics score metres as they are (no median scaling;
``adapters.evaluation.depth``). A relative checkpoint used without training predicts relative depth, and
predict says so.

Inputs: each image resized (bicubic) to one size, then the processor's rescale and normalisation:
``image_size`` square when the spec asks for one, else the processor's own height x width (a checkpoint's
processor is saved with the size it trained at), else (GLPN, whose processor keeps each image's size) the first
training image's size in training and each image's own size at predict; always rounded to the architecture's
multiple (DPT: twice its patch size, Depth Anything: its patch size, GLPN: 32). Depth maps keep their own
size: batches pad them with 0 (invalid), and the prediction is upsampled to each map's size for the loss and
the metrics. Training flips image and depth map together (``augmentation.random_flip``).

Predict: per image, the depth at the image's size as a 16-bit PNG in millimetres (``depth_png``; 0 would
mean no measurement, so a depth under 1 mm is written as 1; depths past 65.535 m saturate), a coloured preview
(``image_png``, turbo, near = red), and ``depth`` with ``kind`` (metric or relative), ``unit`` and the
``min``, ``max`` and ``median`` depth. A relative model's PNG holds its inverse depth scaled to 1 .. 65535
(larger = nearer).

The module imports only numpy at the top, so the host can test the helpers.
"""

from __future__ import annotations

import io
import logging
import math
import random
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.datasets.depth import read_depth
from adapters.evaluation.depth import MIN_DEPTH_M, DepthErrors
from adapters.transformers.tasks.common import in_shape_groups
from adapters.transformers.tasks.own_loss import OwnLossTask

log = logging.getLogger("visionyard.transformers")

ARCHITECTURES = ("dpt", "depth_anything", "glpn")
SILOG_LAMBDA = 0.85
#: Training depth maps read to choose a relative Depth Anything's ``max_depth`` when the spec gives none.
MAX_DEPTH_SAMPLE = 32
METRIC, RELATIVE = "metric", "relative"
MAX_PNG_MM = 65535


class DepthTask(OwnLossTask):
    name = "depth_estimation"
    auto_model = "AutoModelForDepthEstimation"
    primary = "abs_rel"
    #: Errors summed per image as batches come: no eval-set-sized depth maps kept.
    training_args = {"batch_eval_metrics": True}

    def __init__(self, job) -> None:
        super().__init__(job)
        self.multiple = 1
        #: (height, width) every input is resized to; None: each image's own size, rounded (GLPN's predict).
        self.size: tuple[int, int] | None = None
        self._errors: DepthErrors | None = None
        #: Predict also gives the float depth (``depth_m``): set for ``eval`` (``prepare_evaluation``).
        self.float_depth = False

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForDepthEstimation

        config = AutoConfig.from_pretrained(source)
        if config.model_type not in ARCHITECTURES:
            raise ValueError(f"'{source}' is a '{config.model_type}' model; depth estimation trains "
                             f"{', '.join(ARCHITECTURES)}")
        overrides: dict[str, Any] = {}
        restart_head = False
        if dataset is not None:  # training from this model: metric depth
            max_depth = int(self.setting("depth.max_depth", 0) or 0)  # whole metres: the configs take ints
            if config.model_type == "depth_anything" and depth_kind(config) == RELATIVE:
                overrides = {"depth_estimation_type": METRIC, "max_depth": max_depth or sampled_max_depth(dataset)}
                restart_head = pretrained
                log.info("%s predicts relative depth: trained as metric depth up to %d m", source,
                         overrides["max_depth"])
            elif max_depth and hasattr(config, "max_depth"):
                overrides = {"max_depth": max_depth}
        if pretrained or dataset is None:
            model = AutoModelForDepthEstimation.from_pretrained(source, **overrides)
        else:
            model = AutoModelForDepthEstimation.from_config(AutoConfig.from_pretrained(source, **overrides))
        if dataset is not None:
            model.config.depth_estimation_type = METRIC  # DPT has no such field: the checkpoint says it all the same
        if restart_head:
            import torch

            with torch.no_grad():
                model.head.conv3.weight.zero_()
                model.head.conv3.bias.zero_()
        processor = AutoImageProcessor.from_pretrained(source)
        self.multiple = input_multiple(model.config, processor)
        self.size = self._input_size(processor, dataset or self.dataset)
        if self.size is not None and _fixed_size(processor):  # saved so: plain transformers resizes as we do
            processor.size = {"height": self.size[0], "width": self.size[1]}
            if hasattr(processor, "keep_aspect_ratio"):
                processor.keep_aspect_ratio = False
        return model, processor

    def _input_size(self, processor, dataset) -> tuple[int, int] | None:
        """One input size for every image (see the module); None: each image at its own size, rounded."""
        if self.spec.image_size:
            height = width = int(self.spec.image_size)
        elif _fixed_size(processor):
            height, width = int(processor.size["height"]), int(processor.size["width"])
        elif dataset is not None and dataset.train:
            first = dataset.train[0]
            width, height = (first.width, first.height) if first.width else open_image(first).size
        else:
            return None
        return round_to(height, self.multiple), round_to(width, self.multiple)

    # ------------------------------------------------------------ data

    def pixels(self, image):
        """One PIL image → ``pixel_values`` (3, h, w) at the input size."""
        from PIL import Image

        height, width = self.size or (round_to(image.height, self.multiple), round_to(image.width, self.multiple))
        if (image.width, image.height) != (width, height):
            image = image.resize((width, height), Image.Resampling.BICUBIC)
        return self.processor(images=image, do_resize=False, return_tensors="pt")["pixel_values"][0]

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        import torch
        from PIL import Image

        image, depth = open_image(record), read_depth(record.depth)
        if train and self.setting("augmentation.random_flip", True) and random.random() < 0.5:
            image, depth = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), depth[:, ::-1].copy()
        return {"pixel_values": self.pixels(image), "labels": torch.from_numpy(depth),
                "depth_size": torch.tensor(depth.shape, dtype=torch.long)}

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Depth maps padded with 0 (invalid) to the batch's largest; ``depth_size`` keeps each one's own."""
        import torch
        import torch.nn.functional as F

        height = max(int(item["labels"].shape[0]) for item in batch)
        width = max(int(item["labels"].shape[1]) for item in batch)
        labels = [F.pad(item["labels"], (0, width - item["labels"].shape[1], 0, height - item["labels"].shape[0]))
                  for item in batch]
        return {"pixel_values": torch.stack([item["pixel_values"] for item in batch]), "labels": torch.stack(labels),
                "depth_size": torch.stack([item["depth_size"] for item in batch])}

    # ------------------------------------------------------------ training and evaluation

    def loss_and_outputs(self, model, inputs):
        """SiLog on the predicted depth at each depth map's size (DPT and Depth Anything have no loss)."""
        outputs = model(pixel_values=inputs["pixel_values"])
        predicted = at_sizes(outputs.predicted_depth, inputs["depth_size"], inputs["labels"].shape[-2:])
        return silog_loss(predicted, inputs["labels"]), {"predicted_depth": predicted}

    def start_evaluation(self) -> None:
        self._errors = None

    def eval_outputs(self, model, inputs, outputs):
        """(predicted depth at each map's size, depth maps)."""
        return outputs["predicted_depth"], inputs["labels"]

    def compute_metrics(self, eval_pred, compute_result: bool = True) -> dict[str, float]:
        """Called per batch (``batch_eval_metrics``); the last call returns the eval set's metrics and leaves each
        image's errors in ``evaluation``, named by the validation images (in the Trainer's order)."""
        if self._errors is None:
            self._errors = DepthErrors()
        for predicted, target in zip(_numpy(eval_pred.predictions), _numpy(eval_pred.label_ids), strict=True):
            self._errors.update(predicted, target)  # padding is 0 in the target: not scored
        if not compute_result:
            return {}
        errors, self._errors = self._errors, None
        self.evaluation = errors.evaluation(names=self.val_names(errors.count))
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    # ------------------------------------------------------------ inference

    def prepare_evaluation(self) -> None:
        """``eval`` scores the depth the model gives, not the PNG's whole millimetres (which also saturate past
        65.535 m): each result then also holds ``depth_m``, the float map in metres at the image's size."""
        self.float_depth = True

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Each image's depth map (``depth_png``), preview (``image_png``) and ``depth`` summary (and, prepared for
        an evaluation, ``depth_m``); images whose inputs have one size (all of them, at a fixed input size) go
        through the model together."""
        kind = depth_kind(model.config)
        inputs = [{"pixel_values": self.pixels(image)[None]} for image in images]

        def run(batch, members):
            predicted = model(pixel_values=batch["pixel_values"]).predicted_depth
            out = []
            for j, i in enumerate(members):
                depth = upsample(predicted[j:j + 1], (images[i].height, images[i].width))[0].float().cpu().numpy()
                out.append(depth_result(depth, kind))
                if self.float_depth:
                    out[-1]["depth_m"] = depth
            return out
        return in_shape_groups(inputs, model.device, run)


# ---------------------------------------------------------------- helpers


def depth_kind(config) -> str:
    """``metric`` (metres) or ``relative`` (inverse relative depth): GLPN is metric; DPT and Depth Anything say
    so in ``depth_estimation_type`` (a checkpoint this task trained does), else relative (the hub's)."""
    if config.model_type == "glpn":
        return METRIC
    return METRIC if getattr(config, "depth_estimation_type", None) == METRIC else RELATIVE


def input_multiple(config, processor) -> int:
    """What an input's sides must be a multiple of: DPT's reassembly halves its patch grid once (twice its
    patch size), Depth Anything's patch size, GLPN's processor's ``size_divisor`` (32)."""
    ensure = int(getattr(processor, "ensure_multiple_of", 1) or 1)
    if config.model_type == "glpn":
        return int(getattr(processor, "size_divisor", 32) or 32)
    patch = int(getattr(config, "patch_size", 16) or 16)
    return max(ensure, 2 * patch if config.model_type == "dpt" else patch)


def round_to(value: int, multiple: int) -> int:
    """``value`` rounded to the nearest multiple (at least one multiple)."""
    return max(multiple, int(round(value / multiple)) * multiple)


def sampled_max_depth(dataset) -> int:
    """1.25 x the deepest valid depth of up to ``MAX_DEPTH_SAMPLE`` training depth maps (seeded), rounded up to
    a metre: a metric head's range when the spec gives none."""
    records = [r for r in dataset.train if r.depth]
    chosen = random.Random(0).sample(records, min(len(records), MAX_DEPTH_SAMPLE))
    deepest = max((float(read_depth(r.depth).max()) for r in chosen), default=0.0)
    return max(1, math.ceil(1.25 * deepest))


def upsample(depth, size):
    """(B, h, w) depth → (B, H, W), bilinear."""
    import torch.nn.functional as F

    if tuple(depth.shape[-2:]) == tuple(size):
        return depth
    return F.interpolate(depth[:, None].float(), size=tuple(int(s) for s in size), mode="bilinear",
                         align_corners=False)[:, 0]


def at_sizes(predicted, sizes, padded):
    """Each image's predicted depth upsampled to its depth map's own size (``sizes``: B x 2), in a zero-padded
    (B, *padded) tensor aligned with the collated depth maps."""
    import torch

    height, width = (int(s) for s in padded)
    if all(int(h) == height and int(w) == width for h, w in sizes.tolist()):
        return upsample(predicted, (height, width))
    out = torch.zeros((predicted.shape[0], height, width), dtype=torch.float32, device=predicted.device)
    for i, (h, w) in enumerate(sizes.tolist()):
        out[i, :h, :w] = upsample(predicted[i:i + 1], (h, w))[0]
    return out


def silog_loss(predicted, target, lambd: float = SILOG_LAMBDA):
    """SiLog over the target's valid pixels (> 0): sqrt(mean(d²) − λ·mean(d)²) with d = log(target) −
    log(predicted). The prediction's value is clamped to at least ``MIN_DEPTH_M``, as the metrics clamp it, but
    its gradient passes through unclamped: a fresh DPT's ReLU output starts at a few micrometres, where a plain
    clamp would give no gradient at all. 0 (with a gradient path) when no pixel is valid."""
    import torch

    valid = target > 0
    if not bool(valid.any()):
        return predicted.sum() * 0.0
    p = predicted[valid].float()
    p = p + (p.clamp(min=MIN_DEPTH_M) - p).detach()
    d = torch.log(target[valid]) - torch.log(p)
    return torch.sqrt((d.pow(2).mean() - lambd * d.mean().pow(2)).clamp(min=1e-12))


def depth_result(depth: np.ndarray, kind: str) -> dict[str, Any]:
    """One image's predicted depth (H x W, float) → its predict result: ``depth_png``, ``image_png``, ``depth``."""
    from PIL import Image

    depth = np.nan_to_num(np.asarray(depth, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    low, high, median = float(depth.min()), float(depth.max()), float(np.median(depth))
    if kind == METRIC:
        stored = np.rint(depth * 1000.0).clip(1, MAX_PNG_MM)
        nearness = (high - depth) / (high - low) if high > low else np.zeros_like(depth)
        summary = {"kind": METRIC, "unit": "m"}
    else:
        stored = np.rint(depth / high * MAX_PNG_MM).clip(1, MAX_PNG_MM) if high > 0 else np.ones_like(depth)
        nearness = (depth - low) / (high - low) if high > low else np.zeros_like(depth)
        summary = {"kind": RELATIVE, "unit": "relative inverse depth (larger = nearer)"}
    summary.update(min=low, max=high, median=median)
    return {"predictions": [], "depth_png": _png(Image.fromarray(stored.astype(np.uint16))),
            "image_png": _png(Image.fromarray(turbo(nearness))), "depth": summary}


#: Turbo (Google, 2019) as its published polynomial fit: red, green, blue = c · (1, t, t², t³, t⁴, t⁵).
_TURBO = np.array([[0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
                   [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
                   [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973]])


def turbo(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (H x W) → RGB uint8 (H x W x 3) in the turbo colour map (0 blue, 1 red)."""
    t = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)[..., None]
    powers = t ** np.arange(6)
    return np.rint(np.clip(powers @ _TURBO.T, 0.0, 1.0) * 255).astype(np.uint8)


def _fixed_size(processor) -> bool:
    """Whether the processor resizes to a height x width (DPT, Depth Anything; GLPN's keeps each image's size)."""
    size = getattr(processor, "size", None)
    return size is not None and "height" in size and "width" in size


def _numpy(value) -> np.ndarray:
    return value.detach().float().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
