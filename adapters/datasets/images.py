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
import zlib
from pathlib import Path

from adapters.datasets.problems import DatasetError, Problems
from adapters.datasets.records import ImageRecord
from adapters.datasets.walk import check_cancelled, walk_files, walk_paths

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


def list_image_paths(folder: Path) -> list[str]:
    """``list_images`` as strings (absolute paths): for readers that key thousands of images by name."""
    return walk_paths(folder, is_image)


def _open(record: ImageRecord):
    from PIL import Image

    if record.embedded:
        with open(record.path, encoding="utf-8") as f:
            data = base64.b64decode(json.load(f)["imageData"])
        return Image.open(io.BytesIO(data))
    return Image.open(record.path)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path) -> tuple[int, int, int, int] | None:
    """``(width, height, bit depth, colour type)`` from a PNG's IHDR chunk (the first 33 bytes, CRC checked), or None
    when the file does not start with a well-formed one: a JPEG, a damaged file (Pillow then reads it, and says what
    is wrong). Reading 33 bytes is several times faster than opening the file with Pillow, which counts when every
    image of a large dataset is sized."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
    except OSError:
        return None
    if (len(head) < 33 or head[:8] != PNG_SIGNATURE or head[8:16] != b"\x00\x00\x00\x0dIHDR"
            or zlib.crc32(head[12:29]) != int.from_bytes(head[29:33], "big")):
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return (width, height, head[24], head[25]) if width and height else None


def file_image_size(path) -> tuple[int, int]:
    """(width, height) of the image file at ``path`` from its header; Pillow's error when it is no image."""
    if (header := png_header(path)) is not None:
        return header[0], header[1]
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def image_size(record: ImageRecord) -> tuple[int, int]:
    """(width, height) of the record's image, from its header (no decode)."""
    try:
        if not record.embedded:
            return file_image_size(record.path)
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
