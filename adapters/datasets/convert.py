"""Converting a dataset to another format: read it with its format's reader, write a new one.

``convert_dataset(src, "coco", "yolo", "object_detection", out)`` reads ``src`` exactly as a
trainer would (``read_dataset``: a bad source raises ``DatasetError`` naming its files), then
writes a new dataset at ``out``. What it guarantees:

- the source is never modified, and ``out`` must be new (or an empty folder): everything is
  written into a hidden folder next to ``out`` and renamed into place at the end, so a failed
  conversion leaves nothing half-written;
- the output always has an explicit train and val split (the one ``read_dataset`` made when
  the source had no val split on disk);
- labels are written as the checks settled them: coordinates that overshoot the image by
  rounding clipped to it, zero-area boxes and exact duplicates dropped (``edges.py``); each such
  change is one of the result's warnings;
- images are hard-linked into the output (copied when linking fails: another file system,
  permissions). A hard link is the same file: edit output images by writing new files, not in
  place. labelme files that embed their image are decoded and written as RGB PNGs;
- file names are kept; when two images of an output folder share a name (or, for YOLO, a stem:
  ``a.jpg`` and ``a.png`` would share ``a.txt``), the later ones get a counter prefix
  (``1_a.jpg``) and their labels follow them.

Targets (see ``writers.py`` for the label details):

===========  =====================================================================  =====================
format       layout written                                                          tasks
===========  =====================================================================  =====================
yolo         ``images/{train,val}/`` + ``labels/{train,val}/<stem>.txt`` + data.yaml  detection, instance
                                                                                     seg., pose, OBB
yolo         ``{train,val}/<class>/<image>`` (ImageFolder, as Ultralytics reads it)  classification
coco         ``annotations/instances_{train,val}.json`` + ``images/{train,val}/``     detection, instance
             (pose: ``person_keypoints_{split}.json``)                               seg., pose
imagefolder  ``{train,val}/<class>/<image>``                                         classification
===========  =====================================================================  =====================
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from adapters.datasets.images import open_image
from adapters.datasets.problems import DatasetError
from adapters.datasets.read import read_dataset
from adapters.datasets.records import SPLITS, Dataset, ImageRecord
from adapters.datasets.split import SplitOptions
from adapters.datasets.writers import coco_document, coco_file_name, yolo_data_yaml, yolo_label_text

#: What each target format can write.
TARGETS: dict[str, tuple[str, ...]] = {
    "yolo": ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection", "image_classification"),
    "coco": ("object_detection", "instance_segmentation", "pose_estimation"),
    "imagefolder": ("image_classification",),
}

#: Note kind -> warning text ({n}: how many times it happened).
NOTES = {
    "crowd-skipped": "{n} crowd/difficult annotation(s) (ignore=True) skipped: a YOLO label has no ignore flag "
                     "(Ultralytics' COCO and VOC converters skip them too)",
    "outside-skipped": "{n} box(es) lay outside the image after clipping to it and were skipped",
    "box-as-polygon": "{n} object(s) without a polygon or mask were written as their box's rectangle",
    "parts-merged": "{n} object(s) with several polygon parts were merged into one polygon each "
                    "(parts joined at their closest points)",
    "mask-regions-dropped": "{n} RLE mask(s) had several separate regions: the largest one's contour was kept",
    "empty-mask-skipped": "{n} RLE mask(s) had no region of 3 pixels or more and were skipped",
    "renamed": "{n} image(s) renamed with a counter prefix: their file name (or stem) repeated in an output folder",
    "embedded-decoded": "{n} image(s) embedded in labelme files were written as PNG files",
}


@dataclass
class ConvertResult:
    """What ``convert_dataset`` wrote. Classification counts one annotation (its label) per image."""

    path: str
    format: str
    task: str
    images: dict[str, int]
    annotations: dict[str, int]
    warnings: list[str] = field(default_factory=list)


def convert_dataset(src, from_format: str, to_format: str, task: str, out, *,
                    split: SplitOptions | None = None) -> ConvertResult:
    """Read ``src`` as ``from_format`` for ``task`` and write it as ``to_format`` at the new folder ``out``."""
    _check_target(to_format, task)
    src_path = Path(src).expanduser().absolute()
    out = Path(out).expanduser().absolute()
    _check_out(out, src_path)
    dataset = read_dataset(src_path, from_format, task, split=split, quiet=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.partial"
    staging.mkdir()
    try:
        result = _write(dataset, to_format, staging, out)
        if out.exists():
            out.rmdir()  # empty (checked above); fails, and cleans up, if something appeared meanwhile
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _check_target(to_format: str, task: str) -> None:
    if to_format not in TARGETS:
        raise DatasetError(f"Unknown target format '{to_format}'. Valid: {', '.join(TARGETS)}")
    if task not in TARGETS[to_format]:
        writers = [name for name, tasks in TARGETS.items() if task in tasks]
        raise DatasetError(f"cannot convert to format '{to_format}' for {task}: '{to_format}' writes "
                           f"{', '.join(TARGETS[to_format])}; for {task} convert to: {', '.join(writers) or 'none'}")


def _check_out(out: Path, src: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out}: exists and is not an empty folder; pick a new folder (a conversion never "
                           "writes into an existing dataset)")
    if out.resolve().is_relative_to(src.resolve()):
        raise DatasetError(f"{out}: the output folder lies inside the source dataset {src}; pick a new folder "
                           "outside it")


def _write(dataset: Dataset, fmt: str, root: Path, final: Path) -> ConvertResult:
    notes: Counter = Counter()
    images: dict[str, int] = {}
    annotations: dict[str, int] = {}
    classify = dataset.task == "image_classification"
    if classify:
        _check_class_folders(dataset)
    for split in SPLITS:
        records = dataset.split(split)
        if classify:
            _place(records, [root / split / dataset.class_names[r.label] for r in records], notes)
            annotations[split] = len(records)
        elif fmt == "yolo":
            names = _place(records, [root / "images" / split] * len(records), notes)
            annotations[split] = _write_yolo_labels(dataset, records, names, root / "labels" / split, notes)
        else:
            names = _place(records, [root / "images" / split] * len(records), notes)
            doc, annotations[split] = coco_document(dataset, records, names)
            path = root / "annotations" / coco_file_name(dataset.task, split)
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(doc), encoding="utf-8")
        images[split] = len(records)
    if fmt == "yolo" and not classify:
        (root / "data.yaml").write_text(yolo_data_yaml(dataset, final), encoding="utf-8")
    warnings = [*dataset.label_fixes, *(NOTES[kind].format(n=n) for kind, n in notes.items() if n)]
    if classify and list(dataset.class_names) != sorted(dataset.class_names):
        warnings.append("class ids follow the sorted class folder names in the output (ImageFolder's order), not "
                        f"the source's order ({', '.join(dataset.class_names)})")
    return ConvertResult(str(final), fmt, dataset.task, images, annotations, warnings)


def _check_class_folders(dataset: Dataset) -> None:
    """Each class becomes a folder of train/ (and val/): its name must be one plain, visible folder name,
    and it needs train images (ImageFolder lists its classes by train/'s folders)."""
    bad = [name for name in dataset.class_names
           if not name.strip() or name.startswith(".") or "/" in name or "\\" in name or "\0" in name]
    if bad:
        raise DatasetError(f"{dataset.root}: class name(s) {', '.join(repr(n) for n in bad)} cannot be folder names "
                           "(empty, hidden, or holding a path separator); rename them in the source and convert again")
    in_train = {r.label for r in dataset.train}
    missing = [name for i, name in enumerate(dataset.class_names) if i not in in_train]
    if missing:
        raise DatasetError(f"{dataset.root}: class(es) {', '.join(missing)} have no train images; an ImageFolder "
                           "dataset lists its classes by its train/<class>/ folders, so they would be lost. Add "
                           "train images for them (or move some from val) and convert again")


def _write_yolo_labels(dataset: Dataset, records: list[ImageRecord], names: list[str], folder: Path,
                       notes: Counter) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for record, name in zip(records, names):
        text, count = yolo_label_text(dataset, record, notes)
        (folder / (os.path.splitext(name)[0] + ".txt")).write_text(text, encoding="utf-8")
        written += count
    return written


def _place(records: list[ImageRecord], folders: list[Path], notes: Counter) -> list[str]:
    """Put each record's image into its output folder; the file names they got, in record order."""
    taken: dict[Path, set[str]] = defaultdict(set)
    names = []
    for record, folder in zip(records, folders):
        wanted = _file_name(record)
        name = _unique(wanted, taken[folder])
        notes["renamed"] += name != wanted
        folder.mkdir(parents=True, exist_ok=True)
        _put(record, folder / name)
        notes["embedded-decoded"] += record.embedded
        names.append(name)
    return names


def _file_name(record: ImageRecord) -> str:
    name = os.path.basename(record.path)
    return os.path.splitext(name)[0] + ".png" if record.embedded else name


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``<n>_name`` with the smallest n whose stem is free (stems compared case-insensitively)."""
    candidate, n = name, 0
    while os.path.splitext(candidate)[0].casefold() in taken:
        n += 1
        candidate = f"{n}_{name}"
    taken.add(os.path.splitext(candidate)[0].casefold())
    return candidate


def _put(record: ImageRecord, dest: Path) -> None:
    if record.embedded:
        open_image(record).save(dest, format="PNG")
        return
    try:
        os.link(record.path, dest)
    except OSError:
        shutil.copy2(record.path, dest)
