"""The metric vocabulary shared by every framework adapter, log parser and the daemon.

Plain data only: the host imports this to know which metric decides "best" for a task.
Framework-specific extras keep a clear prefix (``train/box_loss``) and are not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAIN_LOSS = "train/loss"
VAL_LOSS = "val/loss"
VAL_ACCURACY = "val/accuracy"
VAL_TOP5 = "val/top5"
VAL_F1 = "val/f1"
VAL_MAP50 = "val/mAP50"
VAL_MAP50_95 = "val/mAP50-95"
#: COCO AP at IoU 0.75 (PaddleDetection prints it; nothing decides "best" by it).
VAL_MAP75 = "val/mAP75"
VAL_PRECISION = "val/precision"
VAL_RECALL = "val/recall"
#: Instance segmentation and pose report the mask / keypoint twins of the box metrics.
VAL_MASK_MAP50_95 = "val/mask_mAP50-95"
VAL_POSE_MAP50_95 = "val/pose_mAP50-95"
VAL_MIOU = "val/mIoU"
VAL_PIXEL_ACCURACY = "val/pixel_accuracy"
VAL_PSNR = "val/psnr"
VAL_SSIM = "val/ssim"
VAL_CER = "val/cer"
VAL_WER = "val/wer"
#: Depth estimation (AbsRel lower is better), captioning, visual question answering.
VAL_ABS_REL = "val/abs_rel"
VAL_RMSE = "val/rmse"
VAL_DELTA1 = "val/delta1"
VAL_CIDER = "val/cider"
VAL_BLEU4 = "val/bleu4"
VAL_VQA_ACCURACY = "val/vqa_accuracy"
LR = "lr"
#: Training images per second of an epoch (its training pass, without validation), and the model's size
#: (reported with the first epoch): what `visionyard compare` shows beside the metrics.
TRAIN_IMAGES_PER_S = "train/images_per_s"
MODEL_PARAMETERS = "model/parameters"
BOX_METRICS = (VAL_PRECISION, VAL_RECALL, VAL_MAP50, VAL_MAP50_95)
#: Every name of the vocabulary: the names above and the mask and keypoint twins of the box
#: metrics. Log parsers (log_parsers/ imports nothing of this module) and the CLI's progress line
#: name metrics from it or with a framework's own prefix; tests hold them to it.
VOCABULARY = frozenset({TRAIN_LOSS, VAL_LOSS, VAL_ACCURACY, VAL_TOP5, VAL_F1, *BOX_METRICS, VAL_MAP75, VAL_MIOU,
                        VAL_PIXEL_ACCURACY, VAL_PSNR, VAL_SSIM, VAL_CER, VAL_WER, LR, TRAIN_IMAGES_PER_S,
                        MODEL_PARAMETERS, VAL_ABS_REL, VAL_RMSE, VAL_DELTA1, VAL_CIDER, VAL_BLEU4,
                        VAL_VQA_ACCURACY,
                        *(name.replace("val/", f"val/{twin}_") for twin in ("mask", "pose") for name in BOX_METRICS)})


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric that decides which epoch's checkpoint is ``best`` for a task."""

    name: str
    higher_is_better: bool = True

    def improved(self, value: float | None, best: float | None) -> bool:
        """True when ``value`` beats ``best`` (any real value beats no best yet)."""
        if value is None or value != value:  # missing or NaN never improves
            return False
        if best is None:
            return True
        return value > best if self.higher_is_better else value < best


PRIMARY_METRICS: dict[str, PrimaryMetric] = {
    "image_classification": PrimaryMetric(VAL_ACCURACY),
    "object_detection": PrimaryMetric(VAL_MAP50_95),
    "obb_detection": PrimaryMetric(VAL_MAP50_95),
    "instance_segmentation": PrimaryMetric(VAL_MASK_MAP50_95),
    "pose_estimation": PrimaryMetric(VAL_POSE_MAP50_95),
    "semantic_segmentation": PrimaryMetric(VAL_MIOU),
    "super_resolution": PrimaryMetric(VAL_PSNR),
    "ocr": PrimaryMetric(VAL_CER, higher_is_better=False),
    "depth_estimation": PrimaryMetric(VAL_ABS_REL, higher_is_better=False),
    "zero_shot_classification": PrimaryMetric(VAL_ACCURACY),
    "zero_shot_detection": PrimaryMetric(VAL_MAP50_95),
    "image_captioning": PrimaryMetric(VAL_CIDER),
    "visual_qa": PrimaryMetric(VAL_VQA_ACCURACY),
    "video_classification": PrimaryMetric(VAL_ACCURACY),
}


def primary_metric(task: str) -> PrimaryMetric:
    """The primary metric of ``task``; unknown tasks fall back to the lowest ``val/loss``."""
    return PRIMARY_METRICS.get(task, PrimaryMetric(VAL_LOSS, higher_is_better=False))
