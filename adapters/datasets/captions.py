"""``captions``: image captioning, one or more reference captions per image, in either of two layouts.

- **jsonl** (like ``ocr``): ``{train,val}/images/<image>`` + ``{train,val}/captions.jsonl``, one JSON
  object per line: ``{"file": "<path relative to images/>", "captions": ["<caption>", ...]}``. Blank
  lines are skipped; every other line must name an existing image once, with a non-empty list of
  non-empty captions (whitespace alone counts as empty). Images under ``images/`` that no line lists
  are warned about and not used.
- **COCO captions**: ``annotations/captions_{train,val}*.json`` as COCO publishes them (``images``
  with ``id`` and ``file_name``, ``annotations`` with ``image_id`` and ``caption``), the images in
  ``{train,val}/``, ``images/{train,val}/``, ``images/`` or the root; a suffix after the split name
  is kept (``captions_train2017.json`` reads images from ``train2017/``), as the ``coco`` format
  does. An image's captions are its annotations' in file order; an image without any is warned
  about and not used. ``categories`` are not needed.

A dataset in the COCO layout is read as it is: no conversion to captions.jsonl is needed (a
``datasets convert`` target would write the same records in the other layout). The records are
``CaptionRecord``\\s: ``ImageRecord`` plus ``captions``. No image is opened (a record has the size a COCO file
gives, else none).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from adapters.datasets.coco import _gc_paused, _image_dir
from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.jsonl import entries, image_key, missing_image, present_images, read_splits, warn_unlisted
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord

JSONL = "captions.jsonl"
LAYOUT = ('{train,val}/images/<image> + {train,val}/captions.jsonl ({"file": ..., "captions": [...]} per line), '
          "or annotations/captions_{train,val}.json (COCO captions) + images in {train,val}/ or images/{train,val}/")
LINE_SHAPE = '{"file": "<path relative to images/>", "captions": ["<caption>", ...]}'


@dataclass(slots=True)
class CaptionRecord(ImageRecord):
    """An image and its reference captions (at least one, none empty)."""

    captions: tuple[str, ...] = ()


@register_format("captions", tasks=("image_captioning",), layout=LAYOUT)
@_gc_paused
def read_captions(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    coco = coco_caption_files(root)
    if "train" not in coco or (root / "train" / JSONL).is_file():
        return _read_jsonl(root, problems)
    raw = RawDataset(())
    for split, path in coco.items():
        records = _read_coco(root, split, path, problems)
        if records is None:
            return None
        raw.splits[split] = records
    return raw


def coco_caption_files(root: Path) -> dict[str, Path]:
    """``{"train": path, "val": path}``: each split's ``annotations/captions_<split>*.json`` (val when present)."""
    folder = root / "annotations"
    found = {}
    for split in SPLITS:
        matches = sorted(folder.glob(f"captions_{split}*.json")) if folder.is_dir() else []
        if matches:
            found[split] = matches[0]
    return found


# ---------------------------------------------------------------- {train,val}/captions.jsonl

def _read_jsonl(root: Path, problems: Problems) -> RawDataset | None:
    return read_splits(root, problems, listing=JSONL, layout=LAYOUT, read_split=_read_split,
                       missing="list each image of {split}/images/ as a line " + LINE_SHAPE,
                       no_train=f"has no train/ folder and no annotations/captions_train.json (expected {LAYOUT})")


def _read_split(images_dir: Path, listing: Path, problems: Problems) -> list[ImageRecord]:
    present = present_images(images_dir)
    records: list[ImageRecord] = []
    first_line: dict[str, str] = {}  # image key -> the line that listed it
    for where, name, entry in entries(listing, problems, LINE_SHAPE):
        key = image_key(name)
        if key in first_line:
            problems.error(listing, f"lists {name} again (first on {first_line[key]}); put all of an image's "
                           'captions in one line\'s "captions"', where=where, kind="duplicate-file")
            continue
        first_line[key] = where
        captions = _captions(entry.get("captions"), name, listing, where, problems)
        if captions is None:
            continue
        image = present.get(key)
        if image is None:
            problems.error(listing, missing_image(images_dir, name, key, present), where=where, kind="missing-image")
            continue
        records.append(CaptionRecord(str(image), label_file=str(listing), captions=captions))
    warn_unlisted(present, set(first_line), listing, problems)
    return records


def _captions(value, name: str, listing: Path, where: str, problems: Problems) -> tuple[str, ...] | None:
    """A line's ``captions``, or None after reporting what is wrong with them."""
    if not isinstance(value, list):
        shown = "a single string" if isinstance(value, str) else "missing" if value is None else type(value).__name__
        problems.error(listing, f'needs "captions": a list of caption strings, not {shown} ({LINE_SHAPE})',
                       where=where, kind="bad-captions")
        return None
    if not value:
        problems.error(listing, f'has no captions for {name}; add at least one to "captions" or remove the line',
                       where=where, kind="no-captions")
        return None
    for i, caption in enumerate(value, 1):
        if not isinstance(caption, str):
            problems.error(listing, f"caption {i} of {name} is not a string ({caption!r:.40})", where=where,
                           kind="bad-captions")
            return None
        if not caption.strip():
            problems.error(listing, f"caption {i} of {name} is empty; write it or remove it", where=where,
                           kind="empty-caption")
            return None
    return tuple(value)


# ---------------------------------------------------------------- annotations/captions_{split}.json (COCO)

def _read_coco(root: Path, split: str, path: Path, problems: Problems) -> list[ImageRecord] | None:
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        problems.error(path, f"not a readable JSON file ({exc})", kind="bad-json")
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) \
            or not isinstance(doc.get("annotations"), list):
        problems.error(path, "not a COCO captions file (expected lists `images` and `annotations`, each annotation "
                       "with `image_id` and `caption`)", kind="not-coco")
        return None
    images = doc["images"]
    folder = _image_dir(root, split + path.stem.split(f"_{split}", 1)[1], images)
    try:
        present = set(os.listdir(folder))
    except OSError:
        present = set()
    files: dict = {}  # image id -> its file
    missing: set = set()  # ids whose file is missing: reported once, not once per caption
    for image in images:
        image_id, name = (image.get("id"), image.get("file_name")) if isinstance(image, dict) else (None, None)
        if not isinstance(name, str) or not isinstance(image_id, (int, str)):
            problems.error(path, f"image entry {image!r:.80} needs `id` and `file_name`", kind="bad-image-entry")
            continue
        if image_id in files or image_id in missing:
            problems.error(path, f"image id {image_id} is listed twice", kind="duplicate-image-id")
            continue
        file = os.path.join(folder, name)
        if not (name in present or ("/" in name and os.path.isfile(file))):
            problems.error(path, f"image {file} does not exist; add it or remove image id {image_id} and its "
                           "captions", where=f"image id {image_id}", kind="missing-image")
            missing.add(image_id)
            continue
        files[image_id] = (file, image.get("width"), image.get("height"))
    captions: dict = {image_id: [] for image_id in files}
    for ann in doc["annotations"]:
        where = f"annotation id {ann.get('id')}" if isinstance(ann, dict) else ""
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if not isinstance(image_id, (int, str)) or image_id not in captions:
            if not (isinstance(image_id, (int, str)) and image_id in missing):
                problems.error(path, f"points at image id {image_id}, which `images` does not list", where=where,
                               kind="annotation-without-image")
            continue
        caption = ann.get("caption")
        if not isinstance(caption, str):
            problems.error(path, f"needs `caption`: the caption as a string (image id {image_id})", where=where,
                           kind="bad-captions")
        elif not caption.strip():
            problems.error(path, f"has an empty caption for image id {image_id}; write it or remove the "
                           "annotation", where=where, kind="empty-caption")
        else:
            captions[image_id].append(caption)
    records: list[ImageRecord] = []
    for image_id, (file, width, height) in files.items():
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            width = height = None
        if captions[image_id]:
            records.append(CaptionRecord(file, width, height, label_file=str(path), captions=tuple(captions[image_id])))
        else:
            problems.warning(path, f"image {file} has no captions; it is not used", where=f"image id {image_id}",
                             kind="uncaptioned-image")
    return records
