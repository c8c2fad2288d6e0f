"""The ``masks`` reader on tiny class-id PNG datasets written here: records, class ids, each error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.datasets import ImageRecord, inspect_dataset, read_dataset

#: A 4x3 mask holding classes 0, 1 and an ignored pixel.
MASK = [[0, 0, 1, 1],
        [0, 1, 1, 255],
        [0, 0, 0, 0]]


def write_pair(root: Path, split: str, stem: str, mask=MASK, image_ext=".jpg", mask_mode=None) -> tuple[Path, Path]:
    values = np.array(mask, dtype=np.uint16 if mask_mode == "I;16" else np.uint8)
    image = root / split / "images" / f"{stem}{image_ext}"
    mask_path = root / split / "masks" / f"{stem}.png"
    for folder in (image.parent, mask_path.parent):
        folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (values.shape[1], values.shape[0]), (10, 120, 40)).save(image)
    picture = Image.fromarray(values)
    if mask_mode == "P":
        picture = picture.convert("P")
        picture.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [128] * (256 * 3 - 9))
    elif mask_mode == "RGB":
        picture = picture.convert("RGB")
    picture.save(mask_path)
    return image, mask_path


def make_masks(root: Path, train=("a", "b"), val=("c",), classes="background\nleaf\n") -> Path:
    for stem in train:
        write_pair(root, "train", stem)
    for stem in val:
        write_pair(root, "val", stem)
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    return root


def test_reads_records_and_keeps_the_val_split_on_disk(tmp_path):
    make_masks(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation", decode="all")
    assert problems.items == []
    assert dataset.class_names == ("background", "leaf")
    assert dataset.val_source == "disk"
    mask = str(tmp_path / "train" / "masks" / "a.png")
    assert dataset.train[0] == ImageRecord(str(tmp_path / "train" / "images" / "a.jpg"), 4, 3, mask=mask,
                                           label_file=mask)
    assert [Path(r.path).name for r in dataset.train] == ["a.jpg", "b.jpg"]
    assert [Path(r.mask).name for r in dataset.val] == ["c.png"]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make_masks(tmp_path, train=("a", "b", "c", "d", "e"), val=())
    dataset = read_dataset(tmp_path, "masks", "semantic_segmentation")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


@pytest.mark.parametrize("mode, mask, names", [
    ("L", MASK, ("class_0", "class_1")),
    ("P", [[0, 2, 2, 255]], ("class_0", "class_1", "class_2")),
    ("I;16", [[0, 1, 3, 255]], ("class_0", "class_1", "class_2", "class_3")),
])
def test_class_names_without_classes_txt_come_from_the_highest_id(tmp_path, mode, mask, names):
    make_masks(tmp_path, classes=None)
    write_pair(tmp_path, "val", "d", mask=mask, mask_mode=mode)
    dataset, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation", decode="none")
    assert problems.items == []
    assert dataset.class_names == names


@pytest.mark.parametrize("decode, errors", [("none", 0), ("sample", 8), ("all", 12)])
def test_decode_option_sets_how_many_masks_are_checked(tmp_path, decode, errors):
    make_masks(tmp_path, train=(), val=())
    for i in range(12):
        write_pair(tmp_path, "train", f"img{i:02}", mask=[[0, 1, 5]])
    _, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation", decode=decode)
    assert len([p for p in problems.errors if p.kind == "class-id"]) == errors


def test_binary_masks_written_as_0_and_255_get_a_hint(tmp_path):
    make_masks(tmp_path, classes=None, train=("a",), val=("b",))
    for split, stem in (("train", "a"), ("val", "b")):
        write_pair(tmp_path, split, stem, mask=[[0, 255], [255, 0]])
    _, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation")
    assert [p.kind for p in problems.warnings] == ["binary-mask-255"]
    assert "mask // 255" in problems.warnings[0].message
    assert [p.kind for p in problems.errors] == ["too-few-classes"]


def _no_masks_folder(root):
    for mask in (root / "train" / "masks").iterdir():
        mask.unlink()
    (root / "train" / "masks").rmdir()


def _image_without_mask(root):
    (root / "train" / "masks" / "b.png").unlink()


def _mask_without_image(root):
    write_pair(root, "train", "z")
    (root / "train" / "images" / "z.jpg").unlink()


def _mask_size(root):
    Image.new("L", (5, 3)).save(root / "train" / "masks" / "a.png")


def _colour_mask(root):
    write_pair(root, "train", "a", mask_mode="RGB")


def _id_above_classes(root):
    write_pair(root, "val", "c", mask=[[0, 1], [2, 7]])


def _two_images_one_mask(root):
    Image.new("RGB", (4, 3)).save(root / "train" / "images" / "b.png")


ERRORS = [
    # (case, change to a valid dataset, file named, words in the message)
    ("missing masks folder", _no_masks_folder, "train/masks", "is missing"),
    ("image without mask", _image_without_mask, "train/images/b.jpg", "expected {root}/train/masks/b.png"),
    ("mask without image", _mask_without_image, "train/masks/z.png", "no z.<image extension>"),
    ("mask size", _mask_size, "train/masks/a.png", "is 5x3 px but its image"),
    ("colour mask", _colour_mask, "train/masks/a.png", "has mode RGB"),
    ("class id above the list", _id_above_classes, "val/masks/c.png", "class id(s) 2, 7 but classes.txt lists 2"),
    ("two images share a stem", _two_images_one_mask, "train/images/b.png", "shares the stem of"),
]


@pytest.mark.parametrize("case, change, file, words", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_their_file(tmp_path, case, change, file, words):
    make_masks(tmp_path)
    change(tmp_path)
    _, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation")
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    assert problems.errors[0].file == str(tmp_path / file)
    assert words.format(root=tmp_path) in problems.errors[0].message


def test_no_train_images_is_a_layout_error(tmp_path):
    (tmp_path / "train" / "masks").mkdir(parents=True)
    _, problems = inspect_dataset(tmp_path, "masks", "semantic_segmentation")
    assert [(p.file, p.kind) for p in problems.errors] == [(str(tmp_path), "layout")]
