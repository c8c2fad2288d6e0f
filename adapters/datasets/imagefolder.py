"""``imagefolder``: ``train/<class>/**/<image>`` and optionally ``val/<class>/**/<image>``.

Class ids follow the sorted names of train/'s class folders (torchvision's order). The same
layout is YOLO's classification dataset, so ``yolo`` with ``image_classification`` reads here.
"""

from __future__ import annotations

from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import IMAGE_EXTENSIONS, list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord

LAYOUT = "train/<class>/<image> and optionally val/<class>/<image>"


@register_format("imagefolder", tasks=("image_classification", "zero_shot_classification"), layout=LAYOUT)
def read_imagefolder(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    train_dir = root / "train"
    if not train_dir.is_dir():
        problems.error(root, f"has no train/ folder (expected {LAYOUT})", kind="layout")
        return None
    class_names = class_folders(train_dir)
    if not class_names:
        problems.error(train_dir, "has no class folders (expected train/<class>/<image>)", kind="layout")
        return None
    index = {name: i for i, name in enumerate(class_names)}
    raw = RawDataset(class_names, {"train": _samples(train_dir, class_names, index, problems, required=True)})
    val = read_val(root / "val", class_names, index, _samples, problems)
    if val is not None:
        raw.splits["val"] = val
    return raw


def class_folders(split_dir: Path) -> tuple[str, ...]:
    """The class folders of a split, sorted (hidden ones left out)."""
    return tuple(sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")))


def read_val(val_dir: Path, class_names: tuple[str, ...], index: dict[str, int], read_split,
             problems: Problems) -> list | None:
    """The records of ``val/<class>/`` read by ``read_split`` (as the train split's), or None without a val
    folder; a class folder train/ lacks is an error."""
    if not val_dir.is_dir():
        return None
    extra = sorted(d.name for d in val_dir.iterdir() if d.is_dir() and d.name not in index
                   and not d.name.startswith("."))
    if extra:
        problems.error(val_dir, f"has class folders that train/ lacks: {', '.join(extra)}; add them to train/ "
                       "or remove them", kind="layout")
    present = tuple(name for name in class_names if (val_dir / name).is_dir())
    return read_split(val_dir, present, index, problems, required=False)


def _samples(split_dir: Path, classes, index, problems: Problems, required: bool) -> list[ImageRecord]:
    records = []
    for name in classes:
        files = list_images(split_dir / name)
        if not files and required:
            exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
            problems.error(split_dir / name, f"class folder has no images ({exts}); add images or remove the folder",
                           kind="empty-class")
        records.extend(ImageRecord(str(p), label=index[name]) for p in files)
    return records
