"""convert_dataset: tiny datasets written by hand, converted, then read back with read_dataset (host env)."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from adapters.datasets import DatasetError, SplitOptions, convert_dataset, read_dataset, to_pixels
from adapters.datasets.records import polygon_box

W, H = 40, 30
DET, SEG, POSE, OBB, CLS = ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection",
                            "image_classification")


# --------------------------------------------------------------------------- builders


def save_image(path: Path, size=(W, H), color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_coco(root: Path, task: str, splits: dict, categories: list) -> Path:
    """splits: {split: [(file_name, [annotation fields without id/image_id])]}."""
    prefix = "person_keypoints" if task == POSE else "instances"
    for split, images in splits.items():
        doc = {"images": [], "annotations": [], "categories": categories}
        for image_id, (name, anns) in enumerate(images, 1):
            save_image(root / "images" / split / name)
            doc["images"].append({"id": image_id, "file_name": name, "width": W, "height": H})
            for ann in anns:
                doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": image_id, "iscrowd": 0,
                                           **ann})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{prefix}_{split}.json").write_text(json.dumps(doc))
    return root


def write_yolo(root: Path, splits: dict, names: list, kpt_shape=None) -> Path:
    """splits: {split: {image name (may hold a sub-folder): [label lines]}}."""
    for split, images in splits.items():
        for name, lines in images.items():
            save_image(root / "images" / split / name)
            label = root / "labels" / split / (os.path.splitext(name)[0] + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(line + "\n" for line in lines))
    meta = f"names: {json.dumps(names)}\n" + (f"kpt_shape: {list(kpt_shape)}\n" if kpt_shape else "")
    (root / "data.yaml").write_text(meta)
    return root


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def by_name(dataset) -> dict:
    return {(split, os.path.basename(r.path)): to_pixels(r) for split in ("train", "val") for r in dataset.split(split)}


def label_lines(root: Path, split: str, stem: str) -> list[str]:
    return (root / "labels" / split / f"{stem}.txt").read_text().splitlines()


def all_label_lines(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_text().splitlines() for p in sorted((root / "labels").rglob("*.txt"))}


def assert_lines_close(got: dict, want: dict, tol=2e-6):
    assert got.keys() == want.keys()
    for key, lines in want.items():
        assert len(got[key]) == len(lines), key
        for a, b in zip(got[key], lines):
            assert np.allclose([float(v) for v in a.split()], [float(v) for v in b.split()], atol=tol), (key, a, b)


def assert_same_objects(a, b, tol=1e-3):
    assert [x.class_id for x in a.annotations] == [x.class_id for x in b.annotations]
    for x, y in zip(a.annotations, b.annotations):
        assert np.allclose(x.box, y.box, atol=tol)
        for field in ("polygons", "keypoints"):
            vx, vy = getattr(x, field), getattr(y, field)
            assert (vx is None) == (vy is None), field
            if vx is not None:
                assert np.allclose(np.ravel(vx), np.ravel(vy), atol=tol), field


# --------------------------------------------------------------------------- COCO ↔ YOLO

TWO_CLASSES = [{"id": 2, "name": "zebra"}, {"id": 5, "name": "ant"}]  # id order, not name order
PERSON = [{"id": 1, "name": "person", "keypoints": ["nose", "l_eye", "r_eye"]}]
RECT = [10, 5, 30, 5, 30, 15, 10, 15]
TRIANGLE = [2, 3, 9, 3, 5.5, 14]


def coco_objects(task: str) -> dict:
    """A COCO source per task: (category_id, bbox, polygon, keypoints) per object, per image."""
    def ann(cat, bbox, polygon, keypoints=None):
        fields = {"category_id": cat, "bbox": bbox, "area": bbox[2] * bbox[3]}
        if task == SEG:
            fields["segmentation"] = [polygon]
        if task == POSE:
            fields["keypoints"], fields["num_keypoints"] = keypoints, sum(v > 0 for v in keypoints[2::3])
        return fields
    if task == POSE:
        return {"train": [("a.png", [ann(1, [10, 5, 20, 10], RECT, [12, 6, 2, 20.5, 10, 1, 0, 0, 0])]),
                          ("b.png", [])],
                "val": [("c.png", [ann(1, [0, 0, 40, 30], None, [1, 2, 2, 39, 29, 2, 7, 7, 1])])]}
    return {"train": [("a.png", [ann(2, [10, 5, 20, 10], RECT), ann(5, [2, 3, 7, 11], TRIANGLE)]), ("b.png", [])],
            "val": [("c.png", [ann(5, [0, 0, 40, 30], [0, 0, 40, 0, 40, 30, 0, 30])])]}


def test_a_coco_box_becomes_the_hand_computed_yolo_line(tmp_path):
    src = write_coco(tmp_path / "src", DET, coco_objects(DET), TWO_CLASSES)
    result = convert_dataset(src, "coco", "yolo", DET, tmp_path / "out")
    out = tmp_path / "out"
    assert label_lines(out, "train", "a") == ["0 0.500000 0.333333 0.500000 0.333333",
                                              "1 0.137500 0.283333 0.175000 0.366667"]
    assert label_lines(out, "train", "b") == []  # a background image keeps an empty label file
    assert label_lines(out, "val", "c") == ["1 0.500000 0.500000 1.000000 1.000000"]
    assert (result.path, result.format, result.task) == (str(out), "yolo", DET)
    assert result.images == {"train": 2, "val": 1} and result.annotations == {"train": 2, "val": 1}
    import yaml
    meta = yaml.safe_load((out / "data.yaml").read_text())
    assert meta == {"path": str(out), "train": "images/train", "val": "images/val", "names": ["zebra", "ant"]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("task", [DET, SEG, POSE])
def test_coco_to_yolo_to_coco_gives_back_the_annotations(tmp_path, task):
    cats = PERSON if task == POSE else TWO_CLASSES
    src = write_coco(tmp_path / "src", task, coco_objects(task), cats)
    before = snapshot(src)
    convert_dataset(src, "coco", "yolo", task, tmp_path / "yolo")
    convert_dataset(tmp_path / "yolo", "yolo", "coco", task, tmp_path / "back")
    assert snapshot(src) == before
    original, back = read_dataset(src, "coco", task), read_dataset(tmp_path / "back", "coco", task)
    assert back.class_names == original.class_names
    first, second = by_name(original), by_name(back)
    assert first.keys() == second.keys()
    for key in first:
        assert_same_objects(first[key], second[key])
    prefix = "person_keypoints" if task == POSE else "instances"
    doc = json.loads((tmp_path / "back" / "annotations" / f"{prefix}_train.json").read_text())
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(i + 1, c["name"]) for i, c in enumerate(cats)]
    if task == SEG:
        assert [a["area"] for a in doc["annotations"]] == [200, mask_utils.area(
            mask_utils.merge(mask_utils.frPyObjects([TRIANGLE], H, W)))]
    if task == POSE:
        assert doc["categories"][0]["keypoints"] == ["kp_0", "kp_1", "kp_2"] and doc["categories"][0]["skeleton"] == []
        assert [a["num_keypoints"] for a in doc["annotations"]] == [2]


YOLO_SOURCES = {
    DET: (["0 0.5 0.333333 0.5 0.333333", "1 0.1 0.2 0.1 0.2"], None),
    SEG: (["0 0.25 0.166667 0.75 0.166667 0.75 0.5 0.25 0.5", "1 0.1 0.1 0.3 0.1 0.2 0.4"], None),
    POSE: (["0 0.5 0.5 0.4 0.4 0.4 0.45 2 0.6 0.55 1", "1 0.2 0.2 0.1 0.1 0 0 0 0.2 0.2 2"], (2, 3)),
}


@pytest.mark.parametrize("task", list(YOLO_SOURCES))
def test_yolo_to_coco_to_yolo_gives_back_the_label_lines(tmp_path, task):
    lines, kpt_shape = YOLO_SOURCES[task]
    src = write_yolo(tmp_path / "src", {"train": {"a.png": lines, "b.png": lines[:1]}, "val": {"c.png": lines[1:]}},
                     ["zebra", "ant"], kpt_shape)
    convert_dataset(src, "yolo", "coco", task, tmp_path / "coco")
    convert_dataset(tmp_path / "coco", "coco", "yolo", task, tmp_path / "back")
    assert_lines_close(all_label_lines(tmp_path / "back"), all_label_lines(src))
    assert read_dataset(tmp_path / "back", "yolo", task).class_names == ("zebra", "ant")


@pytest.mark.parametrize(("task", "lines", "kpt_shape"), [
    (OBB, ["0 0.100000 0.100000 0.500000 0.200000 0.400000 0.600000 0.000000 0.500000"], None),
    (POSE, ["0 0.500000 0.500000 0.400000 0.400000 0.400000 0.450000 0.600000 0.550000"], (2, 2)),
    (DET, ["1 0.500000 0.500000 0.250000 0.125000"], None),
])
def test_yolo_to_yolo_keeps_the_lines(tmp_path, task, lines, kpt_shape):
    src = write_yolo(tmp_path / "src", {"train": {"a.png": lines}, "val": {"b.png": lines}}, ["p", "q"], kpt_shape)
    convert_dataset(src, "yolo", "yolo", task, tmp_path / "out")
    assert all_label_lines(tmp_path / "out") == all_label_lines(src)
    assert read_dataset(tmp_path / "out", "yolo", task).kpt_shape == kpt_shape


# --------------------------------------------------------------------------- masks, parts, crowds


def uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, starting with a run of zeros."""
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


@pytest.mark.parametrize("compressed", [True, False])
def test_an_rle_mask_becomes_a_polygon_and_crowds_are_skipped(tmp_path, compressed):
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 10:30] = 1  # the box [10, 5, 20, 10]
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle["counts"] = rle["counts"].decode("ascii")
    else:
        rle = uncompressed(mask)
    crowd = {"category_id": 2, "bbox": [0, 20, 40, 10], "segmentation": rle, "iscrowd": 1}
    objects = {"train": [("a.png", [{"category_id": 2, "bbox": [10, 5, 20, 10], "segmentation": rle}, crowd])],
               "val": [("b.png", [{"category_id": 5, "bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4]]}])]}
    src = write_coco(tmp_path / "src", SEG, objects, TWO_CLASSES)
    result = convert_dataset(src, "coco", "yolo", SEG, tmp_path / "yolo")
    assert any("1 crowd" in w for w in result.warnings) and result.annotations == {"train": 1, "val": 1}
    record = by_name(read_dataset(tmp_path / "yolo", "yolo", SEG))["train", "a.png"]
    assert len(record.annotations) == 1
    # the contour runs through the border pixels' centres: the last row/column sit at 29 and 14
    assert np.allclose(polygon_box(record.annotations[0].polygons), (10, 5, 29, 14), atol=1e-3)

    convert_dataset(src, "coco", "coco", SEG, tmp_path / "coco")
    doc = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert [a["segmentation"] for a in doc["annotations"]] == [rle, rle]  # RLE kept as is
    assert [(a["area"], a["iscrowd"]) for a in doc["annotations"]] == [(200, 0), (200, 1)]


def test_several_polygon_parts_merge_into_one(tmp_path):
    left, right = [2, 2, 8, 2, 8, 8, 2, 8], [20, 10, 30, 10, 30, 20, 20, 20]
    objects = {"train": [("a.png", [{"category_id": 2, "bbox": [2, 2, 28, 18], "segmentation": [left, right]}])],
               "val": [("b.png", [{"category_id": 5, "bbox": [0, 0, 4, 4], "segmentation": [[0, 0, 4, 0, 4, 4]]}])]}
    src = write_coco(tmp_path / "src", SEG, objects, TWO_CLASSES)
    result = convert_dataset(src, "coco", "yolo", SEG, tmp_path / "yolo")
    assert any("merged" in w for w in result.warnings)
    polygon = to_pixels(read_dataset(tmp_path / "yolo", "yolo", SEG).train[0]).annotations[0].polygons[0]
    points = {(round(x, 3), round(y, 3)) for x, y in zip(polygon[0::2], polygon[1::2])}
    assert points == {(x, y) for part in (left, right) for x, y in zip(part[0::2], part[1::2])}
    assert len(polygon) == 2 * (4 + 4 + 2)  # both parts, plus each end of the bridge twice
    assert np.allclose(polygon_box([polygon]), (2, 2, 30, 20), atol=1e-3)


def test_repeated_names_are_made_unique_and_keep_their_labels(tmp_path):
    src = write_yolo(tmp_path / "src", {"train": {"a/x.png": ["0 0.5 0.5 0.2 0.2"], "b/x.png": ["1 0.3 0.3 0.1 0.1"],
                                                  "x.jpg": ["0 0.7 0.7 0.2 0.2"]},
                                        "val": {"x.png": ["1 0.5 0.5 0.5 0.5"]}}, ["p", "q"])
    result = convert_dataset(src, "yolo", "yolo", DET, tmp_path / "out")
    assert any(w.startswith("2 image(s) renamed") for w in result.warnings)
    assert sorted(os.listdir(tmp_path / "out" / "images" / "train")) == ["1_x.png", "2_x.jpg", "x.png"]
    assert label_lines(tmp_path / "out", "train", "1_x") == ["1 0.300000 0.300000 0.100000 0.100000"]
    assert label_lines(tmp_path / "out", "train", "2_x") == ["0 0.700000 0.700000 0.200000 0.200000"]
    assert label_lines(tmp_path / "out", "val", "x") == ["1 0.500000 0.500000 0.500000 0.500000"]


# --------------------------------------------------------------------------- DICE, VOC, classification


def write_dice(root: Path) -> Path:
    """images/ + annotations/*.json with bare imagePath; e.json embeds its image."""
    def doc(image_path, shapes, embedded=None):
        return {"imagePath": image_path, "imageData": embedded, "imageWidth": W, "imageHeight": H, "flags": {},
                "shapes": [{"label": label, "shape_type": kind, "points": points} for label, kind, points in shapes]}
    rect = ("cat", "rectangle", [[10, 5], [30, 15]])
    tri = ("dog", "polygon", [[2, 3], [9, 3], [5.5, 14]])
    files = {"a": [rect], "b": [tri], "c": [rect, tri], "d": [tri]}
    for stem, shapes in files.items():
        save_image(root / "images" / f"{stem}.jpg")
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{stem}.json").write_text(json.dumps(doc(f"{stem}.jpg", shapes)))
    buffer = io.BytesIO()
    Image.new("RGB", (W, H), (0, 90, 0)).save(buffer, format="PNG")
    embedded = base64.b64encode(buffer.getvalue()).decode()
    (root / "annotations" / "e.json").write_text(json.dumps(doc("gone/e.jpg", [rect], embedded)))
    return root


@pytest.mark.parametrize(("target", "task"), [("yolo", DET), ("yolo", SEG), ("coco", DET), ("coco", SEG),
                                              ("imagefolder", CLS), ("yolo", CLS)])
def test_dice_converts(tmp_path, target, task):
    src = write_dice(tmp_path / "src")
    before = snapshot(src)
    result = convert_dataset(src, "dice", target, task, tmp_path / "out", split=SplitOptions(val_ratio=0.4))
    assert snapshot(src) == before
    assert sum(result.images.values()) == 5 and result.images["val"] > 0
    assert any("embedded" in w for w in result.warnings)
    back = read_dataset(tmp_path / "out", target, task)
    assert back.class_names == ("cat", "dog")
    records = {os.path.basename(k[1]): r for k, r in by_name(back).items()}
    assert sorted(records) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.png"]
    assert Image.open(records["e.png"].path).size == (W, H)
    if task == CLS:
        assert {name: r.label for name, r in records.items()} == {"a.jpg": 0, "b.jpg": 1, "c.jpg": 0, "d.jpg": 1,
                                                                "e.png": 0}
        return
    objects = [(a.class_id, [round(v, 3) for v in a.box]) for a in records["c.jpg"].annotations]
    assert objects == [(0, [10, 5, 30, 15]), (1, [2, 3, 9, 14])]
    if task == SEG:
        assert np.allclose(records["e.png"].annotations[0].polygons[0], RECT, atol=1e-3)


def write_voc(root: Path) -> Path:
    objects = {"a": [("cat", (10, 5, 30, 15), 0), ("dog", (1, 1, 5, 5), 1)], "b": [("dog", (0, 0, 40, 30), 0)],
               "c": [("cat", (2, 3, 9, 14), 0)]}
    for stem, objs in objects.items():
        save_image(root / "JPEGImages" / f"{stem}.jpg")
        xml = "".join(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin>"
                      f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
                      for name, box, difficult in objs)
        (root / "Annotations").mkdir(parents=True, exist_ok=True)
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>{W}</width><height>{H}</height>"
            f"<depth>3</depth></size>{xml}</annotation>")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nc\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("b\n")
    return root


def test_voc_to_yolo_skips_difficult_objects(tmp_path):
    result = convert_dataset(write_voc(tmp_path / "src"), "voc", "yolo", DET, tmp_path / "out")
    assert label_lines(tmp_path / "out", "train", "a") == ["0 0.500000 0.333333 0.500000 0.333333"]
    assert label_lines(tmp_path / "out", "val", "b") == ["1 0.500000 0.500000 1.000000 1.000000"]
    assert any("1 crowd/difficult" in w for w in result.warnings)
    assert result.annotations == {"train": 2, "val": 1}


def test_voc_to_coco_keeps_difficult_objects_as_crowd(tmp_path):
    convert_dataset(write_voc(tmp_path / "src"), "voc", "coco", DET, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["cat", "dog"]
    assert [(i["file_name"], i["width"], i["height"]) for i in doc["images"]] == [("a.jpg", W, H), ("c.jpg", W, H)]
    assert [(a["image_id"], a["category_id"], a["bbox"], a["area"], a["iscrowd"]) for a in doc["annotations"]] == [
        (1, 1, [10, 5, 20, 10], 200, 0), (1, 2, [1, 1, 4, 4], 16, 1), (2, 1, [2, 3, 7, 11], 77, 0)]
    back = read_dataset(tmp_path / "out", "coco", DET)
    assert [os.path.basename(r.path) for r in back.val] == ["b.jpg"]


def test_imagefolder_and_yolo_classification_convert_both_ways(tmp_path):
    src = tmp_path / "src"
    for split, per_class in (("train", 3), ("val", 1)):
        for name in ("cat", "dog"):
            for i in range(per_class):
                save_image(src / split / name / f"{name}{i}.png")
    convert_dataset(src, "imagefolder", "yolo", CLS, tmp_path / "yolo")
    convert_dataset(tmp_path / "yolo", "yolo", "imagefolder", CLS, tmp_path / "back")
    files = sorted(str(p.relative_to(src)) for p in src.rglob("*.png"))
    assert sorted(str(p.relative_to(tmp_path / "back")) for p in (tmp_path / "back").rglob("*.png")) == files
    linked = tmp_path / "back" / "train" / "cat" / "cat0.png"
    assert os.stat(linked).st_ino == os.stat(src / "train" / "cat" / "cat0.png").st_ino  # hard-linked, not copied


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(("target", "task", "expected"), [
    ("coco", CLS, ("format 'coco' for image_classification: 'coco' writes object_detection, "
                   "instance_segmentation, pose_estimation; for image_classification convert to: yolo, imagefolder")),
    ("imagefolder", DET, "for object_detection convert to: yolo, coco"),
    ("voc", DET, "Unknown target format 'voc'. Valid: yolo, coco, imagefolder"),
])
def test_an_unsupported_target_is_refused(tmp_path, target, task, expected):
    with pytest.raises(DatasetError, match="cannot convert|Unknown") as info:
        convert_dataset(tmp_path, "yolo", target, task, tmp_path / "out")
    assert expected in str(info.value)


def test_the_output_folder_must_be_new_and_outside_the_source(tmp_path):
    src = write_coco(tmp_path / "src", DET, coco_objects(DET), TWO_CLASSES)
    taken = tmp_path / "taken"
    (taken / "keep.txt").parent.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="not an empty folder; pick a new folder") as info:
        convert_dataset(src, "coco", "yolo", DET, taken)
    assert str(taken) in str(info.value) and (taken / "keep.txt").read_text() == "mine"
    with pytest.raises(DatasetError, match="inside the source dataset"):
        convert_dataset(src, "coco", "yolo", DET, src / "converted")
    (tmp_path / "empty").mkdir()
    assert convert_dataset(src, "coco", "yolo", DET, tmp_path / "empty").images == {"train": 2, "val": 1}


def test_a_failed_conversion_leaves_nothing_behind(tmp_path):
    src = write_yolo(tmp_path / "src", {"train": {"a.png": ["0 0.5 0.5 0.2 0.2"]}, "val": {"b.png": []}}, ["p"])
    (src / "images" / "val" / "b.png").write_bytes(b"not a png")  # only the COCO writer needs its size
    before = snapshot(src)
    with pytest.raises(DatasetError, match="b.png: cannot read the image"):
        convert_dataset(src, "yolo", "coco", DET, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"] and snapshot(src) == before
    with pytest.raises(DatasetError, match="instances_train.json"):
        convert_dataset(tmp_path / "src", "coco", "yolo", DET, tmp_path / "out")


def test_class_names_that_are_not_folder_names_are_refused(tmp_path):
    src = tmp_path / "src"
    for stem, label in (("a", "../up"), ("b", "ok"), ("c", "ok")):
        save_image(src / f"{stem}.png")
        (src / f"{stem}.json").write_text(json.dumps({"imagePath": f"{stem}.png", "flags": {label: True}}))
    with pytest.raises(DatasetError, match="'../up' cannot be folder names"):
        convert_dataset(src, "dice", "imagefolder", CLS, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
