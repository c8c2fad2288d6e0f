"""Tiny datasets made by code: colour-coded classes a small model separates in an epoch or two."""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

from PIL import Image

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def _image(colour: tuple[int, int, int], size: int, rng: random.Random) -> Image.Image:
    jitter = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in colour)
    image = Image.new("RGB", (size, size), jitter)
    for _ in range(6):  # a little texture so batches differ
        x, y = rng.randrange(size), rng.randrange(size)
        image.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    return image


def make_imagefolder(root: Path, per_class: int = 12, val_per_class: int = 4, size: int = 32,
                     classes: dict[str, tuple[int, int, int]] = COLOURS, seed: int = 0) -> Path:
    rng = random.Random(seed)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _image(colour, size, rng).save(folder / f"{name}_{i}.png")
    return root


def make_dice(root: Path, per_class: int = 10, size: int = 32, embed_every: int = 3, seed: int = 0) -> Path:
    """labelme-style JSON per image; some files embed the image as base64 `imageData`."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, colour in COLOURS.items():
        for i in range(per_class):
            image = _image(colour, size, rng)
            doc = {"version": "5.4.1", "flags": {}, "shapes": [], "imagePath": f"{name}_{i}.png",
                   "imageData": None, "imageHeight": size, "imageWidth": size}
            if n % 2:
                doc["flags"] = {c: c == name for c in COLOURS}
            else:
                doc["shapes"] = [{"label": name, "points": [[0, 0], [size - 1, size - 1]],
                                  "shape_type": "rectangle", "flags": {}}]
            if n % embed_every == 0:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                doc["imageData"] = base64.b64encode(buffer.getvalue()).decode()
            else:
                image.save(root / f"{name}_{i}.png")
            (root / f"{name}_{i}.json").write_text(json.dumps(doc))
            n += 1
    return root


def save_image(path: Path, colour: str = "red", size: int = 32) -> Path:
    _image(COLOURS[colour], size, random.Random(1)).save(path)
    return path
