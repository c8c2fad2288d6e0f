"""Submit-time COCO check vs pycocotools loading the same file (goal: <= 1.5x).

A synthetic COCO dataset is built once in a temp dir: 20,000 images (640x480, one tiny real PNG
hardlinked 20,000 times into ``train/``) and 100,000 annotations in
``annotations/instances_train.json`` (5 per image, a bbox, an 8-12 point polygon inside it,
``area``, ``iscrowd: 0``, 80 categories with COCO's non-contiguous ids). There is no val file:
the check makes val with the default split, as it does for any dataset without one.

Timed, in alternating rounds (the order flips every round):

- baseline:  ``pycocotools.coco.COCO(instances_train.json)`` (json load + index)
- check:     ``inspect_dataset(root, "coco", task, decode="sample")`` for object_detection and
             instance_segmentation (json load, records, split, shared checks, 8+8 decodes); the
             script asserts it finds no problem at all

Reported: wall-time medians, min/max and the ratio of medians (the goal), CPU-time medians (less
moved by other load on a busy box) and peak Python allocations (tracemalloc, one extra run each).

    uv run python bench/bench_datasets.py [--rounds 7] [--images 20000] [--per-image 5] [--no-memory]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from pycocotools.coco import COCO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.datasets import inspect_dataset  # noqa: E402

GOAL = 1.5
TASKS = ("object_detection", "instance_segmentation")
WIDTH, HEIGHT = 640, 480
#: COCO's 80 category ids (1..90 with gaps).
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def tiny_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (120, 60, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_coco(root: Path, n_images: int, per_image: int, seed: int = 0) -> Path:
    """The dataset under ``root``; returns the path of instances_train.json."""
    rng = random.Random(seed)
    (root / "annotations").mkdir(parents=True)
    (root / "train").mkdir()
    source = root / "source.png"
    source.write_bytes(tiny_png())
    images, annotations = [], []
    for image_id in range(1, n_images + 1):
        name = f"{image_id:012d}.png"
        os.link(source, root / "train" / name)
        images.append({"id": image_id, "file_name": name, "width": WIDTH, "height": HEIGHT})
        for _ in range(per_image):
            w, h = rng.uniform(8, 200), rng.uniform(8, 200)
            x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
            polygon = []
            for _ in range(rng.randint(8, 12)):
                polygon += [round(rng.uniform(x, x + w), 2), round(rng.uniform(y, y + h), 2)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": rng.choice(COCO_IDS), "bbox": [round(v, 2) for v in (x, y, w, h)],
                                "segmentation": [polygon], "area": round(w * h * 0.6, 2), "iscrowd": 0})
    categories = [{"id": cid, "name": f"class{cid}", "supercategory": "thing"} for cid in COCO_IDS]
    path = root / "annotations" / "instances_train.json"
    path.write_text(json.dumps({"info": {}, "licenses": [], "images": images, "annotations": annotations,
                                "categories": categories}))
    return path


def load_pycocotools(path: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        COCO(str(path))


def check(root: Path, task: str) -> None:
    dataset, problems = inspect_dataset(root, "coco", task, decode="sample")
    assert dataset is not None and not problems.has_errors, [str(p) for p in problems.errors]
    assert problems.warning_count() == 0, [str(p) for p in problems.warnings]


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_mib(fn) -> float:
    """Peak Python allocations while ``fn`` runs (tracemalloc: one untimed run, it slows things)."""
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--per-image", type=int, default=5)
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="also report peak allocations (one extra untimed run each)")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vy-bench-coco-") as tmp:
        root = Path(tmp)
        path = make_coco(root, args.images, args.per_image)
        print(f"dataset: {args.images:,} images, {args.images * args.per_image:,} annotations, "
              f"{path.stat().st_size / 1e6:.0f} MB json, built in {time.perf_counter() - begun:.1f} s")
        runs = {"pycocotools": lambda: load_pycocotools(path)}
        runs.update({task: (lambda task=task: check(root, task)) for task in TASKS})
        for fn in runs.values():  # warm-up: page cache, imports, and the assertions once
            fn()
        times: dict[str, list[float]] = {name: [] for name in runs}
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for i in range(args.rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                wall, used = timed(runs[name])
                times[name].append(wall)
                cpu[name].append(used)
        peaks = {name: peak_mib(fn) for name, fn in runs.items()} if args.memory else {}

    base, base_cpu = statistics.median(times["pycocotools"]), statistics.median(cpu["pycocotools"])
    print(f"\n{args.rounds} rounds, order alternating; wall seconds (CPU seconds: less disturbed on a busy box)")
    print(f"  {'':<32}{'median':>8}{'min':>8}{'max':>8}{'ratio':>8}   {'CPU med':>8}{'ratio':>8}{'peak MiB':>10}")
    ok = True
    for name, values in times.items():
        median, median_cpu = statistics.median(values), statistics.median(cpu[name])
        ratio = median / base
        label = "pycocotools COCO()" if name == "pycocotools" else f"inspect {name}"
        peak = f"{peaks[name]:10.0f}" if peaks else ""
        print(f"  {label:<32}{median:8.3f}{min(values):8.3f}{max(values):8.3f}{ratio:7.2f}×   "
              f"{median_cpu:8.3f}{median_cpu / base_cpu:7.2f}×{peak}")
        if name != "pycocotools":
            ok &= ratio <= GOAL
    print(f"goal: inspect_dataset ≤ {GOAL}× pycocotools COCO() (median/median); {'ok' if ok else 'MISSED'}"
          f"  [{time.perf_counter() - begun:.0f} s total]")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
