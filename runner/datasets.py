"""Checks that a dataset folder matches its declared format, before any child starts.

These checks only read the file tree (and labelme JSON for `dice`); the child's loaders do the
real decoding. Errors name the folder or file and say what the format expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
IMAGEFOLDER_LAYOUT = "imagefolder expects train/<class>/<image> and optionally val/<class>/<image>"
DICE_LAYOUT = "dice expects labelme-style JSON files (imagePath plus a label in flags or shapes)"


class DatasetError(ValueError):
    """The dataset does not match its format; the message says what is missing."""


@dataclass(frozen=True)
class DatasetInfo:
    format: str
    class_names: tuple[str, ...]
    num_train: int
    num_val: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def inspect_dataset(path: Path, fmt: str) -> DatasetInfo:
    if not path.exists():
        raise DatasetError(f"'{path}' does not exist on the runner's machine")
    if not path.is_dir():
        raise DatasetError(f"'{path}' is not a folder")
    inspector = _INSPECTORS.get(fmt)
    if inspector is None:
        raise DatasetError(f"no layout check for format '{fmt}'")
    return inspector(path)


def _class_counts(split_dir: Path) -> dict[str, int]:
    counts = {}
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        counts[class_dir.name] = sum(1 for f in class_dir.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    return counts


def _inspect_imagefolder(path: Path) -> DatasetInfo:
    train = path / "train"
    if not train.is_dir():
        raise DatasetError(f"'{path}' has no 'train' folder; {IMAGEFOLDER_LAYOUT}")
    train_counts = _class_counts(train)
    if not train_counts:
        raise DatasetError(f"'{train}' has no class folders; {IMAGEFOLDER_LAYOUT}")
    empty = [name for name, n in train_counts.items() if n == 0]
    if empty:
        raise DatasetError(f"class folder '{train / empty[0]}' has no images "
                           f"({', '.join(sorted(IMAGE_SUFFIXES))})")
    num_val = 0
    val = path / "val"
    if val.is_dir():
        val_counts = _class_counts(val)
        unknown = sorted(set(val_counts) - set(train_counts))
        if unknown:
            raise DatasetError(f"'{val}' has classes that 'train' lacks: {', '.join(unknown)}")
        num_val = sum(val_counts.values())
    return DatasetInfo("imagefolder", tuple(train_counts), sum(train_counts.values()), num_val)


def dice_label(doc: dict) -> str | None:
    """The class of a labelme file: the flag set to true, else the first shape's label."""
    flags = [name for name, on in (doc.get("flags") or {}).items() if on is True]
    if flags:
        return flags[0]
    shapes = doc.get("shapes") or []
    if shapes and isinstance(shapes[0], dict) and shapes[0].get("label"):
        return str(shapes[0]["label"])
    return None


def _inspect_dice(path: Path) -> DatasetInfo:
    files = sorted(path.rglob("*.json"))
    if not files:
        raise DatasetError(f"'{path}' has no .json files; {DICE_LAYOUT}")
    labels: dict[str, int] = {}
    for file in files:
        try:
            doc = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"'{file}' is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or "imagePath" not in doc:
            raise DatasetError(f"'{file}' has no 'imagePath'; {DICE_LAYOUT}")
        label = dice_label(doc)
        if label is None:
            raise DatasetError(f"'{file}' has no label: set one flag to true or give a shape a label")
        if not doc.get("imageData") and not (file.parent / doc["imagePath"]).is_file():
            raise DatasetError(f"'{file}' points at '{doc['imagePath']}', which does not exist next to it")
        labels[label] = labels.get(label, 0) + 1
    return DatasetInfo("dice", tuple(sorted(labels)), len(files), 0)


_INSPECTORS = {"imagefolder": _inspect_imagefolder, "dice": _inspect_dice}
