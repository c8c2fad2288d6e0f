"""``masks``: semantic segmentation as class-id images. ``{train,val}/images/<image>`` +
``{train,val}/masks/<same relative path and stem>.png``, each mask pixel a class id, 255 marking
ignored pixels; optional ``classes.txt`` in the root (one name per line, id = line index).

Every pair's headers are read: a mask must be single-channel (mode L, P — the palette index is
the class id —, I;16 or I) and have its image's size; the record's size is the mask's.

Class ids need pixels. Without ``classes.txt`` every mask is decoded and the classes are
``class_0`` .. ``class_<max id>``; with it, masks are decoded to check their ids against the
list: all of them with decode "all", ``SUBMIT_SAMPLE`` per split (seeded) with "sample", none
with "none".
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import SUBMIT_SAMPLE, list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord
from adapters.datasets.walk import check_cancelled

LAYOUT = "{train,val}/images/<image> + {train,val}/masks/<image stem>.png (+ classes.txt)"
IGNORE_ID = 255
MASK_MODES = ("L", "P", "I", "I;16", "I;16L", "I;16B", "I;16N")


@register_format("masks", tasks=("semantic_segmentation",), layout=LAYOUT)
def read_masks(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if not (root / "train" / "images").is_dir():
        problems.error(root, f"has no train/images/ folder (expected {LAYOUT})", kind="layout")
        return None
    names_file = root / "classes.txt"
    names = _read_names(names_file, problems) if names_file.is_file() else None
    if names_file.is_file() and names is None:
        return None
    splits: dict[str, list[ImageRecord]] = {}
    for split in SPLITS:
        images_dir, masks_dir = root / split / "images", root / split / "masks"
        if split == "val" and not (root / split).is_dir():
            continue
        if not images_dir.is_dir():
            problems.error(root / split, f"has no images/ folder (expected {LAYOUT})", kind="layout")
            continue
        if not masks_dir.is_dir():
            problems.error(masks_dir, f"is missing: each image in {split}/images/ needs a class-id mask "
                           f"{split}/masks/<image stem>.png", kind="no-masks-folder")
            continue
        splits[split] = _pairs(images_dir, masks_dir, problems)
    if "train" not in splits:
        return None

    decode_all = names is None or options.decode == "all"
    found: dict[str, list[int]] = {}  # mask -> its pixel values, 255 included
    if decode_all or options.decode == "sample":
        for records in splits.values():
            chosen = records
            if not decode_all and len(records) > SUBMIT_SAMPLE:
                chosen = random.Random(0).sample(records, SUBMIT_SAMPLE)
            for record in chosen:
                check_cancelled()
                ids = _pixel_values(record.mask, problems)
                if ids is not None:
                    found[record.mask] = ids
    if names is None:
        top = max((i for ids in found.values() for i in ids if i != IGNORE_ID), default=-1)
        names = [f"class_{i}" for i in range(top + 1)]
        binary = next((mask for mask, ids in found.items() if ids == [0, IGNORE_ID]), None)
        if top == 0 and binary:
            problems.warning(binary, f"holds only 0 and {IGNORE_ID}; {IGNORE_ID} marks ignored pixels, so the "
                             "dataset has one class. For a binary mask write 1 for the foreground (mask // 255)",
                             kind="binary-mask-255")
    else:
        for mask, ids in found.items():
            over = [i for i in ids if i >= len(names) and i != IGNORE_ID]
            if over:
                problems.error(mask, f"holds class id(s) {', '.join(map(str, over))} but classes.txt lists "
                               f"{len(names)} classes (ids 0..{len(names) - 1}, {IGNORE_ID} = ignore); fix the mask "
                               "or add the classes", kind="class-id")
    return RawDataset(tuple(names), splits)


def _read_names(path: Path, problems: Problems) -> list[str] | None:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(path, f"cannot read it ({exc})", kind="class-names")
        return None
    if not names:
        problems.error(path, "is empty; write one class name per line (line i names class id i)", kind="class-names")
        return None
    return names


def _pairs(images_dir: Path, masks_dir: Path, problems: Problems) -> list[ImageRecord]:
    masks = {str(p) for p in list_images(masks_dir) if p.suffix == ".png"}
    claimed: dict[str, Path] = {}
    records = []
    for image in list_images(images_dir):
        check_cancelled()
        mask = masks_dir / (os.path.splitext(os.path.relpath(image, images_dir))[0] + ".png")
        if str(mask) in claimed:
            problems.error(image, f"shares the stem of {claimed[str(mask)]}, so both would use the mask {mask}; "
                           "rename one", kind="shared-mask")
            continue
        claimed[str(mask)] = image
        if str(mask) not in masks:
            problems.error(image, f"has no mask: expected {mask}; add it or remove the image", kind="missing-mask")
            continue
        record = _record(image, mask, problems)
        if record is not None:
            records.append(record)
    for mask in sorted(masks - claimed.keys()):
        stem = os.path.splitext(os.path.relpath(mask, masks_dir))[0]
        problems.error(mask, f"mask without an image: no {stem}.<image extension> in {images_dir}; add the image "
                       "or remove the mask", kind="orphan-mask")
    return records


def _record(image: Path, mask: Path, problems: Problems) -> ImageRecord | None:
    """The pair's record after its header checks (mode, size), or None after reporting."""
    from PIL import Image

    try:
        with Image.open(mask) as opened:
            mode, size = opened.mode, opened.size
    except Exception as exc:
        problems.error(mask, f"cannot read the mask ({type(exc).__name__}: {exc}); replace it", kind="unreadable-image")
        return None
    if mode not in MASK_MODES:
        problems.error(mask, f"has mode {mode}; a mask must be single-channel (L, P, I;16 or I) with one class id "
                       "per pixel: convert colour masks to class ids and save them as 8-bit grayscale PNG",
                       kind="mask-mode")
        return None
    try:
        with Image.open(image) as opened:
            image_size = opened.size
    except Exception as exc:
        problems.error(image, f"cannot read the image ({type(exc).__name__}: {exc}); replace or remove it",
                       kind="unreadable-image")
        return None
    if size != image_size:
        problems.error(mask, f"is {size[0]}x{size[1]} px but its image {image} is {image_size[0]}x{image_size[1]} "
                       "px; a mask must have its image's size", kind="mask-size")
        return None
    return ImageRecord(str(image), size[0], size[1], mask=str(mask), label_file=str(mask))


def _pixel_values(mask: str, problems: Problems) -> list[int] | None:
    """The sorted distinct values of a mask's pixels, or None after reporting a mask that does not decode."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(mask) as opened:
            pixels = np.asarray(opened)
    except Exception as exc:
        problems.error(mask, f"cannot decode the mask ({type(exc).__name__}: {exc}); replace it",
                       kind="unreadable-image")
        return None
    if pixels.dtype == np.uint8:  # a histogram is several times faster than unique() on 8-bit masks
        values = np.flatnonzero(np.bincount(pixels.ravel(), minlength=256))
    else:
        values = np.unique(pixels)
    if values.size and values[0] < 0:
        problems.error(mask, f"holds negative values (lowest {int(values[0])}); class ids start at 0",
                       kind="class-id")
        return None
    return [int(v) for v in values]
