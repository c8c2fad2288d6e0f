"""imagefolder and dice for classification, and the split strategies (host env, no torch)."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from PIL import Image

from adapters.datasets import DatasetError, ImageRecord, SplitOptions, inspect_dataset, open_image, read_dataset
from adapters.datasets.problems import Problems
from adapters.datasets.split import make_split

TASK = "image_classification"


def test_imagefolder_without_val_is_split_per_class(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path, per_class=10)
    data = read_dataset(tmp_path, "imagefolder", TASK, split=SplitOptions(val_ratio=0.2, seed=3))
    assert data.class_names == ("blue", "green", "red") and data.val_source == "stratified"
    assert Counter(r.label for r in data.val) == {0: 2, 1: 2, 2: 2}
    assert len(data.train) == 24
    assert not {r.path for r in data.train} & {r.path for r in data.val}
    again = read_dataset(tmp_path, "imagefolder", TASK, split=SplitOptions(val_ratio=0.2, seed=3))
    assert again == data  # the seed fixes the split
    other = read_dataset(tmp_path, "imagefolder", TASK, split=SplitOptions(val_ratio=0.2, seed=4))
    assert {r.path for r in other.val} != {r.path for r in data.val}


def test_imagefolder_with_val_uses_it(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path, per_class=4, val_per_class=2)
    (tmp_path / "train" / "red" / "notes.txt").write_text("not an image")
    data = read_dataset(tmp_path, "imagefolder", TASK, split=SplitOptions(val_ratio=0.5))
    assert len(data.train) == 12 and len(data.val) == 6 and data.val_source == "disk"
    assert all("/val/" in r.path for r in data.val)
    assert open_image(data.val[0]).mode == "RGB"


def test_a_dataset_under_a_dot_directory_reads(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / ".cache" / "cls", per_class=3, val_per_class=1)
    (root / "train" / "red" / ".thumbs").mkdir()
    Image.new("RGB", (4, 4)).save(root / "train" / "red" / ".thumbs" / "hidden.png")
    data = read_dataset(root, "imagefolder", TASK)
    assert len(data.train) == 9 and not any(".thumbs" in r.path for r in data.train)


def test_a_dice_dataset_under_a_dot_directory_reads(tmp_path):
    from tests.fixtures import make_dice

    root = make_dice(tmp_path / "data" / ".cache" / "dice", per_class=4)
    data = read_dataset(root, "dice", TASK, split=SplitOptions(val_ratio=0.25))
    assert len(data.train) + len(data.val) == 12


def _records(labels):
    return [ImageRecord(f"{label}{i}", label=label) for i, label in enumerate(labels)]


@pytest.mark.parametrize(("strategy", "expected_val"), [
    ("stratified", {0: 1, 2: 2}),     # at least one per class, never a class's last image
    ("sequential", None),
    ("random", None),
])
def test_split_strategies(tmp_path, strategy, expected_val):
    records = _records([0, 0, 1, 2, 2, 2])
    options = SplitOptions(strategy=strategy, val_ratio=0.5, seed=0)
    train, val = make_split(records, TASK, options, tmp_path, Problems())
    assert sorted(r.path for r in train + val) == sorted(r.path for r in records)
    if expected_val is not None:
        assert Counter(r.label for r in val) == expected_val and {r.label for r in train} == {0, 1, 2}
    else:
        assert len(val) == 3
    if strategy == "sequential":
        assert [r.path for r in val] == sorted(r.path for r in records)[3:]
    assert make_split(records, TASK, options, tmp_path, Problems()) == (train, val)


def test_split_file_lists_train_images(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "d", per_class=2, val_per_class=0)
    (root / "val").rmdir() if (root / "val").exists() and not any((root / "val").rglob("*.png")) else None
    lines = ["# train images", "train/red/red_0.png", "train/green/green_0.png", str(root / "train/blue/blue_0.png")]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    data = read_dataset(root, "imagefolder", TASK, split=SplitOptions(split_file="train.txt"))
    assert data.val_source == "file"
    assert sorted(os.path.basename(r.path) for r in data.train) == ["blue_0.png", "green_0.png", "red_0.png"]
    assert sorted(os.path.basename(r.path) for r in data.val) == ["blue_1.png", "green_1.png", "red_1.png"]

    (root / "train.txt").write_text("train/red/nope.png\n")
    _, problems = inspect_dataset(root, "imagefolder", TASK, split=SplitOptions(strategy="file",
                                                                                split_file=str(root / "train.txt")))
    [problem] = [p for p in problems.errors if p.kind == "split-file-unknown-image"]
    assert problem.file == str(root / "train.txt") and problem.where == "line 1"


def test_dice_labels_from_flags_or_shapes_and_embedded_images(tmp_path, make_dice):
    make_dice(tmp_path, per_class=6)
    data = read_dataset(tmp_path, "dice", TASK)
    assert data.class_names == ("blue", "green", "magenta", "red", "yellow")
    assert len(data.train) + len(data.val) == 30
    assert {r.label for r in data.val} == set(range(5))
    embedded = [r for r in data.train + data.val if r.embedded]
    assert embedded and all(r.path.endswith(".json") for r in embedded)
    assert open_image(embedded[0]).size == (24, 24)
    for record in data.train + data.val:  # each file's class matches its name
        assert data.class_names[record.label] in os.path.basename(record.path)


def test_dice_converter_layout_with_bare_image_names(tmp_path):
    """images/ + annotations/*.json whose imagePath is a bare file name under images/."""
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    for i, label in enumerate(["cat", "cat", "dog", "dog"]):
        Image.new("RGB", (10, 8), (i * 40, 0, 0)).save(tmp_path / "images" / f"img{i}.jpg")
        doc = {"imagePath": f"img{i}.jpg", "imageData": None, "imageWidth": 10, "imageHeight": 8,
               "flags": {}, "shapes": [{"label": label, "shape_type": "rectangle", "points": [[1, 1], [5, 6]]}]}
        (tmp_path / "annotations" / f"img{i}.json").write_text(json.dumps(doc))
    data = read_dataset(tmp_path, "dice", TASK)
    assert data.class_names == ("cat", "dog")
    paths = {os.path.basename(r.path): r.label for r in data.train + data.val}
    assert paths == {"img0.jpg": 0, "img1.jpg": 0, "img2.jpg": 1, "img3.jpg": 1}
    assert all(r.label_file.startswith(str(tmp_path / "annotations")) for r in data.train + data.val)


@pytest.mark.parametrize(("doc", "message"), [
    ({"imagePath": "x.png", "imageData": None, "shapes": [], "flags": {}}, "no label"),
    ({"imagePath": "x.png", "imageData": None, "shapes": [], "flags": {"a": True, "b": True}}, "more than one"),
    ({"imagePath": "missing.png", "imageData": None, "shapes": [{"label": "a"}], "flags": {}}, "not found"),
    ({"hello": "world"}, "not a labelme file"),
])
def test_bad_dice_files_are_named(tmp_path, doc, message):
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    _, problems = inspect_dataset(tmp_path, "dice", TASK)
    problem = problems.errors[0]  # then: the train split is empty
    assert message in problem.message and problem.file == str(tmp_path / "broken.json")
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path, "dice", TASK)


@pytest.mark.parametrize(("layout", "message", "file"), [
    ({}, "has no train/ folder", ""),
    ({"train/cat/a.png": None}, "needs at least 2 classes", ""),
    ({"train/cat/a.png": None, "train/dog/readme.txt": None}, "class folder has no images", "train/dog"),
    ({"train/cat/a.png": None, "train/dog/b.png": None, "val/cow/c.png": None},
     "class folders that train/ lacks: cow", "val"),
])
def test_bad_imagefolders_say_what_is_wrong(tmp_path, layout, message, file):
    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / rel, format="PNG")
    _, problems = inspect_dataset(tmp_path, "imagefolder", TASK)
    matching = [p for p in problems.errors if message in p.message]
    assert matching, problems.errors
    assert matching[0].file == str(tmp_path / file if file else tmp_path)


def test_missing_path_unknown_format_and_a_task_the_format_cannot_serve(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope", "imagefolder", TASK)
    with pytest.raises(DatasetError, match="Unknown dataset format 'kitti'. Valid: "):
        read_dataset(tmp_path, "kitti", TASK)
    with pytest.raises(DatasetError, match="format 'imagefolder' cannot serve task object_detection.*use: .*coco"):
        read_dataset(tmp_path, "imagefolder", "object_detection")


def test_unreadable_images_are_found_by_decoding(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path, per_class=3, val_per_class=1)
    broken = root / "train" / "red" / "red_1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # a truncated PNG: the header reads, the pixels don't
    _, sampled = inspect_dataset(root, "imagefolder", TASK, decode="all")
    [problem] = sampled.errors
    assert problem.file == str(broken) and "cannot decode" in problem.message
    assert not inspect_dataset(root, "imagefolder", TASK, decode="none")[1].errors
