"""The yolo reader: both layouts, every task's label lines, and every check naming its file."""

from __future__ import annotations

import pytest
from PIL import Image

from adapters.datasets import inspect_dataset, read_dataset, to_pixels
from tests.dataset_fixtures import make_yolo


@pytest.mark.parametrize("layout", ["images-first", "split-first"])
def test_detection_boxes_in_both_layouts(tmp_path, layout):
    root = make_yolo(tmp_path, {"train/a": "0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.1 0.1\n", "val/b": "1 0.5 0.5 1 1\n"},
                     layout=layout)
    data = read_dataset(root, "yolo", "object_detection")
    assert data.class_names == ("cat", "dog") and data.val_source == "disk"
    [a], [b] = data.train, data.val
    assert a.normalized and a.label_file.endswith("a.txt")
    assert [(x.class_id, x.box, x.where) for x in a.annotations] == [
        (0, (0.25, 0.25, 0.75, 0.75), "line 1"), (1, pytest.approx((0.2, 0.2, 0.3, 0.3)), "line 2")]
    pixels = to_pixels(a)  # 40x20 image
    assert (pixels.width, pixels.height) == (40, 20)
    assert pixels.annotations[0].box == (10.0, 5.0, 30.0, 15.0)
    assert b.annotations[0].box == (0.0, 0.0, 1.0, 1.0)


def test_segment_pose_obb_and_classify(tmp_path):
    seg = make_yolo(tmp_path / "seg", {"train/a": "1 0.1 0.1 0.9 0.1 0.5 0.8\n", "val/b": "0 0 0 1 0 1 1 0 1\n"})
    [ann] = read_dataset(seg, "yolo", "instance_segmentation").train[0].annotations
    assert ann.class_id == 1 and ann.polygons == [[0.1, 0.1, 0.9, 0.1, 0.5, 0.8]]
    assert ann.box == pytest.approx((0.1, 0.1, 0.9, 0.8))

    names = "names: {0: person}\nkpt_shape: [2, 3]\n"
    pose = make_yolo(tmp_path / "pose", {"train/a": "0 0.5 0.5 0.4 0.4 0.4 0.4 2 0 0 0\n",
                                         "val/b": "0 0.5 0.5 0.2 0.2 0.5 0.5 1 0.5 0.55 2\n"}, names=names)
    data = read_dataset(pose, "yolo", "pose_estimation")
    assert data.kpt_shape == (2, 3) and data.class_names == ("person",)
    assert data.train[0].annotations[0].keypoints == [0.4, 0.4, 2, 0, 0, 0]
    two = make_yolo(tmp_path / "pose2", {"train/a": "0 0.5 0.5 0.4 0.4 0.3 0.3 0.6 0.6\n", "val/b": ""},
                    names="names: [person]\nkpt_shape: [2, 2]\n")
    assert read_dataset(two, "yolo", "pose_estimation").train[0].annotations[0].keypoints == [0.3, 0.3, 2.0,
                                                                                               0.6, 0.6, 2.0]

    obb = make_yolo(tmp_path / "obb", {"train/a": "0 0.2 0.1 0.8 0.3 0.7 0.9 0.1 0.7\n", "val/b": ""})
    [ann] = read_dataset(obb, "yolo", "obb_detection").train[0].annotations
    assert ann.rbox == [0.2, 0.1, 0.8, 0.3, 0.7, 0.9, 0.1, 0.7] and ann.box == pytest.approx((0.1, 0.1, 0.8, 0.9))

    cls = tmp_path / "cls"
    for split, name in (("train", "cat"), ("train", "dog"), ("val", "cat"), ("val", "dog")):
        (cls / split / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(cls / split / name / "x.png")
    assert read_dataset(cls, "yolo", "image_classification").class_names == ("cat", "dog")


def test_class_names_from_classes_txt_or_a_names_mapping(tmp_path):
    root = make_yolo(tmp_path / "a", {"train/a": "2 0.5 0.5 0.1 0.1\n", "val/b": ""}, names=None)
    (root / "classes.txt").write_text("x\ny\nz\n")
    assert read_dataset(root, "yolo", "object_detection").class_names == ("x", "y", "z")
    root = make_yolo(tmp_path / "b", {"train/a": "", "val/b": ""}, names="names: {1: dog, 0: cat}\nnc: 2\n")
    assert read_dataset(root, "yolo", "object_detection").class_names == ("cat", "dog")


LINE_CASES = [
    ("object_detection", "0 0.5 0.5 0.5\n", "4 columns; detection needs 5", "line 1"),
    ("object_detection", "0 0.5 0.5 0.5 0.5\n0 0.5 x 0.5 0.5\n", "not a number", "line 2"),
    ("object_detection", "1.5 0.5 0.5 0.5 0.5\n", "not a whole number", "line 1"),
    ("object_detection", "7 0.5 0.5 0.5 0.5\n", "class id 7 is outside 0..1", "line 1"),
    ("object_detection", "0 0.9 0.5 0.5 0.5\n", "outside the image", "line 1"),
    ("object_detection", "0 0.5 0.5 -0.1 0.5\n", "degenerate box", "line 1"),
    ("instance_segmentation", "0 0.5 0.5 0.5 0.5\n", "instance segmentation needs class + a polygon", "line 1"),
    ("instance_segmentation", "0 0.1 0.1 0.9 0.1 1.2 0.8\n", "outside the image", "line 1"),
    ("obb_detection", "0 0.5 0.5 0.5 0.5\n", "OBB needs 9", "line 1"),
    ("pose_estimation", "0 0.5 0.5 0.5 0.5 0.1 0.1\n", "kpt_shape [2, 3] needs 11", "line 1"),
    ("pose_estimation", "0 0.5 0.5 0.5 0.5 0.1 0.1 2 1.5 0.1 2\n", "keypoint point outside", "line 1"),
]


@pytest.mark.parametrize(("task", "line", "message", "where"), LINE_CASES)
def test_bad_label_lines_name_file_and_line(tmp_path, task, line, message, where):
    good = {"object_detection": "0 0.5 0.5 0.2 0.2", "instance_segmentation": "0 0.1 0.1 0.9 0.1 0.5 0.8",
            "obb_detection": "0 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9",
            "pose_estimation": "0 0.5 0.5 0.2 0.2 0.1 0.1 2 0 0 0"}
    root = make_yolo(tmp_path, {"train/a": good[task] + "\n", "train/bad": line, "val/c": ""},
                     names="names: [cat, dog]\nkpt_shape: [2, 3]\n")
    _, problems = inspect_dataset(root, "yolo", task)
    [problem] = problems.errors
    assert message in problem.message
    assert problem.file == str(root / "labels" / "train" / "bad.txt") and problem.where == where


@pytest.mark.parametrize(("change", "message", "file"), [
    ("orphan", "label file without an image", "labels/train/ghost.txt"),
    ("no-names", "has no class names", ""),
    ("nc", "nc is 3 but names lists 2 classes", "data.yaml"),
    ("no-labels-dir", "but no labels/val/ folder", ""),
    ("no-kpt-shape", "pose needs `kpt_shape", "data.yaml"),
    ("no-train", "has no images/train/ folder", ""),
])
def test_layout_problems_name_their_file(tmp_path, change, message, file):
    root = make_yolo(tmp_path, {"train/a": "0 0.5 0.5 0.2 0.2\n", "val/b": "1 0.5 0.5 0.2 0.2\n"})
    task = "object_detection"
    if change == "orphan":
        (root / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    elif change == "no-names":
        (root / "data.yaml").unlink()
    elif change == "nc":
        (root / "data.yaml").write_text("names: [cat, dog]\nnc: 3\n")
    elif change == "no-labels-dir":
        for p in (root / "labels" / "val").iterdir():
            p.unlink()
        (root / "labels" / "val").rmdir()
    elif change == "no-kpt-shape":
        task = "pose_estimation"
    elif change == "no-train":
        (root / "images" / "train" / "a.png").unlink()
        (root / "images" / "train").rmdir()
    _, problems = inspect_dataset(root, "yolo", task)
    matching = [p for p in problems.errors if message in p.message]
    assert matching, problems.errors
    assert matching[0].file == str(root / file if file else root)


def test_warnings_for_unlabelled_images_and_classes_without_val(tmp_path):
    root = make_yolo(tmp_path, {"train/a": "0 0.5 0.5 0.2 0.2\n1 0.5 0.5 0.2 0.2\n", "train/empty": None,
                                "val/b": "0 0.5 0.5 0.2 0.2\n"})
    data, problems = inspect_dataset(root, "yolo", "object_detection")
    assert not problems.errors
    kinds = {p.kind: p for p in problems.warnings}
    assert kinds["unlabelled-image"].file == str(root / "images" / "train" / "empty.png")
    assert "dog" in kinds["class-without-val"].message


def test_a_dataset_without_val_is_split_reproducibly(tmp_path):
    root = make_yolo(tmp_path, {f"train/{i}": f"{i % 2} 0.5 0.5 0.2 0.2\n" for i in range(10)})
    first = read_dataset(root, "yolo", "object_detection")
    assert first.val_source == "random" and len(first.val) == 2 and len(first.train) == 8
    assert read_dataset(root, "yolo", "object_detection") == first
