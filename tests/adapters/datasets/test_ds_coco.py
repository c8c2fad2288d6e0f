"""The coco reader (category remap, polygons, RLE, keypoints, layouts) and dice for objects."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from adapters.datasets import inspect_dataset, read_dataset
from tests.dataset_fixtures import CATEGORIES, ann, make_coco


@pytest.mark.parametrize(("image_dir", "suffix"), [("{split}", ""), ("images/{split}", ""), ("{split}", "2017")])
def test_boxes_and_category_remap_in_each_layout(tmp_path, image_dir, suffix):
    root = make_coco(tmp_path, {"train": [ann(1), ann(2, 2, 7, (0, 0, 40, 30))], "val": [ann(3)]},
                     image_dir=image_dir, suffix=suffix)
    data = read_dataset(root, "coco", "object_detection")
    assert data.class_names == ("car", "bike") and data.val_source == "disk"
    first, second = data.train
    assert first.path == str(root / image_dir.format(split="train" + suffix) / "train1.png")
    assert (first.width, first.height, first.normalized) == (40, 30, False)
    assert [(a.class_id, a.box, a.where) for a in first.annotations] == [(0, (10, 5, 30, 15), "annotation id 1")]
    assert second.annotations[0].class_id == 1 and second.annotations[0].box == (0, 0, 40, 30)


def test_polygons_rle_and_crowd(tmp_path):
    rectangle = np.zeros((30, 40), dtype=np.uint8, order="F")
    rectangle[5:15, 10:30] = 1
    rle = mask_utils.encode(rectangle)
    rle["counts"] = rle["counts"].decode()
    polygon = [[10, 5, 30, 5, 30, 15, 10, 15]]
    root = make_coco(tmp_path, {"train": [ann(1, segmentation=polygon),
                                          ann(2, 2, segmentation=rle, iscrowd=1)], "val": [ann(3, segmentation=polygon)]})
    data = read_dataset(root, "coco", "instance_segmentation")
    poly, crowd = data.train[0].annotations[0], data.train[1].annotations[0]
    assert poly.polygons == polygon and poly.rle is None and not poly.ignore
    assert crowd.rle == rle and crowd.ignore
    assert mask_utils.area(crowd.rle) == 200


def test_keypoints_from_person_keypoints_files(tmp_path):
    person = [{"id": 1, "name": "person", "keypoints": ["nose", "eye"], "skeleton": [[1, 2]]}]
    kps = [20, 10, 2, 0, 0, 0]
    root = make_coco(tmp_path, {"train": [ann(1, category_id=1, keypoints=kps, num_keypoints=1)],
                                "val": [ann(2, category_id=1, keypoints=kps)]},
                     categories=person, prefix="person_keypoints")
    data = read_dataset(root, "coco", "pose_estimation")
    assert data.kpt_shape == (2, 3) and data.train[0].annotations[0].keypoints == kps


CASES = [
    ("missing-image", "image {root}/train/ghost.png does not exist", "image id 9"),
    ("unknown-image", "points at image id 42, which `images` does not list", "annotation id 5"),
    ("unknown-category", "category_id 99 is not in `categories`", "annotation id 5"),
    ("degenerate", "degenerate box [10, 5, 7, 15] (negative width or height)", "annotation id 5"),
    ("outside", "box [30, 5, 50, 15] lies outside the image (the image is 40x30 px)", "annotation id 5"),
    ("no-bbox", "has no `bbox`", "annotation id 5"),
    ("rle-size", "RLE size [3, 3] differs", "annotation id 5"),
    ("keypoints", "needs `keypoints` with 6 values", "annotation id 5"),
]


@pytest.mark.parametrize(("case", "message", "where"), CASES)
def test_problems_name_the_file_and_annotation(tmp_path, case, message, where):
    bad = {"missing-image": ann(5, 9), "unknown-image": ann(5, 42), "unknown-category": ann(5, category_id=99),
           "degenerate": ann(5, bbox=(10, 5, -3, 10)), "outside": ann(5, bbox=(30, 5, 20, 10)),
           "no-bbox": {"id": 5, "image_id": 1, "category_id": 3},
           "rle-size": ann(5, segmentation={"size": [3, 3], "counts": [9]}),
           "keypoints": ann(5, category_id=1, keypoints=[1, 2])}[case]
    extra = [{"id": 9, "file_name": "ghost.png", "width": 4, "height": 4}] if case == "missing-image" else []
    task, categories, prefix = "object_detection", CATEGORIES, "instances"
    if case == "keypoints":
        task, prefix = "pose_estimation", "person_keypoints"
        categories = [{"id": 1, "name": "person", "keypoints": ["a", "b"]}]
    root = make_coco(tmp_path, {"train": [bad], "val": []}, extra_images=extra, categories=categories,
                     prefix=prefix)
    _, problems = inspect_dataset(root, "coco", task)
    train_file = str(root / "annotations" / f"{prefix}_train.json")
    [problem] = [p for p in problems.errors if p.file == train_file]
    assert message.format(root=root) in problem.message and problem.where == where


def test_file_level_problems(tmp_path):
    _, problems = inspect_dataset(tmp_path, "coco", "object_detection")
    assert "has no annotations/instances_train.json" in problems.errors[0].message
    root = make_coco(tmp_path / "a", {"train": [ann(1)], "val": [ann(2)]})
    val = root / "annotations" / "instances_val.json"
    doc = json.loads(val.read_text())
    doc["categories"] = [{"id": 3, "name": "car"}]
    val.write_text(json.dumps(doc))
    [problem] = inspect_dataset(root, "coco", "object_detection")[1].errors
    assert problem.file == str(val) and "categories differ" in problem.message
    val.write_text("{not json")
    [problem] = inspect_dataset(root, "coco", "object_detection")[1].errors
    assert problem.file == str(val) and "not a readable JSON file" in problem.message
    val.write_text(json.dumps({"images": {}}))
    [problem] = inspect_dataset(root, "coco", "object_detection")[1].errors
    assert problem.file == str(val) and "not a COCO file" in problem.message


def test_dice_objects_in_the_converter_layout(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    shapes = [
        {"label": "cat", "shape_type": "rectangle", "points": [[30, 20], [10, 5]]},
        {"label": "dog", "shape_type": "polygon", "points": [[1, 1], [9, 1], [5, 8]]},
        {"label": "dog", "shape_type": "point", "points": [[3, 3]]},
    ]
    for i in range(3):
        Image.new("RGB", (40, 30)).save(tmp_path / "images" / f"im{i}.png")
        doc = {"imagePath": f"im{i}.png", "imageData": None, "imageWidth": 40, "imageHeight": 30, "flags": {},
               "shapes": shapes}
        (tmp_path / "annotations" / f"im{i}.json").write_text(json.dumps(doc))
    data, problems = inspect_dataset(tmp_path, "dice", "instance_segmentation")
    assert not problems.errors and data.class_names == ("cat", "dog")
    record = sorted(data.train + data.val, key=lambda r: r.path)[0]
    cat, dog = record.annotations
    assert cat.box == (10, 5, 30, 20) and cat.polygons == [[10, 5, 30, 5, 30, 20, 10, 20]]
    assert dog.box == (1, 1, 9, 8) and dog.polygons == [[1, 1, 9, 1, 5, 8]] and dog.where == "shape 1"
    assert {p.kind for p in problems.warnings} >= {"skipped-shape-point"}
    detection = read_dataset(tmp_path, "dice", "object_detection")
    assert all(a.polygons is None for r in detection.train for a in r.annotations)

    doc["shapes"] = [{"label": "cat", "shape_type": "polygon", "points": [[1, 1], [2, 2]]}]
    (tmp_path / "annotations" / "im2.json").write_text(json.dumps(doc))
    [problem] = inspect_dataset(tmp_path, "dice", "object_detection")[1].errors
    assert problem.file == str(tmp_path / "annotations" / "im2.json") and problem.where == "shape 0"


@pytest.mark.parametrize("bad", [
    {"segmentation": [[1, "a", 3, 4, 5, 6]]},
    {"segmentation": [[1, None, 3, 4, 5, 6]]},
    {"bbox": [1, "2", 3, 4]},
])
def test_values_of_the_wrong_type_are_problems_naming_the_annotation(tmp_path, bad):
    root = make_coco(tmp_path, {"train": [ann(1), {**ann(5), **bad}], "val": [ann(3)]})
    _, problems = inspect_dataset(root, "coco", "instance_segmentation")
    bad_ones = [p for p in problems.errors if p.where == "annotation id 5"]
    assert bad_ones and bad_ones[0].file == str(root / "annotations" / "instances_train.json")


def test_an_images_entry_that_is_not_an_object_is_named(tmp_path):
    root = make_coco(tmp_path, {"train": [ann(1)], "val": [ann(3)]}, extra_images=[7])
    _, problems = inspect_dataset(root, "coco", "object_detection")
    assert any("image entry 7 is not an object" in p.message for p in problems.errors)
