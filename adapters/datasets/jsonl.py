"""What the formats that list images in a JSON-lines file share (``ocr``, ``captions``, ``vqa``):
``{train,val}/images/<image>`` + ``{train,val}/<listing>.jsonl``, one object per line naming its image
in ``"file"`` (a path relative to ``images/``). Each format reads its own fields from the lines these
functions hand over, already checked as JSON objects with a ``file``."""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from adapters.datasets.formats import RawDataset
from adapters.datasets.images import list_image_paths
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord

#: A format's reader of one split: (its images folder, its listing, the problems) -> its records.
SplitReader = Callable[[Path, Path, Problems], list[ImageRecord]]


def read_splits(root: Path, problems: Problems, *, listing: str, layout: str, missing: str,
                read_split: SplitReader, no_train: str = "") -> RawDataset | None:
    """Each split folder's records (``train`` needed, ``val`` when there is one), or None when the layout is
    wrong; ``missing`` says what the listing holds (``list each image of {split}/images/ as a line ...``)."""
    if not (root / "train").is_dir():
        problems.error(root, no_train or f"has no train/ folder (expected {layout})", kind="layout")
        return None
    raw = RawDataset(())
    for split in SPLITS:
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        images_dir, listed = split_dir / "images", split_dir / listing
        if not images_dir.is_dir():
            problems.error(split_dir, f"has no images/ folder (expected {layout})", kind="layout")
            continue
        if not listed.is_file():
            problems.error(listed, f"is missing: {missing.replace('{split}', split)}", kind="layout")
            continue
        raw.splits[split] = read_split(images_dir, listed, problems)
    return raw if "train" in raw.splits else None


def present_images(images_dir: Path) -> dict[str, str]:
    """The images under ``images_dir`` (their paths), keyed by their path relative to it (as :func:`image_key` keys
    a line's)."""
    base = os.path.join(os.path.abspath(images_dir), "")
    return {path[len(base):].replace(os.sep, "/"): path for path in list_image_paths(images_dir)}


def entries(listing: Path, problems: Problems, line_shape: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(where, file, entry)`` for each line that is a JSON object with a ``"file"`` string (``where``: "line N");
    blank lines are skipped, and every other line is reported as the problem it has, naming ``line_shape``."""
    try:
        lines = listing.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(listing, f"cannot read it as UTF-8 text ({exc})", kind="unreadable-labels")
        return
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            entry = json.loads(line)
        except ValueError as exc:
            problems.error(listing, f"not valid JSON ({exc}); write one object per line: {line_shape}", where=where,
                           kind="bad-json")
            continue
        if not isinstance(entry, dict):
            problems.error(listing, f"is a JSON {type(entry).__name__}, not an object: {line_shape}", where=where,
                           kind="bad-json")
            continue
        name = entry.get("file")
        if not isinstance(name, str) or not name.strip():
            problems.error(listing, f'needs "file": the image path relative to images/ as a string ({line_shape})',
                           where=where, kind="bad-file")
            continue
        yield where, name, entry


def image_key(name: str) -> str:
    """A line's ``file`` as :func:`present_images` keys it: forward slashes, no ``./`` or ``a/../``."""
    return posixpath.normpath(name.strip().replace("\\", "/"))


def missing_image(images_dir: Path, name: str, key: str, present: dict) -> str:
    """Why a line's image is not there, and what would fix it."""
    if (images_dir / key).is_file():
        return f"{images_dir / key} is not an image file (png, jpg, ...); point to an image or remove the line"
    inner = key.removeprefix("images/")
    if inner != key and inner in present:
        return f"image {images_dir / key} does not exist; paths are relative to images/: write {inner!r}"
    return f"image {images_dir / key} does not exist; add it or remove the line"


def warn_unlisted(present: dict[str, str], listed: set[str], listing: Path, problems: Problems,
                  message: str = "is not listed in {listing}; it is not used (add a line for it or remove it)") -> None:
    """A warning for each image no line of ``listing`` names (it is not used)."""
    for key, image in present.items():
        if key not in listed:
            problems.warning(image, message.replace("{listing}", str(listing)), kind="unlisted-image")
