"""Tiny COCO and YOLO datasets made by code, for the dataset layer's tests and the CLI's."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

CATEGORIES = [{"id": 7, "name": "bike"}, {"id": 3, "name": "car"}]  # car (3) -> class 0, bike (7) -> class 1


def make_coco(root: Path, splits: dict[str, list[dict]], *, image_dir="{split}", categories=CATEGORIES,
              prefix="instances", suffix="", size=(40, 30), extra_images=()) -> Path:
    """``splits``: {"train": [annotation, ...]}; images 1 and 2 exist per split (+ extra_images entries)."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, anns in splits.items():
        folder = root / image_dir.format(split=split + suffix)
        folder.mkdir(parents=True, exist_ok=True)
        images = []
        for image_id in (1, 2):
            Image.new("RGB", size).save(folder / f"{split}{image_id}.png")
            images.append({"id": image_id, "file_name": f"{split}{image_id}.png", "width": size[0],
                           "height": size[1]})
        doc = {"images": images + list(extra_images), "annotations": anns, "categories": categories}
        (root / "annotations" / f"{prefix}_{split}{suffix}.json").write_text(json.dumps(doc))
    return root


def ann(id, image_id=1, category_id=3, bbox=(10, 5, 20, 10), **extra):
    return {"id": id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox), "iscrowd": 0, **extra}


def make_yolo(root: Path, labels: dict[str, str], *, names="names: [cat, dog]\n", layout="images-first",
              size=(40, 20)) -> Path:
    """``labels``: {"train/a": "0 0.5 ...", ...}; an image per key, its label file holding the text."""
    for key, text in labels.items():
        split, stem = key.split("/")
        images, label_dir = ((root / "images" / split, root / "labels" / split) if layout == "images-first"
                             else (root / split / "images", root / split / "labels"))
        images.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (200, 10, 10)).save(images / f"{stem}.png")
        if text is not None:
            (label_dir / f"{stem}.txt").write_text(text)
    if names is not None:
        (root / "data.yaml").write_text(names)
    return root


def make_yolo_task(root: Path, task: str, train: int = 8, val: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A tiny YOLO dataset for ``task`` with real drawn objects (a red and a blue rectangle per image).

    Detection, segmentation (the rectangle as a polygon), pose (3 keypoints: two corners and the
    centre, ``kpt_shape: [3, 3]``), OBB (the rectangle's corners) and classification (an
    ImageFolder root of red / blue images).
    """
    import random

    from PIL import ImageDraw

    rng = random.Random(seed)
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    if task == "image_classification":
        for split, count in (("train", train), ("val", val)):
            for name, colour in colours.items():
                (root / split / name).mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    jitter = tuple(max(0, min(255, c + rng.randint(-30, 30))) for c in colour)
                    Image.new("RGB", (size, size), jitter).save(root / split / name / f"{name}{i}.png")
        return root
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image = Image.new("RGB", (size, size), (20, 20, 20))
            draw = ImageDraw.Draw(image)
            lines = []
            for class_id, colour in enumerate(colours.values()):
                w, h = rng.randint(size // 6, size // 3), rng.randint(size // 6, size // 3)
                x, y = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
                draw.rectangle([x, y, x + w, y + h], fill=colour)
                x1, y1, x2, y2 = x / size, y / size, (x + w) / size, (y + h) / size
                corners = [x1, y1, x2, y1, x2, y2, x1, y2]
                box = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
                values = {"object_detection": box, "instance_segmentation": corners, "obb_detection": corners,
                          "pose_estimation": box + [x1, y1, 2, x2, y2, 2, box[0], box[1], 2]}[task]
                lines.append(" ".join([str(class_id), *(f"{v:.6f}" for v in values)]))
            image.save(root / "images" / split / f"{i}.png")
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    extra = "kpt_shape: [3, 3]\n" if task == "pose_estimation" else ""
    (root / "data.yaml").write_text("names: [red, blue]\n" + extra)
    return root


#: Four boxes of a 64 px square image touching its left, right, top and bottom edge, written to 5
#: decimals as export tools do: each computes one corner 5e-06 past the edge.
EDGE_BOXES = ("0 0.14062 0.25 0.28125 0.3\n1 0.85938 0.25 0.28125 0.3\n"
              "0 0.5 0.14062 0.3 0.28125\n1 0.5 0.85938 0.3 0.28125\n")

#: Per task, label lines for a 64 px image that overshoot it by rounding: boxes at each edge (plus an
#: exact duplicate and a zero-area box, which are dropped), a polygon vertex at -0.3 px, a keypoint at
#: width + 1 px (kpt_shape [3, 3]), a rotated box corner at -0.3 px.
EDGE_LINES = {
    "object_detection": EDGE_BOXES + "0 0.14062 0.25 0.28125 0.3\n0 0.5 0.5 0 0.2\n",
    "instance_segmentation": "0 -0.00469 0.1 0.3 0.1 0.3 0.3 0 0.3\n",
    "pose_estimation": "0 0.5 0.5 0.4 0.4 1.01562 0.5 2 0.3 0.3 2 0.5 0.5 2\n",
    "obb_detection": "1 -0.00469 0.1 0.3 0.1 0.3 0.3 0 0.3\n",
}


def add_edge_labels(root: Path, task: str) -> Path:
    """``root`` (a ``make_yolo_task`` dataset of 64 px images) with ``EDGE_LINES[task]`` added to train image 0."""
    label = root / "labels" / "train" / "0.txt"
    label.write_text(label.read_text() + EDGE_LINES[task])
    return root
