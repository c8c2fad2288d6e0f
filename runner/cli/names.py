"""Names the CLI shows: job states and failure causes as users type them, the metrics the progress
line shows, and each task's primary metric.

The metric names have their home in adapters/metrics.py, which the CLI does not load (it stays
on the client side); tests/test_shared_names.py holds these copies equal to it.
"""

from __future__ import annotations

from protos import visionyard_pb2 as pb

#: The metrics the progress line shows, in this order, when a job reports them.
SHOWN_METRICS = ("train/loss", "val/loss", "val/accuracy", "val/top5", "val/f1", "val/mAP50-95", "val/mIoU",
                 "val/psnr", "lr")

#: Each task's primary metric and whether higher is better (adapters.metrics.PRIMARY_METRICS).
PRIMARY_METRICS: dict[str, tuple[str, bool]] = {
    "image_classification": ("val/accuracy", True),
    "object_detection": ("val/mAP50-95", True),
    "obb_detection": ("val/mAP50-95", True),
    "instance_segmentation": ("val/mask_mAP50-95", True),
    "pose_estimation": ("val/pose_mAP50-95", True),
    "semantic_segmentation": ("val/mIoU", True),
    "super_resolution": ("val/psnr", True),
    "ocr": ("val/cer", False),
    "depth_estimation": ("val/abs_rel", False),
    "zero_shot_classification": ("val/accuracy", True),
    "zero_shot_detection": ("val/mAP50-95", True),
    "image_captioning": ("val/cider", True),
    "visual_qa": ("val/vqa_accuracy", True),
    "video_classification": ("val/accuracy", True),
}
#: What a task without a primary metric of its own is judged by.
FALLBACK_METRIC = ("val/loss", False)


def primary_metric(task: str) -> tuple[str, bool]:
    """`(name, higher_is_better)` of the metric that decides a job's best checkpoint."""
    return PRIMARY_METRICS.get(task, FALLBACK_METRIC)


def state_name(state: int) -> str:
    return pb.JobState.Name(state)


def cause_name(cause: int) -> str:
    """A failure cause as `list --cause` takes it: out_of_memory, dataset, ..."""
    return pb.FailureCause.Name(cause).removeprefix("CAUSE_").lower()


def format_metrics(values: dict[str, float], keys=SHOWN_METRICS) -> str:
    shown = [k for k in keys if k in values] or sorted(values)
    return "  ".join(f"{k} {values[k]:.4g}" for k in shown)
