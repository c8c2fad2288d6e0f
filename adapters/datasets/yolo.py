"""``yolo``: Ultralytics' layout. ``images/{train,val}/`` + ``labels/{train,val}/`` (or
``{train,val}/images/`` + ``{train,val}/labels/``), one ``.txt`` per image with the same relative
path and stem; class names from ``data.yaml`` (``names:`` list or ``{id: name}``) or
``classes.txt`` (one per line). Coordinates are normalized to [0, 1]. One object per line:

- detection: ``c cx cy w h`` (a polygon line is accepted too: its box is used);
- instance segmentation: ``c x1 y1 x2 y2 ...`` (a polygon, 3 points or more);
- pose: ``c cx cy w h`` + K keypoints of ``x y`` or ``x y v`` (``kpt_shape: [K, 2|3]`` in data.yaml);
- OBB: ``c x1 y1 x2 y2 x3 y3 x4 y4`` (the 4 corners);
- classification: an ImageFolder root (``train/<class>/``, ``val/<class>/``).
"""

from __future__ import annotations

import os
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.imagefolder import read_imagefolder
from adapters.datasets.images import list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, Annotation, ImageRecord, polygon_box

NAME_FILES = ("data.yaml", "data.yml", "dataset.yaml")
LAYOUT = "images/{train,val}/<image> + labels/{train,val}/<image>.txt (or {train,val}/images + {train,val}/labels)"
TASKS = ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection", "image_classification")


def split_dirs(root: Path, split: str) -> tuple[Path, Path] | None:
    """(images dir, labels dir) of a split in either layout, or None if the split is absent."""
    for images, labels in ((root / "images" / split, root / "labels" / split),
                           (root / split / "images", root / split / "labels")):
        if images.is_dir():
            return images, labels
    return None


@register_format("yolo", tasks=TASKS, layout=LAYOUT)
def read_yolo(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if options.task == "image_classification":
        return read_imagefolder(root, options, problems)
    meta, names = read_meta(root, problems)
    if names is None:
        return None
    kpt_shape = None
    if options.task == "pose_estimation":
        kpt_shape = _kpt_shape(root, meta, problems)
        if kpt_shape is None:
            return None
    raw = RawDataset(tuple(names), kpt_shape=kpt_shape)
    broken = False
    for split in SPLITS:
        dirs = split_dirs(root, split)
        if dirs is None:
            if split == "train":
                problems.error(root, f"has no images/train/ folder (expected {LAYOUT})", kind="layout")
                return None
            continue
        images, labels = dirs
        if not labels.is_dir():
            problems.error(root, f"has {images.relative_to(root)}/ but no {labels.relative_to(root)}/ folder "
                           f"(expected {LAYOUT})", kind="layout")
            broken = True
            continue
        raw.splits[split] = _read_split(images, labels, options.task, kpt_shape, problems)
    return None if broken else raw


def read_meta(root: Path, problems: Problems) -> tuple[dict, list[str] | None]:
    """(data.yaml as a dict, class names) — names None after reporting what is wrong."""
    for filename in NAME_FILES:
        path = root / filename
        if path.is_file():
            return _names_from_yaml(path, problems)
    classes = root / "classes.txt"
    if classes.is_file():
        try:
            names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(classes, f"cannot read it ({exc})", kind="class-names")
            return {}, None
        if not names:
            problems.error(classes, "is empty (one class name per line)", kind="class-names")
            return {}, None
        return {}, names
    problems.error(root, "has no class names: add data.yaml with a `names:` list or classes.txt with one name "
                   "per line", kind="class-names")
    return {}, None


def _names_from_yaml(path: Path, problems: Problems) -> tuple[dict, list[str] | None]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.error(path, f"cannot read it as YAML: {exc}", kind="class-names")
        return {}, None
    if not isinstance(doc, dict):
        problems.error(path, "must be a mapping with a `names:` list", kind="class-names")
        return {}, None
    names = doc.get("names")
    if isinstance(names, dict):
        try:
            keyed = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            problems.error(path, "names: keys must be class ids 0..N-1", kind="class-names")
            return doc, None
        if sorted(keyed) != list(range(len(keyed))):
            problems.error(path, f"names: class ids must be 0..{len(keyed) - 1} without gaps", kind="class-names")
            return doc, None
        names = [keyed[k] for k in range(len(keyed))]
    if not isinstance(names, list) or not names:
        problems.error(path, "no `names:` list (or {id: name} mapping) of class names", kind="class-names")
        return doc, None
    nc = doc.get("nc")
    if nc is not None and nc != len(names):
        problems.error(path, f"nc is {nc} but names lists {len(names)} classes; make them agree", kind="class-names")
        return doc, None
    return doc, [str(n) for n in names]


def _kpt_shape(root: Path, meta: dict, problems: Problems) -> tuple[int, int] | None:
    shape = meta.get("kpt_shape")
    if (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
            and shape[0] > 0 and shape[1] in (2, 3)):
        return int(shape[0]), int(shape[1])
    problems.error(root / "data.yaml", "pose needs `kpt_shape: [K, 2]` or `[K, 3]` (keypoints per object, values "
                   f"per keypoint) in data.yaml; found {shape!r}", kind="kpt-shape")
    return None


def _read_split(images: Path, labels: Path, task: str, kpt_shape, problems: Problems) -> list[ImageRecord]:
    records = []
    expected: set[str] = set()
    for image in list_images(images):
        rel = os.path.relpath(image, images)
        label = labels / (os.path.splitext(rel)[0] + ".txt")
        expected.add(str(label))
        record = ImageRecord(str(image), normalized=True, label_file=str(label))
        try:
            text = label.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(label, f"cannot read it ({exc})", kind="unreadable-label")
            text = ""
        record.annotations = _parse(label, text, task, kpt_shape, problems)
        records.append(record)
    for dirpath, dirnames, filenames in os.walk(labels):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if name.endswith(".txt") and not name.startswith(".") and path not in expected:
                problems.error(path, f"label file without an image: no {Path(name).stem}.<ext> in {images}; add the "
                               "image or remove the label file", kind="orphan-label")
    return records


def _parse(path: Path, text: str, task: str, kpt_shape, problems: Problems) -> list[Annotation]:
    anns = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"line {number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.error(path, f"'{line.strip()}' has a value that is not a number", where=where, kind="bad-number")
            continue
        class_id = values[0]
        if class_id != int(class_id):
            problems.error(path, f"class id {fields[0]} is not a whole number", where=where, kind="class-id")
            continue
        ann = _annotation(int(class_id), values[1:], task, kpt_shape)
        if isinstance(ann, str):
            problems.error(path, ann, where=where, kind=f"columns-{task}")
            continue
        ann.where = where
        anns.append(ann)
    return anns


def _annotation(class_id: int, v: list[float], task: str, kpt_shape) -> Annotation | str:
    """The line's object, or what is wrong with its column count."""
    n = len(v) + 1
    if task == "object_detection":
        if len(v) == 4:
            return Annotation(class_id, _cxcywh(v))
        if len(v) >= 6 and len(v) % 2 == 0:
            return Annotation(class_id, polygon_box([v]))
        return f"{n} columns; detection needs 5 (class cx cy w h)"
    if task == "instance_segmentation":
        if len(v) >= 6 and len(v) % 2 == 0:
            return Annotation(class_id, polygon_box([v]), polygons=[v])
        return f"{n} columns; instance segmentation needs class + a polygon (x y pairs, 3 points or more: 7+ columns)"
    if task == "obb_detection":
        if len(v) == 8:
            return Annotation(class_id, polygon_box([v]), rbox=v)
        return f"{n} columns; OBB needs 9 (class x1 y1 x2 y2 x3 y3 x4 y4)"
    k, d = kpt_shape
    if len(v) != 4 + k * d:
        return f"{n} columns; pose with kpt_shape [{k}, {d}] needs {5 + k * d} (class cx cy w h + {k}x{d} keypoint values)"
    points = v[4:]
    if d == 2:
        keypoints = [x for i in range(0, len(points), 2) for x in (points[i], points[i + 1], 2.0)]
    else:
        keypoints = points
    return Annotation(class_id, _cxcywh(v[:4]), keypoints=keypoints)


def _cxcywh(v) -> tuple[float, float, float, float]:
    cx, cy, w, h = v[0], v[1], v[2], v[3]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
