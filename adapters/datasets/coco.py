"""``coco``: ``annotations/instances_{train,val}.json`` (pose: ``person_keypoints_{train,val}.json``)
with images in ``{train,val}/``, ``images/{train,val}/``, ``images/`` or the root. A suffix after
the split name is kept (``instances_train2017.json`` reads images from ``train2017/``).

Class ids: categories sorted by their COCO ``id``, numbered 0..N-1 in that order (ids 1, 3, 7 →
classes 0, 1, 2). Boxes are ``[x, y, w, h]`` pixels; segmentations are polygons or RLE (kept as
COCO stores them: decode with pycocotools); keypoints ``[x, y, v] * K`` with K from the category.
``iscrowd`` annotations are kept with ``ignore=True``.
"""

from __future__ import annotations

import functools
import gc
import json
import os
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, Annotation, ImageRecord, polygon_box

LAYOUT = "annotations/instances_{train,val}.json + images in {train,val}/ or images/{train,val}/"


def annotation_files(root: Path, task: str) -> dict[str, Path]:
    """The split's annotation file: {"train": path, "val": path} (val when present)."""
    folder = root / "annotations"
    prefixes = ("person_keypoints", "instances") if task == "pose_estimation" else ("instances",)
    found: dict[str, Path] = {}
    for split in SPLITS:
        for prefix in prefixes:
            matches = sorted(folder.glob(f"{prefix}_{split}*.json")) if folder.is_dir() else []
            if matches:
                found[split] = matches[0]
                break
    return found


def _gc_paused(fn):
    """Run ``fn`` with the cyclic garbage collector paused (as Mercurial's ``util.nogc``).

    ``json.load`` makes ~4 tracked objects (dicts, lists) per annotation and ``_records`` ~2 more
    (the Annotation and its box). The full collections that triggers walk the whole document
    again and again (~0.1 s each on 100k annotations) and free nothing: neither makes reference
    cycles. Collection resumes on return; a caller that had it off keeps it off.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()
    return wrapper


@register_format("coco", tasks=("object_detection", "instance_segmentation", "pose_estimation", "zero_shot_detection"),
                 layout=LAYOUT)
@_gc_paused
def read_coco(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    files = annotation_files(root, options.task)
    if "train" not in files:
        wanted = "person_keypoints_train.json (or instances_train.json)" if options.task == "pose_estimation" \
            else "instances_train.json"
        problems.error(root, f"has no annotations/{wanted} (expected {LAYOUT})", kind="layout")
        return None
    raw: RawDataset | None = None
    categories: list | None = None
    for split, path in files.items():
        doc = _load(path, problems)
        if doc is None:
            return None
        cats = _categories(path, doc, options.task, problems)
        if cats is None:
            return None
        if categories is None:
            categories = cats
            kpt = (len(cats[0].get("keypoints") or []), 3) if options.task == "pose_estimation" else None
            raw = RawDataset(tuple(str(c.get("name", c["id"])) for c in cats), kpt_shape=kpt)
        elif [(c["id"], c.get("name")) for c in cats] != [(c["id"], c.get("name")) for c in categories]:
            problems.error(path, f"categories differ from {files['train'].name}'s; both splits need the same "
                           "category ids and names", kind="categories")
            return None
        suffix = path.stem.split(f"_{split}", 1)[1]
        raw.splits[split] = _records(root, split + suffix, path, doc, categories, options.task, raw, problems)
    return raw


def _load(path: Path, problems: Problems) -> dict | None:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        problems.error(path, f"not a readable JSON file ({exc})", kind="bad-json")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("annotations", []), list) or not isinstance(doc.get("categories"), list):
        problems.error(path, "not a COCO file (expected lists `images`, `annotations`, `categories`)", kind="not-coco")
        return None
    return doc


def _categories(path: Path, doc: dict, task: str, problems: Problems) -> list | None:
    cats = [c for c in doc["categories"] if isinstance(c, dict) and isinstance(c.get("id"), int)]
    if len(cats) != len(doc["categories"]) or not cats:
        problems.error(path, "`categories` must be a non-empty list of {id: int, name: str}", kind="categories")
        return None
    cats.sort(key=lambda c: c["id"])
    if len({c["id"] for c in cats}) != len(cats):
        problems.error(path, "category ids repeat; give each category its own id", kind="categories")
        return None
    if task == "pose_estimation":
        counts = {len(c.get("keypoints") or []) for c in cats}
        if counts == {0} or len(counts) != 1:
            problems.error(path, "pose needs every category to list the same non-empty `keypoints` names",
                           kind="categories")
            return None
    return cats


def _image_dir(root: Path, split_name: str, images: list[dict]) -> Path:
    first = next((i["file_name"] for i in images if isinstance(i, dict) and isinstance(i.get("file_name"), str)),
                 None)
    candidates = (root / split_name, root / "images" / split_name, root / "images", root)
    for folder in candidates:
        if first and (folder / first).is_file():
            return folder
    return next((folder for folder in candidates if folder.is_dir()), root)


def _records(root: Path, split_name: str, path: Path, doc: dict, categories: list, task: str, raw: RawDataset,
             problems: Problems) -> list[ImageRecord]:
    images = doc["images"]
    folder = _image_dir(root, split_name, images)
    try:
        present = set(os.listdir(folder))
    except OSError:
        present = set()
    label_file, folder_str = str(path), str(folder)
    by_id: dict = {}
    missing: set = set()  # image ids whose file is missing: reported once, not once per annotation
    for image in images:
        if not isinstance(image, dict):
            problems.error(path, f"image entry {image!r:.80} is not an object", kind="bad-image-entry")
            continue
        image_id, name = image.get("id"), image.get("file_name")
        width, height = image.get("width"), image.get("height")
        if not isinstance(name, str) or not isinstance(image_id, (int, str)):
            problems.error(path, f"image entry {image!r:.80} needs `id` and `file_name`", kind="bad-image-entry")
            continue
        if image_id in by_id:
            problems.error(path, f"image id {image_id} is listed twice", kind="duplicate-image-id")
            continue
        file = os.path.join(folder_str, name)
        if not (name in present or ("/" in name and os.path.isfile(file))):
            problems.error(path, f"image {file} does not exist; add it or remove image id {image_id} and its "
                           "annotations", where=f"image id {image_id}", kind="missing-image")
            missing.add(image_id)
            continue
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            width = height = None
        by_id[image_id] = ImageRecord(file, width, height, label_file=label_file)

    class_of = {c["id"]: i for i, c in enumerate(categories)}
    k = raw.kpt_shape[0] if raw.kpt_shape else 0
    want_masks = task == "instance_segmentation"
    # The loop below runs once per annotation (100k+ in a real COCO file) at every submit, so the
    # common case (a dict, a 4-number bbox, one polygon) is tested with plain comparisons rather
    # than generator expressions; what is accepted and what is reported are unchanged.
    for ann in doc.get("annotations", []):
        if not isinstance(ann, dict):
            problems.error(path, f"annotation {ann!r:.80} is not an object", kind="bad-annotation")
            continue
        where = f"annotation id {ann.get('id')}"
        image_id = ann.get("image_id")
        record = by_id.get(image_id) if isinstance(image_id, (int, str)) else None
        if record is None:
            if not (isinstance(image_id, (int, str)) and image_id in missing):
                problems.error(path, f"points at image id {ann.get('image_id')}, which `images` does not list",
                               where=where, kind="annotation-without-image")
            continue
        category = ann.get("category_id")
        class_id = class_of.get(category) if isinstance(category, int) else None
        if class_id is None:
            problems.error(path, f"category_id {ann.get('category_id')} is not in `categories`", where=where,
                           kind="unknown-category")
            continue
        seg = ann.get("segmentation")
        polygons = seg if isinstance(seg, list) and seg else None
        if polygons is not None and not _flat_polygons(polygons):
            problems.error(path, "segmentation polygons must be lists of x, y pairs (3 points or more)", where=where,
                           kind="bad-polygon")
            continue
        rle = seg if isinstance(seg, dict) else None
        bbox = ann.get("bbox")
        if isinstance(bbox, list) and len(bbox) == 4 and type(bbox[0]) in _NUMBER and type(bbox[1]) in _NUMBER \
                and type(bbox[2]) in _NUMBER and type(bbox[3]) in _NUMBER:
            x, y, w, h = bbox
            box = (x, y, x + w, y + h)
        elif polygons:
            box = polygon_box(polygons)
        else:
            problems.error(path, "has no `bbox` [x, y, w, h] of numbers", where=where, kind="no-bbox")
            continue
        if want_masks and polygons is None and rle is None:
            problems.error(path, "has no `segmentation` (a polygon list or an RLE mask)", where=where,
                           kind="no-segmentation")
            continue
        if rle is not None and (rle.get("size") != [record.height, record.width] and record.height):
            problems.error(path, f"RLE size {rle.get('size')} differs from the image's [height, width] "
                           f"[{record.height}, {record.width}]", where=where, kind="rle-size")
            continue
        keypoints = None
        if k:
            keypoints = ann.get("keypoints")
            if not isinstance(keypoints, list) or len(keypoints) != 3 * k:
                problems.error(path, f"needs `keypoints` with {3 * k} values ({k} keypoints as x, y, v)",
                               where=where, kind="keypoints")
                continue
        record.annotations.append(Annotation(class_id, box, polygons, rle, keypoints, None,
                                             bool(ann.get("iscrowd")), where))
    return list(by_id.values())


#: JSON numbers (``bool`` is an int subclass, so types are compared exactly).
_NUMBER = (int, float)


def _flat_polygons(polygons: list) -> bool:
    """Each polygon is a flat list of x, y pairs, 3 points or more."""
    for p in polygons:
        if not (isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0):
            return False
        try:
            sum(p)  # every value a number (C speed; a string or null raises)
        except TypeError:
            return False
    return True
