"""A dataset laid out the way a trainer wants it, inside the job dir, the user's files only read.

Trainers such as Ultralytics and YOLOv7 write caches next to the data they read
(``labels/train.cache``, ``train.cache``). Staging gives them a folder of their own in the job
dir: split folders symlinked to the user's dataset when it already has the trainer's format, a
val split on disk and labels the checks took as they are, otherwise a conversion (images
hardlinked, labels written fresh: clipped to the image, zero-area boxes and duplicates dropped,
see ``edges.py``). A read-only dataset therefore trains, and the user's folder never changes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from adapters.datasets.convert import convert_dataset
from adapters.datasets.read import read_dataset
from adapters.datasets.split import SplitOptions
from adapters.datasets.walk import walk
from adapters.datasets.yolo import split_dirs

SPLITS = ("train", "val")


def stage(src, fmt: str, target: str, task: str, out: Path, split: SplitOptions | None = None) -> Path:
    """``out`` holding the dataset at ``src`` in ``target`` format (``yolo`` or ``imagefolder``)."""
    src, out = Path(src), Path(out)
    if fmt == target or {fmt, target} <= {"yolo", "imagefolder"} and task == "image_classification":
        dataset = read_dataset(src, fmt, task, split=split, quiet=True)
        if dataset.val_source == "disk" and not dataset.label_fixes:
            return link_splits(src, out, task)
    if out.exists() or out.is_symlink():
        shutil.rmtree(out) if out.is_dir() and not out.is_symlink() else out.unlink()
    convert_dataset(src, fmt, target, task, out, split=split)
    return out


def link_splits(root: Path, out: Path, task: str) -> Path:
    """``out`` mirroring the dataset's split folders with links into ``root``; rebuilt each call.

    YOLO: ``out/{images,labels}/{train,val}`` (from either YOLO layout) hold one symlink per file,
    in real folders: trainers resolve folder paths (Ultralytics does), and a linked folder would
    lead their label caches back into the user's dataset. Classification: ``out/{train,val}`` are
    folder symlinks (Ultralytics and torchvision keep the path as given; caches land in ``out/``).
    """
    if out.is_symlink() or out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    if task == "image_classification":
        out.mkdir(parents=True)
        for split in SPLITS:
            (out / split).symlink_to((root / split).absolute(), target_is_directory=True)
        return out
    for split in SPLITS:
        dirs = split_dirs(root, split)
        if dirs is None:
            raise FileNotFoundError(f"yolo dataset {root} has no {split} split any more")
        for kind, source in zip(("images", "labels"), dirs, strict=True):
            _mirror(source.absolute(), out / kind / split, root)
    return out


def _mirror(source: Path, target: Path, root: Path) -> None:
    """``target`` with the folder tree of ``source`` and a symlink per (non-hidden) file; folder
    links of the dataset at ``root`` follow its link rule (``walk.py``)."""
    for dirpath, filenames in walk(source, root):
        folder = target / os.path.relpath(dirpath, source)
        folder.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            if not name.startswith(".") and not name.endswith(".cache"):
                (folder / name).symlink_to(os.path.join(dirpath, name))
