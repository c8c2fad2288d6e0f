"""Image files: finding them, their size from the header, opening them, checking they decode.

Pillow is imported only when an image is actually opened, so listing and label checks stay
cheap and the module imports anywhere.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
from pathlib import Path

from adapters.datasets.problems import DatasetError, Problems
from adapters.datasets.records import ImageRecord
from adapters.datasets.walk import check_cancelled, walk_files

IMAGE_EXTENSIONS = frozenset((".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"))
#: Images decoded per split when a job is submitted (``check`` decodes all of them).
SUBMIT_SAMPLE = 8


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted, hidden files and folders skipped.

    Hidden means hidden *below* ``folder``: a dataset kept under a dot-directory still reads.
    Folder links follow the dataset's link rule (``walk.py``).
    """
    return walk_files(folder, is_image)


def _open(record: ImageRecord):
    from PIL import Image

    if record.embedded:
        with open(record.path, encoding="utf-8") as f:
            data = base64.b64decode(json.load(f)["imageData"])
        return Image.open(io.BytesIO(data))
    return Image.open(record.path)


def image_size(record: ImageRecord) -> tuple[int, int]:
    """(width, height) of the record's image, from its header (no decode)."""
    try:
        with _open(record) as image:
            return image.size
    except Exception as exc:
        raise DatasetError(f"{record.path}: cannot read the image ({exc}); replace or remove it") from exc


def open_image(record) -> "Image.Image":  # noqa: F821 - PIL is imported lazily
    """The record's image as an RGB PIL image (first frame of an animation)."""
    try:
        with _open(record) as image:
            return image.convert("RGB")
    except Exception as exc:
        raise DatasetError(f"{record.path}: cannot read the image ({exc}); replace or remove it") from exc


def check_decodes(records: list[ImageRecord], problems: Problems, sample: int | None, seed: int = 0) -> None:
    """Decode ``sample`` images picked at random (all of them when ``sample`` is None)."""
    chosen = records
    if sample is not None and len(records) > sample:
        chosen = random.Random(seed).sample(records, sample)
    for record in chosen:
        check_cancelled()
        for path, embedded in ((record.path, record.embedded), (record.mask, False), (record.lr, False)):
            if path is None:
                continue
            try:
                with _open(ImageRecord(path, embedded=embedded)) as image:
                    image.load()
            except Exception as exc:
                problems.error(path, f"cannot decode the image ({type(exc).__name__}: {exc}); replace or "
                               "remove it", kind="unreadable-image")
