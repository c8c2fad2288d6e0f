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


# ------------------------------------------------------------ depth maps

DEPTH_IMAGE_SIZE = (40, 32)  # width, height: not square


def depth_scene(rng, size=DEPTH_IMAGE_SIZE) -> tuple[Image.Image, np.ndarray]:
    """An image and its depth in metres: a floor receding from 1 m (bottom) to 4 m (top), a box in front at 0.8 m,
    the image's brightness falling with depth (something a model can learn), a 3x3 corner without depth (0)."""
    width, height = size
    yy = np.mgrid[0:height, 0:width][0]
    depth = 4.0 - 3.0 * yy / (height - 1)
    x, y = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    depth[y:y + height // 3, x:x + width // 3] = 0.8
    shade = np.clip(255 * (1.2 - depth / 4.0), 0, 255)
    pixels = np.stack([shade, shade * 0.8, 255 - shade], -1) + rng.integers(-10, 10, (height, width, 3))
    depth[:3, :3] = 0.0
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), depth


def make_depth_dataset(root: Path, train: int = 8, val: int = 4, val_as_npy: bool = True) -> Path:
    """``depth`` layout: ``{train,val}/images/<i>.png`` + ``{train,val}/depth/<i>.png`` (16-bit, millimetres); val's
    depth maps as ``.npy`` in metres when ``val_as_npy``."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for folder in ("images", "depth"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, depth = depth_scene(rng)
            image.save(root / split / "images" / f"{i}.png")
            if split == "val" and val_as_npy:
                np.save(root / split / "depth" / f"{i}.npy", depth.astype(np.float32))
            else:
                Image.fromarray(np.rint(depth * 1000).astype(np.uint16)).save(root / split / "depth" / f"{i}.png")
    return root


# ------------------------------------------------------------ captions

CAPTION_COLOURS = {"red": (220, 30, 30), "green": (30, 170, 30), "blue": (30, 30, 220)}
CAPTION_TRAIN = (("red", "square"), ("blue", "circle"), ("green", "square"), ("red", "circle"), ("blue", "square"),
                 ("green", "circle"), ("red", "square"), ("blue", "circle"))
CAPTION_VAL = (("red", "circle"), ("blue", "square"), ("green", "square"), ("green", "circle"))
CAPTION_SIZE = (48, 40)  # width, height: not square


def caption_references(colour: str, shape: str) -> list[str]:
    """A shape's three reference captions (punctuation and case as people write them)."""
    return [f"A {colour} {shape}.", f"a {shape} that is {colour}", f"The {colour} shape, on white"]


def make_captions_dataset(root: Path, layout: str = "jsonl") -> Path:
    """Images of a coloured square or circle on white with three captions each: ``jsonl`` writes
    ``{train,val}/images/<i>.png`` + ``{train,val}/captions.jsonl``; ``coco`` writes
    ``annotations/captions_{train,val}2017.json`` + ``{train,val}2017/<i>.png`` (COCO's own names)."""
    from PIL import ImageDraw

    for split, shapes in (("train", CAPTION_TRAIN), ("val", CAPTION_VAL)):
        images = root / split / "images" if layout == "jsonl" else root / f"{split}2017"
        images.mkdir(parents=True)
        lines, doc = [], {"images": [], "annotations": []}
        for i, (colour, shape) in enumerate(shapes):
            image = Image.new("RGB", CAPTION_SIZE, "white")
            draw = ImageDraw.Draw(image)
            (draw.rectangle if shape == "square" else draw.ellipse)((10, 6, 38, 34), fill=CAPTION_COLOURS[colour])
            image.save(images / f"{i}.png")
            captions = caption_references(colour, shape)
            lines.append(json.dumps({"file": f"{i}.png", "captions": captions}))
            doc["images"].append({"id": 100 + i, "file_name": f"{i}.png", "width": 48, "height": 40})
            doc["annotations"] += [{"id": 1000 + 10 * i + k, "image_id": 100 + i, "caption": caption}
                                   for k, caption in enumerate(captions)]
        if layout == "jsonl":
            (root / split / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            (root / "annotations").mkdir(exist_ok=True)
            (root / "annotations" / f"captions_{split}2017.json").write_text(json.dumps(doc), encoding="utf-8")
    return root


#: ``vqa`` datasets: each image a square of one colour, asked two questions (its colour, with four people's answers
#: as VQA lists them, and a yes/no one with one answer). Train: 6 images (12 questions); val: 3 (6 questions).
VQA_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
VQA_SPLITS = {"train": ("red", "green", "blue", "red", "green", "blue"), "val": ("red", "green", "blue")}


def vqa_questions(colour: str) -> list[dict]:
    """The two questions about an image of ``colour``, their answers as people write them."""
    return [{"question": "What colour is it?", "answers": [colour, colour.upper(), f"the {colour}", "white"]},
            {"question": "Is it red?", "answers": ["yes" if colour == "red" else "no"]}]


def make_vqa_dataset(root: Path, size: tuple[int, int] = (32, 24)) -> Path:
    """``{train,val}/images/<i>.png`` + ``{train,val}/questions.jsonl`` (``VQA_SPLITS``; two lines per image)."""
    for split, colours in VQA_SPLITS.items():
        images = root / split / "images"
        images.mkdir(parents=True)
        lines = []
        for i, colour in enumerate(colours):
            Image.new("RGB", size, VQA_COLOURS[colour]).save(images / f"{i}.png")
            lines += [json.dumps({"file": f"{i}.png", **q}) for q in vqa_questions(colour)]
        (root / split / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


#: COCO categories of ``make_coco_shapes``: car (id 3) is class 0, bike (id 7) class 1.
SHAPE_CATEGORIES = [{"id": 3, "name": "car"}, {"id": 7, "name": "bike"}]


def make_coco_shapes(root: Path, train: int = 6, val: int = 3, size: int = 64, seed: int = 0) -> Path:
    """A COCO dataset of ``size`` px images each with a red "car" and a blue "bike" rectangle, boxed."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    colours = {3: (220, 30, 30), 7: (30, 30, 220)}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, anns = [], []
        for i in range(count):
            image = Image.new("RGB", (size, size), (20, 20, 20))
            draw = ImageDraw.Draw(image)
            for category, colour in colours.items():
                w, h = rng.randint(size // 6, size // 3), rng.randint(size // 6, size // 3)
                x, y = rng.randint(0, size - w - 1), rng.randint(0, size - h - 1)
                draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": category, "bbox": [x, y, w, h],
                             "area": w * h, "iscrowd": 0})
            image.save(root / split / f"{i}.png")
            images.append({"id": i + 1, "file_name": f"{i}.png", "width": size, "height": size})
        doc = {"images": images, "annotations": anns, "categories": SHAPE_CATEGORIES}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


#: The first bytes of a file of each video container family (what ``video_folder`` sniffs without a decoder).
VIDEO_HEADERS = {".mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", ".mov": b"\x00\x00\x00\x14ftypqt  ",
                 ".avi": b"RIFF\x00\x10\x00\x00AVI LIST", ".mkv": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81",
                 ".webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81"}


def make_fake_videos(root: Path, files: dict[str, bytes | None]) -> Path:
    """A ``video_folder`` layout of files that only look like videos: ``{"train/cat/a.mp4": content}``, the
    content None for the extension's container header (``VIDEO_HEADERS``) and filler; no decoder reads them."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(VIDEO_HEADERS.get(path.suffix.lower(), b"") + bytes(64) if content is None else content)
    return root
