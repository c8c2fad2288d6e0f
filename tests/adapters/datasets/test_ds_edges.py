"""Coordinates at the image's edge (``edges.py``): rounding overshoots are clipped with a warning,
zero-area boxes and exact duplicates are dropped, anything further is still an error naming its
file and line; the same rule in every reader, in ``--strict``, in conversions and in staging."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image

from adapters.datasets import DatasetError, convert_dataset, inspect_dataset, read_dataset
from adapters.datasets.stage import stage
from runner.cli import main
from tests.dataset_fixtures import (EDGE_BOXES, add_edge_labels, ann, make_coco, make_voc, make_yolo, make_yolo_task,
                                    voc_xml, write_xml)

SQUARE = (64, 64)


def kinds(problems) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in problems.items:
        out.setdefault(p.kind, []).append(p)
    return out


# --------------------------------------------------------------------------- YOLO


def test_yolo_boxes_rounded_at_each_of_the_four_edges_are_clipped_with_one_warning(tmp_path):
    root = make_yolo(tmp_path, {"train/a": EDGE_BOXES, "val/b": "1 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    data, problems = inspect_dataset(root, "yolo", "object_detection")
    assert not problems.errors
    [warning] = kinds(problems)["clipped-to-image"]
    assert warning.message.startswith("4 boxes clipped to the image by ≤ 0.0005% of the image side")
    assert f"first at {root / 'labels' / 'train' / 'a.txt'}:line 1" in warning.message
    boxes = [a.box for a in data.train[0].annotations]
    assert boxes[0][0] == 0 and boxes[1][2] == 1.0 and boxes[2][1] == 0 and boxes[3][3] == 1.0
    assert all(0 <= v <= 1 for box in boxes for v in box)
    assert boxes[0][2] == pytest.approx(18 / 64, abs=1e-5)  # only the overshooting corner moved
    assert data.label_fixes == (warning.message,)


def test_the_issue_line_a_square_touching_the_left_edge(tmp_path):
    root = make_yolo(tmp_path, {"train/121": "1 0.5 0.5 0.2 0.2\n0 0.14062 0.35156 0.28125 0.35938\n",
                                "val/b": "0 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    data = read_dataset(root, "yolo", "object_detection")
    assert data.train[0].annotations[1].box[0] == 0 and data.label_fixes


def test_strict_keeps_exact_coordinates_an_error(tmp_path):
    root = make_yolo(tmp_path, {"train/a": EDGE_BOXES, "val/b": "1 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    _, problems = inspect_dataset(root, "yolo", "object_detection", strict=True)
    errors = problems.errors
    assert [p.where for p in errors] == ["line 1", "line 2", "line 3", "line 4"]
    assert "box [-5e-06, 0.1, 0.281245, 0.4] lies outside the image" in errors[0].message
    assert all(p.file == str(root / "labels" / "train" / "a.txt") for p in errors)


@pytest.mark.parametrize(("size", "clipped"), [((64, 64), True), ((640, 640), False)])
def test_a_normalized_overshoot_past_1_percent_is_measured_in_pixels(tmp_path, size, clipped):
    """0.02 of the side: 1.3 px on a 64 px image (within 2 px), 12.8 px on a 640 px one (an error)."""
    root = make_yolo(tmp_path, {"train/a": "0 0.08 0.5 0.2 0.2\n", "val/b": "0 0.5 0.5 0.2 0.2\n"}, size=size)
    data, problems = inspect_dataset(root, "yolo", "object_detection")
    if clipped:
        assert not problems.errors and "by ≤ 1.28 px" in kinds(problems)["clipped-to-image"][0].message
        assert data.train[0].annotations[0].box[0] == 0
    else:
        [error] = problems.errors
        assert "0.02 past its edge, more than the 0.01 clipped as rounding" in error.message
        assert error.where == "line 1"


def test_zero_area_boxes_and_exact_duplicates_are_dropped_with_a_warning(tmp_path):
    root = make_yolo(tmp_path, {"train/a": "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0 0.2\n0 0.5 0.5 0.2 0.2\n"
                                           "1 0.5 0.5 0.2 0.2\n0 -0.0001 0.5 0.0002 0.2\n",
                                "val/b": "1 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    data, problems = inspect_dataset(root, "yolo", "object_detection")
    assert not problems.errors
    found = kinds(problems)
    assert [p.where for p in found["zero-area-box"]] == ["line 2", "line 5"]  # line 5: zero once clipped
    assert "clipped-to-image" not in found  # what is dropped is not counted as clipped
    [duplicate] = found["duplicate-label"]
    assert duplicate.where == "line 3" and "duplicate of line 1" in duplicate.message
    assert [a.where for a in data.train[0].annotations] == ["line 1", "line 4"]  # line 4: another class
    summary = data.split("train")
    assert len(summary[0].annotations) == 2
    assert "2 zero-area boxes dropped" in " ".join(data.label_fixes)
    assert "1 duplicate label dropped" in " ".join(data.label_fixes)
    _, strict = inspect_dataset(root, "yolo", "object_detection", strict=True)
    assert any("degenerate box" in p.message and p.where == "line 2" for p in strict.errors)


@pytest.mark.parametrize(("task", "line", "message"), [
    ("object_detection", "0 1.5 0.5 0.2 0.2\n", "box [1.4, 0.4, 1.6, 0.6] lies entirely outside the image"),
    ("object_detection", "0 0.5 0.5 -0.2 0.2\n", "negative width or height"),
    ("object_detection", "3 0.5 0.5 0.2 0.2\n", "class id 3 is outside 0..1"),
    ("object_detection", "0 0.5 0.5 0.2\n", "4 columns; detection needs 5"),
    ("instance_segmentation", "0 -0.05 0.1 0.5 0.1 0.5 0.5\n", "polygon point outside the image"),
    ("obb_detection", "0 0.1 0.1 1.1 0.1 1.1 0.5 0.1 0.5\n", "rotated box point outside the image"),
    ("pose_estimation", "0 0.5 0.5 0.2 0.2 0.5 1.2 2 0.5 0.5 2 0.5 0.5 2\n", "keypoint point outside the image"),
])
def test_what_stays_an_error_names_file_and_line(tmp_path, task, line, message):
    good = {"object_detection": "0 0.5 0.5 0.2 0.2", "instance_segmentation": "0 0.1 0.1 0.9 0.1 0.5 0.8",
            "obb_detection": "0 0.1 0.1 0.9 0.1 0.9 0.9 0.1 0.9",
            "pose_estimation": "0 0.5 0.5 0.2 0.2 0.5 0.5 2 0.5 0.5 2 0.5 0.5 2"}[task]
    root = make_yolo(tmp_path, {"train/a": good + "\n" + line, "val/b": ""}, size=SQUARE,
                     names="names: [cat, dog]\nkpt_shape: [3, 3]\n")
    _, problems = inspect_dataset(root, "yolo", task)
    [error] = [p for p in problems.errors if p.file.endswith("a.txt")]
    assert message in error.message and error.where == "line 2"


@pytest.mark.parametrize("task", ["instance_segmentation", "pose_estimation", "obb_detection"])
def test_polygons_keypoints_and_rotated_boxes_are_clipped(tmp_path, task):
    root = add_edge_labels(make_yolo_task(tmp_path / "d", task, train=2, val=1), task)
    data, problems = inspect_dataset(root, "yolo", task)
    assert not problems.errors, problems.errors
    [warning] = kinds(problems)["clipped-to-image"]
    what = {"instance_segmentation": "1 polygon", "pose_estimation": "1 keypoint",
            "obb_detection": "1 rotated box"}[task]
    assert warning.message.startswith(what + " clipped to the image by ≤")
    for record in data.train + data.val:
        for a in record.annotations:
            values = (a.polygons or [[]])[0] + (a.rbox or []) + [v for i, v in enumerate(a.keypoints or [])
                                                                   if i % 3 != 2] + list(a.box)
            assert all(0 <= v <= 1 for v in values), (record.path, a)


# --------------------------------------------------------------------------- pixel formats


def test_coco_box_past_the_width_polygon_vertex_and_keypoint_are_clipped(tmp_path):
    root = make_coco(tmp_path / "det", {"train": [ann(1, bbox=(30, 5, 10.4, 10))], "val": [ann(2)]})
    data, problems = inspect_dataset(root, "coco", "object_detection")
    assert not problems.errors
    assert kinds(problems)["clipped-to-image"][0].message.startswith("1 box clipped to the image by ≤ 0.4 px")
    assert data.train[0].annotations[0].box == (30, 5, 40.0, 15)

    polygon = [[-0.3, 5, 20, 5, 20, 15, 0, 15]]
    root = make_coco(tmp_path / "seg", {"train": [ann(1, bbox=(0, 5, 20, 10), segmentation=polygon)],
                                        "val": [ann(2, segmentation=[[10, 5, 30, 5, 30, 15]])]})
    data, problems = inspect_dataset(root, "coco", "instance_segmentation")
    assert not problems.errors and data.train[0].annotations[0].polygons == [[0, 5, 20, 5, 20, 15, 0, 15]]
    assert "1 polygon clipped to the image by ≤ 0.3 px" in problems.warnings[-1].message

    person = [{"id": 1, "name": "person", "keypoints": ["nose", "tail"]}]
    kps = [41, 10, 2, -5, -5, 0]  # width + 1 px; the unlabelled one keeps its placeholder
    root = make_coco(tmp_path / "pose", {"train": [ann(1, category_id=1, keypoints=kps)],
                                         "val": [ann(2, category_id=1, keypoints=[20, 10, 2, 0, 0, 0])]},
                     categories=person, prefix="person_keypoints")
    data, problems = inspect_dataset(root, "coco", "pose_estimation")
    assert not problems.errors and data.train[0].annotations[0].keypoints == [40.0, 10, 2, -5, -5, 0]
    assert "1 keypoint clipped to the image by ≤ 1 px" in problems.warnings[-1].message


def test_coco_overshoot_beyond_2_px_and_a_box_outside_stay_errors(tmp_path):
    root = make_coco(tmp_path, {"train": [ann(1, bbox=(30, 5, 12.5, 10)), ann(2, bbox=(45, 5, 5, 5)),
                                          ann(3, 2, bbox=(10, 5, 0, 10)), ann(4, 2), ann(5, 2)], "val": [ann(6)]})
    _, problems = inspect_dataset(root, "coco", "object_detection")
    file = str(root / "annotations" / "instances_train.json")
    assert [(p.file, p.where) for p in problems.errors] == [(file, "annotation id 1"), (file, "annotation id 2")]
    assert "2.5 px past its edge, more than the 2 px clipped as rounding" in problems.errors[0].message
    assert "lies entirely outside the image (the image is 40x30 px)" in problems.errors[1].message
    assert {(p.kind, p.where) for p in problems.warnings} >= {("zero-area-box", "annotation id 3"),
                                                             ("duplicate-label", "annotation id 5")}


def test_voc_and_dice_follow_the_same_rule(tmp_path):
    voc = make_voc(tmp_path / "voc", stems=("a", "b"))
    write_xml(voc, "a", voc_xml("a.jpg", size=(8, 6), objects=(("cat", (1, 1, 9, 5), 0),)))
    data, problems = inspect_dataset(voc, "voc", "object_detection")
    assert not problems.errors and data.label_fixes[0].startswith("1 box clipped to the image by ≤ 1 px")
    assert [a.box for r in data.train + data.val for a in r.annotations if r.path.endswith("a.jpg")] == \
        [(1, 1, 8.0, 5)]

    dice = tmp_path / "dice"
    (dice / "images").mkdir(parents=True)
    (dice / "annotations").mkdir()
    for i in range(4):
        Image.new("RGB", (40, 30)).save(dice / "images" / f"{i}.png")
        shapes = [{"label": "cat", "shape_type": "polygon", "points": [[-0.3, 2], [20, 2], [20, 30.8]]}]
        doc = {"imagePath": f"{i}.png", "imageData": None, "imageWidth": 40, "imageHeight": 30, "flags": {},
               "shapes": shapes}
        (dice / "annotations" / f"{i}.json").write_text(json.dumps(doc))
    data, problems = inspect_dataset(dice, "dice", "instance_segmentation")
    assert not problems.errors
    assert kinds(problems)["clipped-to-image"][0].message.startswith("4 polygons clipped to the image by ≤ 0.8 px")
    assert data.train[0].annotations[0].polygons == [[0, 2, 20, 2, 20, 30.0]]


# --------------------------------------------------------------------------- consumers


def test_convert_writes_clipped_coordinates_that_read_back_without_a_warning(tmp_path):
    overshooting = [ann(1, bbox=(29.6, 5, 10.8, 10)), ann(2, 2, bbox=(-0.4, 0, 10, 30.3))]
    src = make_coco(tmp_path / "coco", {"train": overshooting, "val": [ann(3)]})
    result = convert_dataset(src, "coco", "yolo", "object_detection", tmp_path / "yolo")
    assert any(w.startswith("2 boxes clipped to the image by ≤ 0.4 px") for w in result.warnings)
    lines = (tmp_path / "yolo" / "labels" / "train" / "train1.txt").read_text().split()
    cx, w = float(lines[1]), float(lines[3])
    assert cx + w / 2 <= 1 and cx - w / 2 >= 0
    again, problems = inspect_dataset(tmp_path / "yolo", "yolo", "object_detection")
    assert not problems.errors and "clipped-to-image" not in kinds(problems) and not again.label_fixes
    back = convert_dataset(tmp_path / "yolo", "yolo", "coco", "object_detection", tmp_path / "coco2")
    assert not any("clipped" in w for w in back.warnings)


def test_staging_writes_a_clipped_copy_instead_of_links(tmp_path):
    clean = make_yolo(tmp_path / "clean", {"train/a": "0 0.5 0.5 0.2 0.2\n", "val/b": "1 0.5 0.5 0.2 0.2\n"},
                      size=SQUARE)
    out = stage(clean, "yolo", "yolo", "object_detection", tmp_path / "staged-clean")
    assert (out / "labels" / "train" / "a.txt").is_symlink()

    rounded = make_yolo(tmp_path / "rounded", {"train/a": EDGE_BOXES + EDGE_BOXES.splitlines(True)[0],
                                               "val/b": "1 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    out = stage(rounded, "yolo", "yolo", "object_detection", tmp_path / "staged-rounded")
    label = out / "labels" / "train" / "a.txt"
    assert not label.is_symlink() and not (out / "images" / "train" / "a.png").is_symlink()
    rows = [[float(v) for v in line.split()] for line in label.read_text().splitlines()]
    assert len(rows) == 4  # the duplicate is gone
    assert all(0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
               for _, cx, cy, w, h in rows)
    assert (rounded / "labels" / "train" / "a.txt").read_text().count("\n") == 5  # the user's file is unchanged


def test_read_dataset_logs_what_it_clipped_and_a_bad_dataset_still_fails(tmp_path, caplog):
    root = make_yolo(tmp_path / "a", {"train/a": EDGE_BOXES, "val/b": "1 0.5 0.5 0.2 0.2\n"}, size=SQUARE)
    caplog.set_level(logging.WARNING, logger="visionyard.datasets")
    read_dataset(root, "yolo", "object_detection")
    assert "dataset: " in caplog.text and "4 boxes clipped to the image" in caplog.text
    caplog.clear()
    read_dataset(root, "yolo", "object_detection", quiet=True)
    assert not caplog.text
    bad = make_yolo(tmp_path / "b", {"train/a": "0 -0.5 0.5 0.2 0.2\n", "val/b": ""}, size=SQUARE)
    with pytest.raises(DatasetError, match="a.txt:line 1: box .* lies entirely outside the image"):
        read_dataset(bad, "yolo", "object_detection")


def test_datasets_check_counts_clipping_as_a_warning_and_strict_as_an_error(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", {"train": [ann(1, bbox=(30, 5, 10.4, 10)), ann(2, 2)],
                                         "val": [ann(3), ann(4, 2)]})
    argv = ["datasets", "check", str(root), "--format", "coco", "--task", "object_detection"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "1 box clipped to the image by ≤ 0.4 px" in out and "ok, 1 warning(s)" in out
    assert main([*argv, "--strict"]) == 0  # 0.4 px is within strict's 1 px
    capsys.readouterr()
    doc = json.loads((root / "annotations" / "instances_train.json").read_text())
    doc["annotations"][0]["bbox"] = [30, 5, 11.5, 10]
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--strict"]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "annotation id 1: box [30, 5, 41.5, 15] lies outside the image" in out and "1 error(s)" in out
