"""``depth``: monocular depth estimation. ``{train,val}/images/<image>`` + ``{train,val}/depth/<same relative
path and stem>.png`` (16-bit, millimetres) or ``.npy`` (float or integer, metres); 0 marks a pixel without a
measurement (invalid), and so do NaN and infinities in a ``.npy``.

Every pair's headers are read (the ``.npy`` header through a memory map: no pixel is loaded): a PNG depth
map must be single-channel 16-bit (mode ``I;16``, or ``I``: an 8-bit or colour PNG can't hold millimetres),
a ``.npy`` a numeric 2-D array (``H x W``, or ``H x W x 1`` / ``1 x H x W``), and either must have its image's
size; the record's size is the image's. Depth values need pixels: with decode "all" every depth map is
decoded, with "sample" ``SUBMIT_SAMPLE`` per split (seeded), with "none" none, and a map without one valid
pixel, or with negative depths, is an error. Depth maps without an image are warned about and not used.

``read_depth`` turns a depth map into metres (float32, 0 where invalid): what the checks and the trainers
read.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import SUBMIT_SAMPLE, file_image_size, list_image_paths, png_header
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord
from adapters.datasets.walk import check_cancelled, walk_paths

if TYPE_CHECKING:  # numpy is imported where a depth map is read: listing a dataset needs none
    import numpy as np

LAYOUT = ("{train,val}/images/<image> + {train,val}/depth/<image stem>.png (16-bit, millimetres) or .npy "
          "(metres); 0 = invalid")
DEPTH_EXTENSIONS = (".png", ".npy")
#: PNG modes that hold 16-bit (or wider) integers: millimetres.
PNG_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
MILLIMETRES_PER_METRE = 1000.0


class DepthMapError(ValueError):
    """A file that reads but is no depth map of this format (an 8-bit PNG, a 3-D array); the message says why."""


@register_format("depth", tasks=("depth_estimation",), layout=LAYOUT)
def read_depth_dataset(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if not (root / "train" / "images").is_dir():
        problems.error(root, f"has no train/images/ folder (expected {LAYOUT})", kind="layout")
        return None
    raw = RawDataset(())
    for split in SPLITS:
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        images_dir, depth_dir = split_dir / "images", split_dir / "depth"
        if not images_dir.is_dir():
            problems.error(split_dir, f"has no images/ folder (expected {LAYOUT})", kind="layout")
            continue
        if not depth_dir.is_dir():
            problems.error(depth_dir, f"is missing: each image in {split}/images/ needs a depth map "
                           f"{split}/depth/<image stem>.png (16-bit, millimetres) or .npy (metres)",
                           kind="no-depth-folder")
            continue
        raw.splits[split] = _pairs(images_dir, depth_dir, problems)
    if "train" not in raw.splits:
        return None
    if options.decode != "none":
        for records in raw.splits.values():
            chosen = records
            if options.decode == "sample" and len(records) > SUBMIT_SAMPLE:
                chosen = random.Random(0).sample(records, SUBMIT_SAMPLE)
            for record in chosen:
                check_cancelled()
                _check_values(record.depth, problems)
    return raw


def read_depth(path: str | Path) -> np.ndarray:
    """A depth map in metres, float32 (H x W), 0 where there is no measurement (0 on disk, NaN, infinities and
    negative values). PNG: 16-bit millimetres; ``.npy``: metres. ``DepthMapError`` for another kind of file."""
    import numpy as np

    depth = _metres(path)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth


def _metres(path: str | Path) -> np.ndarray:
    """The depth map's values in metres as they are (float32)."""
    import numpy as np

    path = str(path)
    if path.lower().endswith(".npy"):
        return _npy_2d(np.load(path, allow_pickle=False)).astype(np.float32)
    from PIL import Image

    with Image.open(path) as opened:
        _check_mode(opened.mode)
        return np.asarray(opened).astype(np.float32) / MILLIMETRES_PER_METRE


def depth_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of a depth map from its header; ``DepthMapError`` when it is no depth map of this format."""
    import numpy as np

    path = str(path)
    if path.lower().endswith(".npy"):
        shape = _npy_2d(np.load(path, mmap_mode="r", allow_pickle=False)).shape
        return int(shape[1]), int(shape[0])
    header = png_header(path)
    if header is not None and header[2:] == (16, 0):  # 16-bit greyscale: what a depth PNG is
        return header[0], header[1]
    from PIL import Image

    with Image.open(path) as opened:
        _check_mode(opened.mode)
        return opened.size


def _check_mode(mode: str) -> None:
    if mode not in PNG_MODES:
        kind = "an 8-bit" if mode in ("L", "P", "1", "LA", "PA") else "a colour" if mode.startswith("RGB") else "a"
        raise DepthMapError(f"is {kind} PNG (mode {mode}); a depth PNG must be single-channel 16-bit, in "
                            "millimetres (or save metres as .npy)")


def _npy_2d(array: np.ndarray) -> np.ndarray:
    """The array as H x W (a trailing or leading axis of 1 dropped); ``DepthMapError`` when it is no numeric 2-D map."""
    import numpy as np

    if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    if array.ndim != 2 or not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DepthMapError(f"holds a {array.dtype} array of shape {tuple(array.shape)}; a depth .npy must be a "
                            "2-D numeric array (height x width) in metres")
    return array


def _pairs(images_dir: Path, depth_dir: Path, problems: Problems) -> list[ImageRecord]:
    present = set(walk_paths(depth_dir, lambda name: name.lower().endswith(DEPTH_EXTENSIONS)))
    images_base, depth_base = os.path.join(os.path.abspath(images_dir), ""), os.path.abspath(depth_dir)
    claimed: dict[str, str] = {}  # depth map stem -> the image that uses it
    used: set[str] = set()
    records = []
    for image in list_image_paths(images_dir):
        check_cancelled()
        stem = os.path.join(depth_base, os.path.splitext(image[len(images_base):])[0])
        if stem in claimed:
            problems.error(image, f"shares the stem of {claimed[stem]}, so both would use the depth map {stem}.png "
                           "or .npy; rename one", kind="shared-depth")
            continue
        claimed[stem] = image
        found = [stem + ext for ext in DEPTH_EXTENSIONS if stem + ext in present]
        used.update(found)
        if not found:
            problems.error(image, f"has no depth map: expected {stem}.png (16-bit, millimetres) or {stem}.npy "
                           "(metres); add it or remove the image", kind="missing-depth")
            continue
        if len(found) > 1:
            problems.error(image, f"has two depth maps, {found[0]} and {found[1]}; keep one", kind="two-depth-maps")
            continue
        record = _record(image, found[0], problems)
        if record is not None:
            records.append(record)
    for depth in sorted(present - used):
        stem = os.path.splitext(os.path.relpath(depth, depth_base))[0]
        problems.warning(depth, f"depth map without an image: no {stem}.<image extension> in {images_dir}; it is "
                         "not used", kind="orphan-depth")
    return records


def _record(image: str, depth: str, problems: Problems) -> ImageRecord | None:
    """The pair's record after its header checks (kind, size), or None after reporting."""
    try:
        width, height = depth_size(depth)
    except DepthMapError as exc:
        problems.error(depth, str(exc), kind="depth-format")
        return None
    except Exception as exc:
        problems.error(depth, f"cannot read the depth map ({type(exc).__name__}: {exc}); replace it",
                       kind="unreadable-depth")
        return None
    try:
        size = file_image_size(image)
    except Exception as exc:
        problems.error(image, f"cannot read the image ({type(exc).__name__}: {exc}); replace or remove it",
                       kind="unreadable-image")
        return None
    if (width, height) != size:
        problems.error(depth, f"is {width}x{height} px but its image {image} is {size[0]}x{size[1]} px; a depth map "
                       "must have its image's size", kind="depth-size")
        return None
    return ImageRecord(str(image), size[0], size[1], depth=str(depth), label_file=str(depth))


def _check_values(path: str | None, problems: Problems) -> None:
    """Report a depth map that does not decode, holds negative depths or has no valid pixel."""
    import numpy as np

    if path is None:
        return
    try:
        depth = _metres(path)
    except Exception as exc:
        problems.error(path, f"cannot decode the depth map ({type(exc).__name__}: {exc}); replace it",
                       kind="unreadable-depth")
        return
    finite = np.isfinite(depth)
    negative = int(np.count_nonzero(depth[finite] < 0))
    if negative:
        problems.error(path, f"holds {negative} negative depth(s); depths are distances in metres, 0 where "
                       "unknown", kind="negative-depth")
    elif not np.count_nonzero(depth[finite]):
        problems.error(path, "has no valid pixel (every depth is 0, NaN or infinite): nothing to learn or score; "
                       "fix the map or remove the image", kind="no-valid-depth")
