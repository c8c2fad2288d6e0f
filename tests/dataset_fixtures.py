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
