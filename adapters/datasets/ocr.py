"""``ocr``: text recognition. ``{train,val}/images/<image>`` + ``{train,val}/labels.jsonl``, one
JSON object per line: ``{"file": "<path relative to images/>", "text": "<transcription>"}``.

Blank lines are skipped; every other line must name an existing image once, with a non-empty
text (whitespace alone counts as empty). Images under ``images/`` that no line lists are warned
about and not used. No image is opened (the record has no size).
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord

LAYOUT = '{train,val}/images/<image> + {train,val}/labels.jsonl ({"file": ..., "text": ...} per line)'
LINE_SHAPE = '{"file": "<path relative to images/>", "text": "<transcription>"}'


@register_format("ocr", tasks=("ocr",), layout=LAYOUT)
def read_ocr(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if not (root / "train").is_dir():
        problems.error(root, f"has no train/ folder (expected {LAYOUT})", kind="layout")
        return None
    raw = RawDataset(())
    for split in SPLITS:
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        images_dir, labels = split_dir / "images", split_dir / "labels.jsonl"
        if not images_dir.is_dir():
            problems.error(split_dir, f"has no images/ folder (expected {LAYOUT})", kind="layout")
            continue
        if not labels.is_file():
            problems.error(labels, f"is missing: list each image of {split}/images/ as a line {LINE_SHAPE}",
                           kind="layout")
            continue
        raw.splits[split] = _read_split(images_dir, labels, problems)
    return raw if "train" in raw.splits else None


def _read_split(images_dir: Path, labels: Path, problems: Problems) -> list[ImageRecord]:
    present = {p.relative_to(images_dir).as_posix(): p for p in list_images(images_dir)}
    try:
        lines = labels.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(labels, f"cannot read it as UTF-8 text ({exc})", kind="unreadable-labels")
        return []
    records = []
    first_line: dict[str, int] = {}  # image key -> the line that listed it
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            problems.error(labels, f"not valid JSON ({exc}); write one object per line: {LINE_SHAPE}", where=where,
                           kind="bad-json")
            continue
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            problems.error(labels, f'needs "file": the image path relative to images/ as a string ({LINE_SHAPE})',
                           where=where, kind="bad-file")
            continue
        key = _key(name)
        if key in first_line:
            problems.error(labels, f"lists {name} again (first on line {first_line[key]}); keep one line per image",
                           where=where, kind="duplicate-file")
            continue
        first_line[key] = number
        text = entry.get("text")
        if not isinstance(text, str):
            problems.error(labels, f'needs "text": the transcription as a string ({LINE_SHAPE})', where=where,
                           kind="bad-text")
            continue
        if not text.strip():
            problems.error(labels, f'has an empty "text" for {name}; transcribe the image or remove the line',
                           where=where, kind="empty-text")
            continue
        image = present.get(key)
        if image is None:
            problems.error(labels, _missing(images_dir, name, key, present), where=where, kind="missing-image")
            continue
        records.append(ImageRecord(str(image), text=text, label_file=str(labels)))
    for key, image in present.items():
        if key not in first_line:
            problems.warning(image, f"is not listed in {labels}; it is not used (add a line for it or remove it)",
                             kind="unlisted-image")
    return records


def _key(name: str) -> str:
    """The path as ``present`` keys it: forward slashes, no ``./`` or ``a/../``."""
    return posixpath.normpath(name.strip().replace("\\", "/"))


def _missing(images_dir: Path, name: str, key: str, present: dict) -> str:
    if (images_dir / key).is_file():
        return f"{images_dir / key} is not an image file (png, jpg, ...); point to an image or remove the line"
    inner = key.removeprefix("images/")
    if inner != key and inner in present:
        return f"image {images_dir / key} does not exist; paths are relative to images/: write {inner!r}"
    return f"image {images_dir / key} does not exist; add it or remove the line"
