"""``dice``: labelme-style JSON, one file per image. Two layouts, both read:

- labelme's own: each JSON anywhere under the root, ``imagePath`` relative to the JSON file;
- the platform converter's: ``images/<file>`` + ``annotations/<name>.json`` whose ``imagePath`` is
  a bare file name under ``images/``.

A file may instead embed its image as base64 ``imageData``. Splits: ``train/`` and ``val/``
sub-folders when the root has both, else one pool split by the job's strategy.

Per task: classification takes the flag set to true, else the first shape's label; detection
takes ``rectangle`` shapes (and the box around each ``polygon``); instance segmentation takes
``polygon`` shapes (and each ``rectangle`` as a 4-corner polygon). ``point`` shapes and other
types are not objects for these tasks and are skipped with a warning. Class ids follow the
sorted class names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.problems import Problems
from adapters.datasets.records import Annotation, ImageRecord, polygon_box
from adapters.datasets.walk import check_cancelled, walk_files

LAYOUT = "labelme .json files next to their images, or images/ + annotations/*.json"
LABELME_KEYS = {"imagePath", "imageData", "shapes", "flags"}


@register_format("dice", tasks=("image_classification", "object_detection", "instance_segmentation"), layout=LAYOUT)
def read_dice(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    split_dirs = {s: root / s for s in ("train", "val")}
    if not all(d.is_dir() and _json_files(d) for d in split_dirs.values()):
        split_dirs = {"train": root}
    classify = options.task == "image_classification"
    labelled: dict[str, list] = {}
    names: set[str] = set()
    for split, folder in split_dirs.items():
        files = _json_files(folder)
        if not files and split == "train":
            problems.error(root, f"has no labelme .json files ({LAYOUT})", kind="layout")
            return None
        labelled[split] = []
        for path in files:
            check_cancelled()
            doc = _load(path, problems)
            if doc is None:
                continue
            value = _class_label(path, doc, problems) if classify else _shapes(path, doc, options.task, problems)
            image = value is not None and _image(path, doc, root, problems)
            if not image:
                continue
            names.update([value] if classify else [label for label, _, _ in value])
            labelled[split].append((path, doc, *image, value))

    class_names = tuple(sorted(names))
    index = {name: i for i, name in enumerate(class_names)}
    raw = RawDataset(class_names)
    for split, items in labelled.items():
        records = []
        for path, doc, image, embedded, value in items:
            width, height = _int(doc.get("imageWidth")), _int(doc.get("imageHeight"))
            record = ImageRecord(image, width, height, embedded=embedded, label_file=str(path))
            if classify:
                record.label = index[value]
            else:
                record.annotations = [Annotation(index[label], box, polygons, where=where)
                                      for label, (box, polygons), where in value]
            records.append(record)
        raw.splits[split] = records
    return raw


def _json_files(folder: Path) -> list[Path]:
    return walk_files(folder, lambda name: name.endswith(".json"))


def _load(path: Path, problems: Problems) -> dict | None:
    """The labelme document, or None after reporting the problem."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.error(path, f"not a readable JSON file ({exc}); fix or remove it", kind="bad-json")
        return None
    if not isinstance(doc, dict) or not LABELME_KEYS & doc.keys():
        problems.error(path, "not a labelme file (expected imagePath, imageData, shapes, flags); move other "
                       "JSON files out of the dataset", kind="not-labelme")
        return None
    return doc


def _image(path: Path, doc: dict, root: Path, problems: Problems) -> tuple[str, bool] | None:
    """(image source, embedded): the file imagePath names, or the JSON itself when it embeds the image."""
    if doc.get("imageData"):
        return str(path), True
    image_path = str(doc.get("imagePath") or "").replace("\\", "/")
    if image_path:
        name = os.path.basename(image_path)
        for candidate in (path.parent / image_path, root / "images" / name, path.parent.parent / "images" / name,
                          path.parent / name):
            if candidate.is_file():
                return str(candidate.resolve()), False
    problems.error(path, f"image '{image_path}' not found (looked next to the file and under images/) and the "
                   "file has no imageData; fix imagePath or add the image", kind="missing-image")
    return None


def _class_label(path: Path, doc: dict, problems: Problems) -> str | None:
    flags = doc.get("flags") or {}
    if not isinstance(flags, dict):
        problems.error(path, "'flags' must be a mapping of class name to true/false", kind="bad-flags")
        return None
    chosen = sorted(name for name, on in flags.items() if on is True)
    if len(chosen) > 1:
        problems.error(path, f"more than one class flag is true ({', '.join(chosen)}); set exactly one",
                       kind="bad-flags")
        return None
    if chosen:
        return chosen[0]
    shapes = [s for s in doc.get("shapes") or [] if isinstance(s, dict) and s.get("label")]
    if shapes:
        return str(shapes[0]["label"])
    problems.error(path, "no label (no flag set to true and no shape with a label); label the image or remove "
                   "the file", kind="no-label")
    return None


def _shapes(path: Path, doc: dict, task: str, problems: Problems) -> list:
    """[(label, (box, polygons), where)] for the task's object shapes."""
    out = []
    for i, shape in enumerate(doc.get("shapes") or []):
        where = f"shape {i}"
        if not isinstance(shape, dict) or not shape.get("label"):
            problems.error(path, "shape without a label; give it one or delete it", where=where, kind="bad-shape")
            continue
        kind = shape.get("shape_type") or "polygon"
        try:
            points = [(float(x), float(y)) for x, y in shape.get("points") or []]
        except (TypeError, ValueError):
            problems.error(path, "points must be [x, y] pairs", where=where, kind="bad-shape")
            continue
        flat = [v for point in points for v in point]
        if kind == "rectangle" and len(points) == 2:
            (ax, ay), (bx, by) = points
            box = (min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
            polygons = [[box[0], box[1], box[2], box[1], box[2], box[3], box[0], box[3]]]
        elif kind == "polygon" and len(points) >= 3:
            polygons = [flat]
            box = polygon_box(polygons)
        elif kind in ("rectangle", "polygon"):
            problems.error(path, f"{kind} with {len(points)} point(s) (a rectangle needs 2, a polygon 3 or more)",
                           where=where, kind="bad-shape")
            continue
        else:
            problems.warning(path, f"'{kind}' shapes are not objects for {task}; skipped", where=where,
                             kind=f"skipped-shape-{kind}")
            continue
        out.append((str(shape["label"]), (box, polygons if task == "instance_segmentation" else None), where))
    return out


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None
