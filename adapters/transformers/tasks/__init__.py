"""One module per task; ``get_task(name)`` returns its ``HFTask`` (imported on demand, child only)."""

from __future__ import annotations

import importlib

#: task -> "module:Class" under adapters.transformers.tasks
TASK_CLASSES = {
    "image_classification": "classification:ClassificationTask",
    "object_detection": "detection:DetectionTask",
    "semantic_segmentation": "segmentation:SegmentationTask",
    "super_resolution": "super_resolution:SuperResolutionTask",
    "ocr": "ocr:OCRTask",
    "image_captioning": "captioning:CaptioningTask",
    "depth_estimation": "depth:DepthTask",
    "zero_shot_classification": "zero_shot:ZeroShotClassificationTask",
    "visual_qa": "vqa:VQATask",
    "zero_shot_detection": "zero_shot_detection:ZeroShotDetectionTask",
    "video_classification": "video_classification:VideoClassificationTask",
    "pose_estimation": "pose:PoseTask",
}


def get_task(name: str, job):
    module, _, cls = TASK_CLASSES[name].partition(":")
    return getattr(importlib.import_module(f"adapters.transformers.tasks.{module}"), cls)(job)
