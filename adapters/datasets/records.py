"""Plain records every reader returns and every consumer (adapters, converters, checks) reads.

Coordinates stay in the unit their format stores them in, and each image says which:
``ImageRecord.normalized`` is True for YOLO (fractions of the image's width and height) and
False for COCO, VOC and labelme (pixels). Reading a large COCO file therefore copies no
coordinate, and a YOLO dataset is read without opening a single image. Consumers that need one
unit ask for it: ``to_pixels(record)`` / ``to_normalized(record)`` (``coords.py``).

Geometry, per annotation (all optional, by task):
- ``box``: ``(x1, y1, x2, y2)``, corners of the axis-aligned box;
- ``polygons``: flat ``[x1, y1, x2, y2, ...]`` lists (one object may have several parts);
- ``rle``: a COCO run-length mask ``{"size": [h, w], "counts": ...}`` (always pixels);
- ``keypoints``: flat ``[x, y, v, ...]`` with visibility v in {0, 1, 2} (0: not labelled);
- ``rbox``: the 4 corners of a rotated box, flat ``[x1, y1, ..., x4, y4]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS = (
    "image_classification",
    "object_detection",
    "instance_segmentation",
    "semantic_segmentation",
    "pose_estimation",
    "obb_detection",
    "super_resolution",
    "ocr",
    "depth_estimation",
    "zero_shot_classification",
    "zero_shot_detection",
    "image_captioning",
    "visual_qa",
    "video_classification",
)
#: Tasks whose images carry per-object annotations with class ids.
OBJECT_TASKS = ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection",
                "zero_shot_detection")
SPLITS = ("train", "val")


@dataclass(slots=True)
class Annotation:
    """One object in an image. ``where`` locates it in its label file ("line 3", "annotation id 17")."""

    class_id: int
    box: tuple[float, float, float, float] | None = None
    polygons: list | None = None
    rle: dict | None = None
    keypoints: list | None = None
    rbox: list | None = None
    #: COCO ``iscrowd`` or VOC ``difficult``: kept, but not a normal training target.
    ignore: bool = False
    where: str = ""


@dataclass(slots=True)
class ImageRecord:
    """One image and what is known about it. Treat as read-only: the shared checks (``read.py``)
    clip and drop its annotations before a dataset is returned, never after."""

    path: str
    width: int | None = None
    height: int | None = None
    #: Classification: the class id.
    label: int | None = None
    annotations: list[Annotation] = field(default_factory=list)
    #: True when annotation coordinates are fractions of width/height (YOLO), False for pixels.
    normalized: bool = False
    #: Semantic segmentation: the class-id PNG of this image.
    mask: str | None = None
    #: Super-resolution: the paired low-resolution image (None: made by bicubic downscaling).
    lr: str | None = None
    #: OCR: the transcription.
    text: str | None = None
    #: Depth estimation: the image's depth map (a 16-bit PNG in millimetres or a ``.npy`` in metres; 0 = invalid).
    depth: str | None = None
    #: Visual question answering: one question about the image (an image with several questions is several
    #: records) and the answers people gave to it (VQA v2 has ten, repeats included: they weigh the score).
    question: str | None = None
    answers: tuple[str, ...] = ()
    #: labelme files that embed the image: ``path`` is the JSON file holding ``imageData``.
    embedded: bool = False
    #: The label file this record came from (a YOLO .txt, a labelme or VOC file, a COCO json).
    label_file: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A dataset read for one task: class names, and train/val images."""

    root: str
    format: str
    task: str
    class_names: tuple[str, ...]
    train: list[ImageRecord]
    val: list[ImageRecord]
    #: Pose: (keypoints per object, 2 or 3 values per keypoint).
    kpt_shape: tuple[int, int] | None = None
    #: Super-resolution: the upscaling factor.
    scale: int | None = None
    #: How val was made: "disk" (a val split on disk) or the split strategy's name.
    val_source: str = "disk"
    #: What the shared checks changed in the labels (clipped to the image, dropped), one line each;
    #: empty when the labels are used as they are on disk.
    label_fixes: tuple[str, ...] = ()

    def split(self, name: str) -> list[ImageRecord]:
        return {"train": self.train, "val": self.val}[name]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def polygon_box(polygons) -> tuple[float, float, float, float]:
    """The axis-aligned box around one or more flat polygons."""
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return min(xs), min(ys), max(xs), max(ys)
