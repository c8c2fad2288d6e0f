"""Classification datasets on disk → class names and train/val sample lists.

Framework-neutral and torch-free: any adapter that trains a classifier can read the same
formats, and the readers are unit-tested without a framework. Formats:

- ``imagefolder``: ``path/train/<class>/**/<image>`` (required) and ``path/val/<class>/...``
  (optional; without it, a stratified split of train).
- ``dice``: labelme JSON files anywhere under ``path``. The class of an image is its flag set
  to true, else its first shape's label. Always split (stratified) into train/val.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("visionyard.datasets")

IMAGE_EXTENSIONS = frozenset((".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"))
FORMATS = ("imagefolder", "dice")


class DatasetError(ValueError):
    """The dataset on disk is not what its format promises; the message names the file."""


@dataclass(frozen=True)
class Sample:
    """One image: a file path, or a labelme JSON whose ``imageData`` holds the image."""

    source: str
    label: int
    embedded: bool = False


@dataclass(frozen=True)
class ClassificationData:
    class_names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]


def read_classification(path: str | Path, fmt: str, val_split: float, seed: int) -> ClassificationData:
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} does not exist or is not a folder")
    if fmt == "imagefolder":
        data = read_imagefolder(root, val_split, seed)
    elif fmt == "dice":
        data = read_dice(root, val_split, seed)
    else:
        raise DatasetError(f"Unknown dataset format '{fmt}'. Valid: {', '.join(FORMATS)}")
    if len(data.class_names) < 2:
        raise DatasetError(f"{root}: a classifier needs at least 2 classes, found {list(data.class_names)}")
    if not data.val:
        raise DatasetError(f"{root}: no validation images (add more images per class or a val/ folder)")
    log.info(
        "dataset %s: %d classes, %d train / %d val images",
        root,
        len(data.class_names),
        len(data.train),
        len(data.val),
    )
    return data


def read_imagefolder(root: Path, val_split: float, seed: int) -> ClassificationData:
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DatasetError(
            f"imagefolder dataset {root} has no train/ folder (expected train/<class>/<image>)"
        )
    class_names = tuple(
        sorted(d.name for d in train_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    )
    if not class_names:
        raise DatasetError(f"{train_dir} has no class folders (expected train/<class>/<image>)")
    index = {name: i for i, name in enumerate(class_names)}
    train = _folder_samples(train_dir, class_names, index)

    val_dir = root / "val"
    val: list[Sample] = []
    if val_dir.is_dir():
        extra = sorted(
            d.name for d in val_dir.iterdir() if d.is_dir() and d.name not in index and d.name[0] != "."
        )
        if extra:
            raise DatasetError(f"{val_dir} has classes that train/ lacks: {', '.join(extra)}")
        present = tuple(name for name in class_names if (val_dir / name).is_dir())
        val = _folder_samples(val_dir, present, index, require_images=False)
        if not val:
            log.warning("%s has no images; splitting train/ instead", val_dir)
    if not val:
        train, val = stratified_split(train, val_split, seed)
    return ClassificationData(class_names, tuple(train), tuple(val))


def read_dice(root: Path, val_split: float, seed: int) -> ClassificationData:
    files = sorted(p for p in root.rglob("*.json") if not any(part.startswith(".") for part in p.parts))
    if not files:
        raise DatasetError(f"dice dataset {root} has no labelme .json files")
    labelled = [_labelme_sample(f) for f in files]
    class_names = tuple(sorted({label for label, _, _ in labelled}))
    index = {name: i for i, name in enumerate(class_names)}
    samples = [Sample(source, index[label], embedded) for label, source, embedded in labelled]
    train, val = stratified_split(samples, val_split, seed)
    return ClassificationData(class_names, tuple(train), tuple(val))


def stratified_split(samples: list[Sample], val_split: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out ``val_split`` of each class (at least one, never the last one) for validation."""
    rng = random.Random(seed)
    by_class: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_class[sample.label].append(sample)
    train: list[Sample] = []
    val: list[Sample] = []
    for label in sorted(by_class):
        group = sorted(by_class[label], key=lambda s: s.source)
        rng.shuffle(group)
        n_val = min(max(1, round(len(group) * val_split)), len(group) - 1)
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, val


def open_image(sample: Sample):
    """The sample's image as an RGB PIL image (first frame of an animation)."""
    from PIL import Image

    try:
        if sample.embedded:
            with open(sample.source, encoding="utf-8") as f:
                data = base64.b64decode(json.load(f)["imageData"])
            image = Image.open(io.BytesIO(data))
        else:
            image = Image.open(sample.source)
        return image.convert("RGB")
    except Exception as exc:
        raise DatasetError(f"cannot read image {sample.source}: {exc}") from exc


def _folder_samples(split_dir: Path, classes, index, require_images: bool = True) -> list[Sample]:
    samples = []
    for name in classes:
        files = sorted(
            p
            for p in (split_dir / name).rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not files and require_images:
            exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
            raise DatasetError(f"class folder {split_dir / name} has no images ({exts})")
        samples.extend(Sample(str(p), index[name]) for p in files)
    return samples


def _labelme_sample(path: Path) -> tuple[str, str, bool]:
    """(class name, image source, embedded) of one labelme file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable JSON file: {exc}") from exc
    if not isinstance(doc, dict) or not {"imagePath", "imageData", "shapes", "flags"} & doc.keys():
        raise DatasetError(f"{path}: not a labelme file (expected imagePath, imageData, shapes, flags)")

    flags = doc.get("flags") or {}
    if not isinstance(flags, dict):
        raise DatasetError(f"{path}: 'flags' must be a mapping of class name to true/false")
    chosen = sorted(name for name, on in flags.items() if on is True)
    if len(chosen) > 1:
        raise DatasetError(f"{path}: more than one class flag is true ({', '.join(chosen)})")
    shapes = [s for s in doc.get("shapes") or [] if isinstance(s, dict) and s.get("label")]
    if chosen:
        label = chosen[0]
    elif shapes:
        label = str(shapes[0]["label"])
    else:
        raise DatasetError(f"{path}: no label (no flag set to true and no shape with a label)")

    if doc.get("imageData"):
        return label, str(path), True
    image_path = str(doc.get("imagePath") or "").replace("\\", "/")
    image = (path.parent / image_path).resolve()
    if not image_path or not image.is_file():
        raise DatasetError(f"{path}: image '{image_path}' not found and the file has no imageData")
    return label, str(image), False
