"""The dataset a custom repo reads: layout checks, class names, and staging into the job dir.

Checked on the host before a job is queued, file tree and labels only (no pixels), so a wrong
layout is an error naming the missing folder instead of a crash minutes into a child run.

- ``yolo``: ``images/{train,val}/``, ``labels/{train,val}/*.txt``; class names from ``data.yaml``
  (``names:`` list or dict) or ``classes.txt`` (one per line) in the dataset root.
- ``imagefolder``: ``train/<class>/<image>`` and ``val/<class>/<image>``, the same classes in
  both (torchvision's ImageFolder numbers each split's class folders on its own).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from adapters.datasets import IMAGE_EXTENSIONS, DatasetError, read_classification

YOLO_SPLITS = ("train", "val")
YOLO_NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml")
#: Label files read to check class ids; enough to catch a wrong `names:`, cheap on big datasets.
MAX_LABEL_FILES_CHECKED = 2000

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    class_names: tuple[str, ...]


def inspect_dataset(fmt: str, path: str, seed: int = 0) -> tuple[DatasetInfo | None, Problems]:
    """The dataset's classes, or the problems (as (field path, message)) that stop a run."""
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        return None, [("dataset.path", f"{root} does not exist or is not a folder")]
    if fmt == "yolo":
        return _inspect_yolo(root)
    if fmt == "imagefolder":
        return _inspect_imagefolder(root, seed)
    return None, [("dataset.format", f"unsupported format '{fmt}'")]


def _inspect_yolo(root: Path) -> tuple[DatasetInfo | None, Problems]:
    layout = "expected images/{train,val}/<image> and labels/{train,val}/<image>.txt"
    problems: Problems = []
    for split in YOLO_SPLITS:
        images, labels = root / "images" / split, root / "labels" / split
        if not images.is_dir():
            problems.append(("dataset.path", f"yolo dataset {root} has no images/{split}/ folder ({layout})"))
        elif not _has_file(images, IMAGE_EXTENSIONS):
            problems.append(("dataset.path", f"{images} has no images"))
        if not labels.is_dir():
            problems.append(("dataset.path", f"yolo dataset {root} has no labels/{split}/ folder ({layout})"))
        elif not _has_file(labels, {".txt"}):
            problems.append(("dataset.path", f"{labels} has no .txt label files"))
    names, name_problem = yolo_class_names(root)
    if name_problem:
        problems.append(("dataset.path", name_problem))
    if problems:
        return None, problems
    if (bad := _bad_label(root, len(names))) is not None:
        return None, [("dataset.path", bad)]
    return DatasetInfo(root, tuple(names)), []


def yolo_class_names(root: Path) -> tuple[list[str], str | None]:
    """Class names from data.yaml's ``names:`` or classes.txt, or a message saying what is wrong."""
    for filename in YOLO_NAME_FILES:
        path = root / filename
        if not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            return [], f"{path}: cannot read it as YAML: {exc}"
        names = doc.get("names") if isinstance(doc, dict) else None
        if isinstance(names, dict):
            try:
                keys = sorted(int(k) for k in names)
            except (TypeError, ValueError):
                return [], f"{path}: names: keys must be class ids 0..N-1"
            if keys != list(range(len(keys))):
                return [], f"{path}: names: class ids must be 0..{len(keys) - 1} without gaps"
            names = [names[k] if k in names else names[str(k)] for k in keys]
        if not isinstance(names, list) or not names:
            return [], f"{path}: no `names:` list (or {{id: name}} mapping) of class names"
        nc = doc.get("nc")
        if nc is not None and nc != len(names):
            return [], f"{path}: nc is {nc} but names lists {len(names)} classes"
        return [str(n) for n in names], None
    classes = root / "classes.txt"
    if classes.is_file():
        try:
            text = classes.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [], f"{classes}: cannot read it ({exc})"
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if names:
            return names, None
        return [], f"{classes} is empty (one class name per line)"
    return [], (f"yolo dataset {root} has no class names: add data.yaml with a `names:` list "
                "or classes.txt with one name per line")


def _bad_label(root: Path, num_classes: int) -> str | None:
    """The first label line whose class id is not in 0..num_classes-1 (a sample of the files)."""
    checked = 0
    for split in YOLO_SPLITS:
        for path in sorted((root / "labels" / split).rglob("*.txt")):
            if checked >= MAX_LABEL_FILES_CHECKED:
                return None
            checked += 1
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                return f"{path}: cannot read it: {exc}"
            for number, line in enumerate(lines, 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    class_id = float(fields[0])
                except ValueError:
                    return f"{path}:{number}: '{fields[0]}' is not a class id"
                if class_id != int(class_id) or not 0 <= class_id < num_classes:
                    return (f"{path}:{number}: class id {fields[0]} is outside 0..{num_classes - 1} "
                            f"({num_classes} class names)")
    return None


def _inspect_imagefolder(root: Path, seed: int) -> tuple[DatasetInfo | None, Problems]:
    layout = "expected train/<class>/<image> and val/<class>/<image>"
    if not (root / "val").is_dir():
        return None, [("dataset.path", f"imagefolder dataset {root} has no val/ folder: this repo evaluates "
                       f"on val/ and cannot split train/ itself ({layout})")]
    try:
        data = read_classification(root, "imagefolder", 0.2, seed)
    except DatasetError as exc:
        return None, [("dataset.path", str(exc))]
    missing = [name for name in data.class_names
               if not (root / "val" / name).is_dir() or not _has_file(root / "val" / name, IMAGE_EXTENSIONS)]
    if missing:
        return None, [("dataset.path", f"{root / 'val'} has no images for class(es) {', '.join(missing)}: "
                       "val/ needs every class that train/ has")]
    return DatasetInfo(root, data.class_names), []


def stage_yolo(root: Path, job_dir: Path) -> Path:
    """``job_dir/data`` with images/ and labels/ split folders symlinked to the user's dataset.

    YOLOv7 writes ``labels/<split>.cache`` next to the label folders; with this layout the
    caches land in ``job_dir/data/labels/``, and the user's dataset is only read. Idempotent.
    """
    data = job_dir / "data"
    for kind in ("images", "labels"):
        (data / kind).mkdir(parents=True, exist_ok=True)
        for split in YOLO_SPLITS:
            link = data / kind / split
            target = (root / kind / split).absolute()
            if link.is_symlink() or link.exists():
                if link.is_symlink() and Path(os.readlink(link)) == target:
                    continue
                link.unlink()
            link.symlink_to(target, target_is_directory=True)
    return data


def _has_file(folder: Path, suffixes) -> bool:
    return any(p.suffix.lower() in suffixes and p.is_file() for p in folder.rglob("*"))
