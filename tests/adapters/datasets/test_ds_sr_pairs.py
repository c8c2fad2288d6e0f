"""The ``sr_pairs`` reader on tiny HR/LR folders written here: records, scale, and each error."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from adapters.datasets import ImageRecord, inspect_dataset, read_dataset

HR_SIZE = (8, 4)


def write_image(path: Path, size) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 200)).save(path)
    return path


def make_sr(root: Path, train=("a", "b"), val=("c",), scales=(2,)) -> Path:
    """HR images of HR_SIZE, and for each scale an LR_x<scale> partner of HR_SIZE / scale."""
    for split, stems in (("train", train), ("val", val)):
        for stem in stems:
            write_image(root / split / "HR" / f"{stem}.png", HR_SIZE)
            for scale in scales:
                write_image(root / split / f"LR_x{scale}" / f"{stem}.png", (HR_SIZE[0] // scale, HR_SIZE[1] // scale))
    return root


def test_reads_pairs_and_keeps_the_val_split_on_disk(tmp_path):
    make_sr(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "sr_pairs", "super_resolution", decode="all")
    assert problems.items == []
    assert (dataset.scale, dataset.class_names, dataset.val_source) == (2, (), "disk")
    train = tmp_path / "train"
    assert dataset.train == [ImageRecord(str(train / "HR" / f"{s}.png"), 8, 4, lr=str(train / "LR_x2" / f"{s}.png"))
                             for s in ("a", "b")]
    assert [Path(r.lr).parent.name for r in dataset.val] == ["LR_x2"]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make_sr(tmp_path, train=("a", "b", "c", "d", "e"), val=())
    dataset = read_dataset(tmp_path, "sr_pairs", "super_resolution")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


@pytest.mark.parametrize("job_scale", [None, 3])
def test_hr_only_takes_the_job_scale(tmp_path, job_scale):
    make_sr(tmp_path, scales=())
    dataset, problems = inspect_dataset(tmp_path, "sr_pairs", "super_resolution", scale=job_scale)
    assert problems.items == []
    assert dataset.scale == job_scale
    assert dataset.train[0] == ImageRecord(str(tmp_path / "train" / "HR" / "a.png"), 8, 4, lr=None)


def test_the_job_scale_picks_one_of_several_lr_folders(tmp_path):
    make_sr(tmp_path, scales=(2, 4))
    dataset = read_dataset(tmp_path, "sr_pairs", "super_resolution", scale=4, decode="all")
    assert dataset.scale == 4
    assert {Path(r.lr).parent.name for r in dataset.train + dataset.val} == {"LR_x4"}


def test_lr_sizes_are_not_read_with_decode_none(tmp_path):
    make_sr(tmp_path)
    write_image(tmp_path / "train" / "LR_x2" / "a.png", (3, 2))
    _, problems = inspect_dataset(tmp_path, "sr_pairs", "super_resolution", decode="none")
    assert problems.items == []


def test_lr_images_without_hr_are_warnings(tmp_path):
    make_sr(tmp_path)
    write_image(tmp_path / "train" / "LR_x2" / "extra.png", (4, 2))
    _, problems = inspect_dataset(tmp_path, "sr_pairs", "super_resolution")
    assert problems.errors == []
    assert [p.file for p in problems.warnings] == [str(tmp_path / "train" / "LR_x2" / "extra.png")]


def _no_hr(root):
    for image in (root / "train" / "HR").iterdir():
        image.unlink()
    (root / "train" / "HR").rmdir()


def _hr_without_lr(root):
    (root / "train" / "LR_x2" / "b.png").unlink()


def _two_lr_folders(root):
    for stem in ("a", "b"):
        write_image(root / "train" / "LR_x4" / f"{stem}.png", (2, 1))


def _val_hr_only(root):
    (root / "val" / "LR_x2" / "c.png").unlink()
    (root / "val" / "LR_x2").rmdir()


def _scales_differ(root):
    _val_hr_only(root)
    write_image(root / "val" / "LR_x4" / "c.png", (2, 1))


def _lr_size(root):
    write_image(root / "val" / "LR_x2" / "c.png", (4, 3))


def _val_without_hr(root):
    for image in (root / "val" / "HR").iterdir():
        image.unlink()
    (root / "val" / "HR").rmdir()


ERRORS = [
    # (case, change to a valid dataset, job scale, file named, words in the message)
    ("no HR folder", _no_hr, None, "", "has no train/HR/ folder"),
    ("HR without LR", _hr_without_lr, None, "train/HR/b.png", "expected {root}/train/LR_x2/b.png"),
    ("several LR folders", _two_lr_folders, None, "train", "several LR folders (LR_x2/, LR_x4/)"),
    ("job scale not on disk", _val_hr_only, 3, "train", "has LR_x2/ but the job's scale is 3"),
    ("scales differ between splits", _scales_differ, None, "val/LR_x4", "has scale 4 but train/LR_x2 has scale 2"),
    ("LR size x scale != HR size", _lr_size, None, "val/LR_x2/c.png", "is 4x3 px, times 2 8x6, but its HR image"),
    ("val without HR", _val_without_hr, None, "val", "has no HR/ folder"),
]


@pytest.mark.parametrize("case, change, job_scale, file, words", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_their_file(tmp_path, case, change, job_scale, file, words):
    make_sr(tmp_path)
    change(tmp_path)
    _, problems = inspect_dataset(tmp_path, "sr_pairs", "super_resolution", scale=job_scale)
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    assert problems.errors[0].file == str(tmp_path / file if file else tmp_path)
    assert words.format(root=tmp_path) in problems.errors[0].message
