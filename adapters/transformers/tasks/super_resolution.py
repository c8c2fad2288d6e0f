"""Super-resolution: Swin2SR (``Swin2SRForImageSuperResolution``), trained on L1 to the HR image.

Swin2SR computes no loss of its own (``labels=`` raises ``NotImplementedError``), so the task does
(an ``OwnLossTask``): L1 between ``outputs.reconstruction`` and the HR image, both RGB in [0, 1]. The
processor only rescales the LR image to [0, 1] (``do_pad=False``: we pad ourselves).

Pairs: the dataset's LR image, or the HR image cropped to a multiple of the scale and downscaled
bicubically. Training takes random aligned patches (``image_size`` LR pixels a side; smaller
images whole) with an optional horizontal flip; evaluation and predict take images whole.

Any sizes batch: ``collate`` pads LR images (reflect) to the batch's largest size rounded up to
the model's window (Swin2SR's own padding breaks on sizes that are not multiples of its window),
and HR targets with -1, which marks pixels that count neither in the loss nor in the metrics.

Metrics, on RGB in [0, 1] after clamping the reconstruction (no border crop, no Y channel):
``psnr`` (dB) and ``ssim`` (11 px Gaussian window), each the mean over images, scored image by
image by ``adapters.evaluation.restoration`` (torchmetrics' definitions), as the batches come; each
evaluation starts afresh (``start_evaluation``: nothing of one that stopped half-way is kept). The PSNR of
an image equal to its target is infinite; it counts as 100 dB (``restoration.PSNR_CAP_DB``). Each image's
PSNR and SSIM, the worst images first, go into the evaluation's validation record.
"""

from __future__ import annotations

import io
import math
import random
from typing import Any

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.restoration import ImageQuality
from adapters.transformers.tasks.common import in_shape_groups
from adapters.transformers.tasks.own_loss import OwnLossTask

#: HR padding value: outside the image (no loss, no metric).
PAD = -1.0
ARCHITECTURES = ("swin2sr",)


class SuperResolutionTask(OwnLossTask):
    name = "super_resolution"
    auto_model = "AutoModelForImageToImage"
    primary = "psnr"
    #: PSNR/SSIM accumulated per batch: no eval-set-sized reconstructions kept.
    training_args = {"batch_eval_metrics": True}

    def __init__(self, job) -> None:
        super().__init__(job)
        self.scale = 1
        self.window = 1
        self._quality: ImageQuality | None = None

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageToImage

        config = AutoConfig.from_pretrained(source)
        if config.model_type not in ARCHITECTURES:
            raise ValueError(f"'{source}' is a '{config.model_type}' model; super-resolution trains "
                             f"{', '.join(ARCHITECTURES)}")
        if pretrained or dataset is None:
            model = AutoModelForImageToImage.from_pretrained(source)
        else:
            model = AutoModelForImageToImage.from_config(config)
        self.scale, self.window = int(model.config.upscale), int(model.config.window_size)
        data_scale = getattr(dataset or getattr(self, "dataset", None), "scale", None)
        if data_scale and data_scale != self.scale:
            raise ValueError(f"'{source}' upscales x{self.scale} but the dataset is x{data_scale}; use a x{data_scale} "
                             f"model, or x{self.scale} data (LR_x{self.scale}/ folders, or HR only with "
                             f"advanced.upscale: {self.scale})")
        processor = AutoImageProcessor.from_pretrained(source)
        processor.do_pad = False
        return model, processor

    # ------------------------------------------------------------ data

    def pair(self, record: ImageRecord):
        """(LR, HR) PIL images with HR exactly ``scale`` x LR."""
        from PIL import Image

        s, hr = self.scale, open_image(record)
        if record.lr is None:
            hr = hr.crop((0, 0, hr.width // s * s, hr.height // s * s))
            return hr.resize((hr.width // s, hr.height // s), Image.Resampling.BICUBIC), hr
        lr = open_image(ImageRecord(record.lr))
        if hr.width < lr.width * s or hr.height < lr.height * s:
            raise ValueError(f"{record.lr} is {lr.width}x{lr.height} px, but its HR image {record.path} is "
                             f"{hr.width}x{hr.height} px, smaller than x{s}")
        return lr, hr.crop((0, 0, lr.width * s, lr.height * s))

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        import numpy as np
        import torch
        from PIL import Image

        lr, hr = self.pair(record)
        if train:
            lr, hr = random_patch(lr, hr, self.scale, int(self.spec.image_size))
            if self.setting("augmentation.random_flip", True) and random.random() < 0.5:
                lr, hr = (im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in (lr, hr))
        target = torch.from_numpy(np.asarray(hr, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return {"pixel_values": self.processor(images=lr, return_tensors="pt")["pixel_values"][0], "labels": target}

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        height = _round_up(max(item["pixel_values"].shape[-2] for item in batch), self.window)
        width = _round_up(max(item["pixel_values"].shape[-1] for item in batch), self.window)
        lows, highs = [], []
        for item in batch:
            low, high = item["pixel_values"], item["labels"]
            lows.append(pad_image(low, height, width))
            highs.append(F.pad(high, (0, width * self.scale - high.shape[-1], 0, height * self.scale - high.shape[-2]),
                               value=PAD))
        return {"pixel_values": torch.stack(lows), "labels": torch.stack(highs)}

    # ------------------------------------------------------------ training and evaluation

    def loss_and_outputs(self, model, inputs):
        """L1 on the reconstruction (Swin2SR has no loss), its mean over the batch's real pixels."""
        reconstruction = model(pixel_values=inputs["pixel_values"]).reconstruction
        return masked_l1(reconstruction, inputs["labels"]), {"reconstruction": reconstruction}

    def start_evaluation(self) -> None:
        self._quality = None

    def eval_outputs(self, model, inputs, outputs):
        """(reconstructions, HR targets with their padding)."""
        return outputs["reconstruction"], inputs["labels"]

    def compute_metrics(self, eval_pred, compute_result: bool = True) -> dict[str, float]:
        """Called per batch (``batch_eval_metrics``); the last call returns the eval set's metrics and leaves
        each image's PSNR and SSIM in ``evaluation``, named by the validation images (in the Trainer's order)."""
        import torch

        if self._quality is None:
            self._quality = ImageQuality()
        predicted, target = torch.as_tensor(eval_pred.predictions), torch.as_tensor(eval_pred.label_ids)
        for one, truth in zip(predicted, target, strict=True):  # each image without its padding
            height, width = valid_size(truth)
            self._quality.update(one[None, :, :height, :width], truth[None, :, :height, :width])
        if not compute_result:
            return {}
        quality, self._quality = self._quality, None
        self.evaluation = quality.evaluation(names=self.val_names(len(quality.images)))
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    # ------------------------------------------------------------ inference

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """Each image upscaled, as PNG (always); no labels to predict. Each LR image is padded to its own
        size rounded up to the window, as alone; images padded to one size go through the model together,
        the others apart (a larger padding changes what the shifted windows see near the edges)."""
        lows = [processor(images=image, return_tensors="pt")["pixel_values"][0] for image in images]
        inputs = [{"pixel_values": pad_image(low, _round_up(low.shape[-2], self.window),
                                             _round_up(low.shape[-1], self.window))[None]} for low in lows]

        def run(batch, members):
            out = model(pixel_values=batch["pixel_values"]).reconstruction
            return [self._upscaled(out[j], lows[i].shape[-2:]) for j, i in enumerate(members)]
        return in_shape_groups(inputs, model.device, run)

    def _upscaled(self, reconstruction, size) -> dict[str, Any]:
        """One image's reconstruction (C, H, W), cut to ``scale`` x its LR ``size`` → its predict result."""
        from PIL import Image

        height, width = size
        out = reconstruction[:, : height * self.scale, : width * self.scale].clamp(0, 1)
        pixels = (out * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        return {"predictions": [], "image_png": buffer.getvalue()}


# ---------------------------------------------------------------- helpers


def masked_l1(reconstruction, target):
    """Mean absolute error over the target's real pixels (``PAD`` marks padding)."""
    valid = target > PAD / 2
    return (reconstruction - target).abs()[valid].mean()


def valid_size(target) -> tuple[int, int]:
    """(height, width) of an HR target without its bottom/right ``PAD`` padding."""
    real = target[0] > PAD / 2
    return int(real.any(1).sum()), int(real.any(0).sum())


def pad_image(image, height: int, width: int):
    """A (C, h, w) image padded at the bottom/right to (height, width): mirrored where it is big enough."""
    import torch.nn.functional as F

    pad_h, pad_w = height - image.shape[-2], width - image.shape[-1]
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < image.shape[-2] and pad_w < image.shape[-1] else "replicate"
    return F.pad(image[None], (0, pad_w, 0, pad_h), mode=mode)[0]


def random_patch(lr, hr, scale: int, size: int):
    """Matching random crops: ``size`` LR pixels a side (the whole side where it is shorter)."""
    width, height = min(size, lr.width), min(size, lr.height)
    x, y = random.randint(0, lr.width - width), random.randint(0, lr.height - height)
    return (lr.crop((x, y, x + width, y + height)),
            hr.crop((x * scale, y * scale, (x + width) * scale, (y + height) * scale)))


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)
