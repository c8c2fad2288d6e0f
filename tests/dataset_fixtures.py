"""Tiny datasets made by code (COCO, YOLO, Pascal VOC, segmentation masks, super-resolution pairs, OCR
lines), for the dataset layer's tests, the CLI's and the frameworks'."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
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


# ------------------------------------------------------------ Pascal VOC

def write_voc_image(path: Path, size=(8, 6)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)


def voc_xml(filename: str, size=(8, 6), objects=(("cat", (1, 1, 4, 5), 0),)) -> str:
    size_xml = "" if size is None else f"<size><width>{size[0]}</width><height>{size[1]}</height></size>"
    parts = [f"<annotation><folder>VOC</folder><filename>{filename}</filename>{size_xml}"]
    for name, box, difficult in objects:
        coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox>{coords}</bndbox></object>")
    return "".join(parts) + "</annotation>"


def write_xml(root: Path, stem: str, text: str) -> Path:
    path = root / "Annotations" / f"{stem}.xml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_voc(root: Path, stems=("a", "b", "c"), image_sets: dict | None = None) -> Path:
    """One image per stem, each with a cat box; "a" and "c" also have a difficult dog."""
    for stem in stems:
        write_voc_image(root / "JPEGImages" / f"{stem}.jpg")
        objects = [("cat", (1, 1, 4, 5), 0)] + ([("dog", (2.5, 2, 7, 6), 1)] if stem in ("a", "c") else [])
        write_xml(root, stem, voc_xml(f"{stem}.jpg", objects=objects))
    for split, ids in (image_sets or {}).items():
        path = root / "ImageSets" / "Main" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{i}\n" for i in ids))
    return root


# ------------------------------------------------------------ semantic segmentation masks

MASK_CLASSES = ["background", "square", "bar"]
MASK_COLOURS = {0: (200, 40, 40), 1: (40, 200, 40), 2: (40, 40, 200), 255: (0, 0, 0)}
MASK_SIZE = (48, 40)  # width, height: not square


def make_masks(root, train: int = 12, val: int = 4):
    """``masks`` layout: a square (1) somewhere, a bar (2) at the bottom, a 2x2 ignored corner (255)."""
    width, height = MASK_SIZE
    rng = random.Random(0)
    for split, count in (("train", train), ("val", val)):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            mask = np.zeros((height, width), np.uint8)
            x, y = rng.randint(0, width // 2), rng.randint(0, height // 2)
            mask[y:y + height // 3, x:x + width // 3] = 1
            mask[height - 8:, :] = 2
            mask[:2, :2] = 255
            colours = np.array([MASK_COLOURS[int(v)] for v in mask.ravel()], np.int32).reshape(height, width, 3)
            noise = np.random.default_rng(rng.randint(0, 10**6)).integers(-30, 30, colours.shape)
            image = Image.fromarray(np.clip(colours + noise, 0, 255).astype(np.uint8))
            image.save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(MASK_CLASSES) + "\n")
    return root


# ------------------------------------------------------------ super-resolution pairs

def _stripes(rng) -> Image.Image:
    """32x32 smooth stripes (something a model can learn to upscale)."""
    yy, xx = np.mgrid[0:32, 0:32]
    f = rng.uniform(0.1, 0.4, 3)
    return Image.fromarray(np.stack([127 + 100 * np.sin(f[c] * (xx + yy * (c + 1))) for c in range(3)], -1)
                           .astype(np.uint8))


def make_sr_pairs(root, train: int = 8, val: int = 4, with_lr: bool = True):
    """``sr_pairs``: ``{train,val}/HR`` 32x32 and (``with_lr``) ``LR_x2`` 16x16 made by bicubic downscaling."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        (root / split / "HR").mkdir(parents=True, exist_ok=True)
        if with_lr:
            (root / split / "LR_x2").mkdir(parents=True, exist_ok=True)
        for i in range(count):
            hr = _stripes(rng)
            hr.save(root / split / "HR" / f"{i}.png")
            if with_lr:
                hr.resize((16, 16), Image.Resampling.BICUBIC).save(root / split / "LR_x2" / f"{i}.png")
    return root


# ------------------------------------------------------------ OCR lines

OCR_TRAIN_TEXTS = ("ab", "ba", "abc", "cab", "ab ba", "ca", "bc", "cb")
OCR_VAL_TEXTS = ("ab", "ba", "abc", "a b")


def make_ocr_dataset(root: Path) -> Path:
    """``{train,val}/images/*.png`` with the text drawn in black on white, and ``labels.jsonl``."""
    from PIL import ImageDraw

    for split, texts in (("train", OCR_TRAIN_TEXTS), ("val", OCR_VAL_TEXTS)):
        images = root / split / "images"
        images.mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            image = Image.new("RGB", (64, 32), "white")
            ImageDraw.Draw(image).text((4, 10), text, fill="black")
            image.save(images / f"{i}.png")
            lines.append(json.dumps({"file": f"{i}.png", "text": text}))
        (root / split / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
