"""``sr_pairs``: super-resolution. ``{train,val}/HR/<image>`` + ``{train,val}/LR_x{scale}/<same
relative path>`` (its low-resolution partner), or HR only: then ``ImageRecord.lr`` is None and the
adapter makes the LR image by bicubic downscaling.

The scale is the LR folder's number (``LR_x4`` → 4), else the job's ``scale`` (None when neither
says). A split with several ``LR_x`` folders needs the job's scale to pick one, and a job's scale
must match a split's only LR folder; both splits use one scale. Every HR header is read (the
record's size is the HR size); with decode "sample" or "all" every LR header is read too, and LR
size × scale must equal the HR size exactly (crop HR to a multiple of the scale before
downscaling). LR images without an HR partner are warned about and not used.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord
from adapters.datasets.walk import check_cancelled

LAYOUT = "{train,val}/HR/<image> + {train,val}/LR_x<scale>/<same name> (or HR/ only)"
LR_FOLDER = re.compile(r"^LR_x([1-9][0-9]*)$")


@register_format("sr_pairs", tasks=("super_resolution",), layout=LAYOUT)
def read_sr_pairs(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if not (root / "train" / "HR").is_dir():
        problems.error(root, f"has no train/HR/ folder (expected {LAYOUT})", kind="layout")
        return None
    raw = RawDataset(())
    lr_dirs: dict[str, Path] = {}  # split -> its LR folder, for splits that have one
    for split in SPLITS:
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        if not (split_dir / "HR").is_dir():
            problems.error(split_dir, f"has no HR/ folder (expected {LAYOUT})", kind="layout")
            continue
        chosen = _lr_folder(split_dir, options.scale, problems)
        if chosen is False:
            continue
        scale = options.scale
        if chosen is not None:
            lr_dirs[split] = chosen
            scale = _scale(chosen)
            first = next(iter(lr_dirs.values()))
            if _scale(first) != scale:
                problems.error(chosen, f"has scale {scale} but {first.relative_to(root)} has scale {_scale(first)}; "
                               "both splits need one scale", kind="scale")
                continue
        raw.scale = raw.scale or scale
        raw.splits[split] = _pairs(split_dir / "HR", chosen, scale, options.decode != "none", problems)
    return raw if "train" in raw.splits else None


def _scale(lr_dir: Path) -> int:
    return int(LR_FOLDER.match(lr_dir.name).group(1))


def _lr_folder(split_dir: Path, wanted: int | None, problems: Problems) -> Path | None | bool:
    """The split's LR folder, None for an HR-only split, False after reporting an ambiguity."""
    found = {int(m.group(1)): split_dir / name for name in sorted(os.listdir(split_dir))
             if (m := LR_FOLDER.match(name)) and (split_dir / name).is_dir()}
    if not found:
        return None
    listed = ", ".join(f"LR_x{s}/" for s in sorted(found))
    if wanted is not None:
        if wanted in found:
            return found[wanted]
        problems.error(split_dir, f"has {listed} but the job's scale is {wanted}; add LR_x{wanted}/ or set the "
                       f"scale to {' or '.join(map(str, sorted(found)))}", kind="scale")
        return False
    if len(found) > 1:
        problems.error(split_dir, f"has several LR folders ({listed}); set the job's scale to pick one",
                       kind="scale")
        return False
    return next(iter(found.values()))


def _pairs(hr_dir: Path, lr_dir: Path | None, scale: int | None, check_sizes: bool,
           problems: Problems) -> list[ImageRecord]:
    lr_present = {str(p) for p in list_images(lr_dir)} if lr_dir is not None else set()
    paired: set[str] = set()
    records = []
    for hr in list_images(hr_dir):
        check_cancelled()
        lr = None
        if lr_dir is not None:
            lr = lr_dir / os.path.relpath(hr, hr_dir)
            if str(lr) not in lr_present:
                problems.error(hr, f"has no LR partner: expected {lr}; add it or remove the HR image",
                               kind="missing-lr")
                continue
            paired.add(str(lr))
        size = _header_size(hr, problems)
        if size is None:
            continue
        if lr is not None and check_sizes:
            lr_size = _header_size(lr, problems)
            if lr_size is None:
                continue
            if (lr_size[0] * scale, lr_size[1] * scale) != size:
                problems.error(lr, f"is {lr_size[0]}x{lr_size[1]} px, times {scale} {lr_size[0] * scale}x"
                               f"{lr_size[1] * scale}, but its HR image {hr} is {size[0]}x{size[1]} px; LR must be "
                               f"exactly HR / {scale} (crop HR to a multiple of {scale} first)", kind="lr-size")
                continue
        records.append(ImageRecord(str(hr), size[0], size[1], lr=None if lr is None else str(lr)))
    for orphan in sorted(lr_present - paired):
        problems.warning(orphan, f"has no HR partner in {hr_dir}; it is not used", kind="orphan-lr")
    return records


def _header_size(path: Path, problems: Problems) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as opened:
            return opened.size
    except Exception as exc:
        problems.error(path, f"cannot read the image ({type(exc).__name__}: {exc}); replace or remove it",
                       kind="unreadable-image")
        return None
