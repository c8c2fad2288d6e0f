"""`visionyard eval` of an Ultralytics detection checkpoint against Ultralytics' own `val` of it: time and agreement.

Setup (untimed, kept in ``--work`` and reused by the next run): a detection dataset made in code (``--train``
and ``--val`` photo-like 640x480 JPEGs: noise and gradients with 1-4 red squares, green discs and blue
triangles of 40-200 px, YOLO labels), the ``ultralytics`` env (the daemon's spec; ``--envs``), and a yolov8n
trained from scratch on it with Ultralytics' own trainer (``--epochs`` at ``--train-size`` px), so that its
predictions are a real model's, not a random one's.

Timed, in alternating rounds, each side a fresh process in the same env with the threads the daemon gives a
child (``bench/child_env.py``), over the ``--val`` images at ``--size`` px (default 640), batches of 16:

- visionyard: the eval child as the daemon runs it, ``python -m adapters.entrypoint --spec job.json --eval
  --checkpoint best.pt --out DIR`` (the adapter's batched predict with Ultralytics' val settings: confidence
  0.001, NMS IoU 0.7, 300 boxes per image; scored with pycocotools);
- Ultralytics: ``YOLO(best.pt).val(data=..., imgsz=..., batch=16, conf=0.001, iou=0.7, plots=False)``.

Goal: visionyard ≤ 1.15× Ultralytics' time (median/median). Agreement: mAP50-95 and mAP50 of both, and per
class, with the documented difference of the two AP definitions: COCO (pycocotools) counts at most 100
detections per image, by score, and interpolates precision at 101 recall points per IoU threshold with its
greedy matching by score; Ultralytics keeps all 300, matches predictions to labels per IoU threshold by IoU
(``match_predictions``) and integrates its own interpolated PR curve (101 points, ``compute_ap``).

    uv run python bench/bench_eval_ultralytics.py [--rounds 3] [--val 500] [--train 400] [--epochs 20]
                                                  [--size 640] [--train-size 320] [--work DIR] [--envs DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from child_env import base_environ, threads  # noqa: E402  (bench/ is on the path)

from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402

GOAL = 1.15
CLASSES = ["square", "disc", "triangle"]
COLOURS = [(220, 40, 40), (40, 180, 60), (40, 70, 220)]

#: In the env: train yolov8n from its yaml on DATA_YAML at SIZE px for EPOCHS; prints best.pt's path.
TRAIN = """
import sys
from pathlib import Path
from adapters.ultralytics.trainer import _import_ultralytics, quiet_environment
data, size, epochs, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
quiet_environment(out / "config")
YOLO, _ = _import_ultralytics()
model = YOLO("yolov8n.yaml")
model.train(data=data, imgsz=size, epochs=epochs, batch=16, workers=0, device="cpu", plots=False, amp=False,
            project=str(out), name="train", exist_ok=True, seed=0, verbose=False)
print(out / "train" / "weights" / "best.pt")
"""

#: In the env: Ultralytics' own val of CHECKPOINT on DATA_YAML at SIZE px; prints its metrics as JSON.
VAL = """
import json, sys, time
from pathlib import Path
from adapters.ultralytics.trainer import _import_ultralytics, quiet_environment
checkpoint, data, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
quiet_environment(out / "config")
YOLO, _ = _import_ultralytics()
metrics = YOLO(checkpoint).val(data=data, imgsz=size, batch=16, conf=0.001, iou=0.7, device="cpu", plots=False,
                               workers=0, project=str(out), name="val", exist_ok=True, verbose=False)
box = metrics.box
print(json.dumps({"mAP50-95": float(box.map), "mAP50": float(box.map50),
                  "per_class": {metrics.names[int(c)]: [float(box.all_ap[i, 0]), float(box.all_ap[i].mean())]
                                for i, c in enumerate(box.ap_class_index)}}))
"""


def make_dataset(root: Path, train: int, val: int, seed: int = 0) -> Path:
    """YOLO layout: images/{train,val}/*.jpg, labels/{train,val}/*.txt, data.yaml."""
    from PIL import Image, ImageDraw, ImageFilter
    import numpy as np

    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    for split, count in (("train", train), ("val", val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            w, h = 640, 480
            base = np.linspace(rng.randint(40, 160), rng.randint(90, 230), w)[None, :, None]
            pixels = np.clip(base + noise.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(1))
            draw = ImageDraw.Draw(image)
            lines = []
            for _ in range(rng.randint(1, 4)):
                c = rng.randrange(len(CLASSES))
                side = rng.randint(40, 200)
                x, y = rng.randint(0, w - side), rng.randint(0, h - side)
                box = (x, y, x + side, y + side)
                colour = tuple(min(255, max(0, v + rng.randint(-30, 30))) for v in COLOURS[c])
                if c == 0:
                    draw.rectangle(box, fill=colour)
                elif c == 1:
                    draw.ellipse(box, fill=colour)
                else:
                    draw.polygon([(x + side / 2, y), (x, y + side), (x + side, y + side)], fill=colour)
                lines.append(f"{c} {(x + side / 2) / w:.6f} {(y + side / 2) / h:.6f} {side / w:.6f} {side / h:.6f}")
            image.save(root / "images" / split / f"{i:04d}.jpg", quality=90)
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(json.dumps({"path": str(root), "train": "images/train", "val": "images/val",
                                                "names": dict(enumerate(CLASSES))}))
    return root


def write_job(folder: Path, dataset: Path, size: int) -> Path:
    from adapters.catalog import defaults
    from adapters.frameworks import get_catalog

    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": "bench-eval", "framework": "ultralytics", "task": "object_detection", "model": "yolov8n",
            "pretrained": False, "image_size": size, "dataset": {"path": str(dataset), "format": "yolo"},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.01, "device": "cpu"},
            "advanced": defaults(get_catalog("ultralytics"))}
    job = {"job_id": "bench", "job_dir": str(folder), "device": "cpu", "checkpoint_dir": str(folder / "checkpoints"),
           "spec": spec}
    (folder / "job.json").write_text(json.dumps(job))
    return folder / "job.json"


def run(argv: list[str], env: dict, cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{argv[:4]} failed:\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--train-size", type=int, default=320)
    parser.add_argument("--work", type=Path, help="keep the dataset and the trained model here (reused)")
    parser.add_argument("--envs", type=Path, help="build or reuse the env here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vy-bench-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    env = EnvManager(args.envs or work / "envs").ensure(get_spec("ultralytics"), log=open(work / "env.log", "w"))
    environ = {**base_environ(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "",
               "OMP_NUM_THREADS": threads()}
    dataset = work / f"shapes-{args.train}-{args.val}"
    if not (dataset / "data.yaml").is_file():
        shutil.rmtree(dataset, ignore_errors=True)
        print(f"making {args.train} + {args.val} images in {dataset}", flush=True)
        make_dataset(dataset, args.train, args.val)
    checkpoint = work / f"model-{args.train}-{args.epochs}-{args.train_size}" / "train" / "weights" / "best.pt"
    if not checkpoint.is_file():
        print(f"training yolov8n for {args.epochs} epochs at {args.train_size} px (once; kept in {work})", flush=True)
        seconds, _ = run([str(env.python), "-c", TRAIN, str(dataset / "data.yaml"), str(args.train_size),
                          str(args.epochs), str(checkpoint.parent.parent.parent)], environ, work)
        print(f"trained in {seconds / 60:.1f} min", flush=True)
    job = write_job(work / "job", dataset, args.size)

    times: dict[str, list[float]] = {"visionyard": [], "ultralytics": []}
    found: dict[str, dict] = {}
    for round_ in range(args.rounds):
        order = ["visionyard", "ultralytics"] if round_ % 2 == 0 else ["ultralytics", "visionyard"]
        for side in order:
            out = work / f"out-{side}"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if side == "visionyard":
                seconds, _ = run([str(env.python), "-m", "adapters.entrypoint", "--spec", str(job), "--eval",
                                  "--checkpoint", str(checkpoint), "--out", str(out), "--batch", "16"], environ, out)
                record = json.loads((out / "eval.json").read_text())
                found[side] = {"mAP50-95": record["metrics"]["val/mAP50-95"], "mAP50": record["metrics"]["val/mAP50"],
                               "per_class": {r["class"]: [r.get("AP50"), r.get("AP50-95")] for r in record["per_class"]}}
            else:
                seconds, stdout = run([str(env.python), "-c", VAL, str(checkpoint), str(dataset / "data.yaml"),
                                       str(args.size), str(out)], environ, out)
                found[side] = json.loads(stdout.strip().splitlines()[-1])
            times[side].append(seconds)
            print(f"round {round_ + 1} {side}: {seconds:.1f} s", flush=True)

    ours, theirs = statistics.median(times["visionyard"]), statistics.median(times["ultralytics"])
    print(f"\n{args.val} images at {args.size} px, {args.rounds} rounds, {threads()} threads")
    for side in times:
        print(f"  {side:12s} median {statistics.median(times[side]):.1f} s  (min {min(times[side]):.1f}, "
              f"max {max(times[side]):.1f})")
    ratios = [a / b for a, b in zip(times["visionyard"], times["ultralytics"])]
    print(f"  ratio {ours / theirs:.3f}x (goal <= {GOAL}x); per round " + ", ".join(f"{r:.3f}" for r in ratios))
    a, b = found["visionyard"], found["ultralytics"]
    print(f"\nagreement: mAP50-95 visionyard {a['mAP50-95']:.4f} vs Ultralytics {b['mAP50-95']:.4f} "
          f"(diff {a['mAP50-95'] - b['mAP50-95']:+.4f}); mAP50 {a['mAP50']:.4f} vs {b['mAP50']:.4f} "
          f"(diff {a['mAP50'] - b['mAP50']:+.4f})")
    for name in CLASSES:
        mine, its = a["per_class"].get(name, [None, None]), b["per_class"].get(name, [None, None])
        print(f"  {name:9s} AP50 {mine[0]:.4f} vs {its[0]:.4f}   AP50-95 {mine[1]:.4f} vs {its[1]:.4f}")


if __name__ == "__main__":
    main()
