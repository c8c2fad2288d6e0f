"""The dataset layer: every vision format read into the same plain records, torch-free.

Shared by both worlds: the daemon checks a dataset at submit with exactly the code an adapter
then reads it with, and the converters write from the same records. One module per format,
each registering its reader with ``@register_format`` (the imports below are the full list):

============  =====================================================================  ==========================
format        layout                                                                 tasks
============  =====================================================================  ==========================
imagefolder   ``train/<class>/<image>`` (+ ``val/<class>/``)                          classification,
                                                                                     zero-shot classification
dice          labelme JSON next to images, or ``images/`` + ``annotations/*.json``    classification, detection,
                                                                                     instance segmentation
yolo          ``images/{train,val}`` + ``labels/{train,val}`` (+ data.yaml)           detection, instance seg.,
                                                                                     pose, OBB, classification
coco          ``annotations/instances_{train,val}.json`` + ``{train,val}/``           detection, instance seg.,
                                                                                     pose, zero-shot detection
voc           ``Annotations/*.xml`` + ``JPEGImages/`` (+ ``ImageSets/Main``)          detection
masks         ``{train,val}/images/`` + ``{train,val}/masks/`` (class-id PNGs)        semantic segmentation
sr_pairs      ``{train,val}/HR/`` + ``{train,val}/LR_x{scale}/`` (or HR only)         super-resolution
ocr           ``{train,val}/images/`` + ``{train,val}/labels.jsonl``                  OCR
captions      ``{train,val}/images/`` + ``{train,val}/captions.jsonl``, or COCO      image captioning
              ``annotations/captions_{train,val}.json`` + ``{train,val}/``
depth         ``{train,val}/images/`` + ``{train,val}/depth/`` (PNG mm, .npy m)      depth estimation
vqa           ``{train,val}/images/`` + ``{train,val}/questions.jsonl``               visual question answering
video_folder  ``train/<class>/<video>`` (+ ``val/<class>/``), PyAV decodes           video classification
              mp4, mov, avi, webm, mkv
============  =====================================================================  ==========================

``inspect_dataset`` returns the dataset and every problem (for checks); ``read_dataset`` returns
the dataset or raises ``DatasetError``. Without a val split on disk, val is made by the split
strategy (``split.py``), reproducibly from the seed.
"""

from __future__ import annotations

from typing import Any

# Each format module registers itself on import; this list is the registry's contents.
from adapters.datasets import (captions, coco, depth, dice, imagefolder, masks, ocr, sr_pairs,  # noqa: F401
                               video_folder, voc, vqa, yolo)
from adapters.datasets.coords import to_normalized, to_pixels
from adapters.datasets.formats import format_names, formats_for_task, get_format
from adapters.datasets.images import IMAGE_EXTENSIONS, image_size, list_images, open_image
from adapters.datasets.problems import DatasetError, Problem, Problems
from adapters.datasets.read import inspect_dataset, read_dataset
from adapters.datasets.records import OBJECT_TASKS, TASKS, Annotation, Dataset, ImageRecord
from adapters.datasets.split import DEFAULT_VAL_RATIO, STRATEGIES, SplitOptions

__all__ = [
    "DEFAULT_VAL_RATIO", "IMAGE_EXTENSIONS", "OBJECT_TASKS", "STRATEGIES", "TASKS", "Annotation", "Dataset",
    "DatasetError", "ImageRecord", "Problem", "Problems", "SplitOptions", "format_names", "formats_for_task",
    "get_format", "image_size", "inspect_dataset", "list_images", "open_image", "read_dataset", "split_options",
    "to_normalized", "to_pixels",
]


def split_options(dataset: dict[str, Any], seed: int = 0, val_ratio: float | None = None) -> SplitOptions:
    """The split options of a job spec's ``dataset`` mapping (``split``, ``val_ratio``, ``split_file``).

    ``val_ratio`` is the fallback ratio when the dataset mapping names none (an adapter's own
    setting, e.g. timm's ``advanced.data.val_split``).
    """
    ratio = dataset.get("val_ratio")
    if ratio is None:
        ratio = val_ratio if val_ratio is not None else DEFAULT_VAL_RATIO
    return SplitOptions(strategy=dataset.get("split") or None, val_ratio=float(ratio),
                        split_file=dataset.get("split_file") or None, seed=int(seed))

from adapters.datasets.convert import ConvertResult, convert_dataset  # noqa: E402
__all__ += ["ConvertResult", "convert_dataset"]
