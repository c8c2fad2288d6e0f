"""An adapter's ``predict_batch`` of N images against N ``predict`` calls, in one process of its env.

Per framework: timm resnet18 at 224 px (a 1000-class head, fresh weights) and Ultralytics yolov8n
from its yaml (untrained) at 640 px. The framework's env is the daemon's (the project's
``EnvManager`` and spec hash; built here in a temp folder, or reused with ``--envs``). A script in it
builds the adapter as the warm worker does (``adapters.serve``: the job's adapter, device ``auto``,
CPU here), loads a checkpoint it made in the env, warms both paths once, then times per round one
``predict_batch`` of the N images and N ``predict`` calls of the same images, which goes first
flipping every round. The images are N photo-like JPEGs of one size (640x480), so Ultralytics
batches them all (it batches images of one size together: ``UltralyticsAdapter.predict_batch``).

Reported: images/s of each side (median, min, max over rounds), the ratio of the medians, and each
round's own ratio. The child gets the threads the daemon gives a child (``bench/child_env.py``;
``OMP_NUM_THREADS`` set here overrides them). On a box whose cores other work shares, one thread is
the steadier measure: threads that wait on each other lose most when one of them is descheduled.

    uv run python bench/bench_predict_batch.py [--rounds 5] [--images 16] [--frameworks timm ultralytics]
                                               [--envs DIR]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.catalog import defaults  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402

from child_env import base_environ, threads  # noqa: E402  (bench/ is on the path)

#: framework -> (task, model, image size); the checkpoint each makes is in ``IN_ENV``.
CASES = {
    "timm": ("image_classification", "resnet18", 224),
    "ultralytics": ("object_detection", "yolov8n", 640),
}

#: Part of the scripts run in a framework's env (here and in bench_export.py), after an adapter was built (it
#: sets Ultralytics' offline, quiet environment up): writes `checkpoint` for `framework`, fresh weights.
MAKE_CHECKPOINT = """
if framework == "timm":
    import timm, torch
    model = timm.create_model("resnet18", num_classes=1000)
    torch.save({"model": model.state_dict(), "model_name": "resnet18", "num_classes": 1000, "image_size": 224,
                "class_names": [f"class {i}" for i in range(1000)], "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225]}, checkpoint)
elif framework == "ultralytics":
    from ultralytics import YOLO
    YOLO("yolov8n.yaml").save(checkpoint)
else:  # a ViT of ViT-Small's shape, saved as a save_pretrained folder
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
    config = ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                       num_labels=1000)
    ViTForImageClassification(config).save_pretrained(checkpoint)
    ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(checkpoint)
"""

# Run in the framework's env: FRAMEWORK JOB_JSON CHECKPOINT ROUNDS IMAGE...; one JSON line per timed side.
IN_ENV = """
import dataclasses, json, sys, time
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter

framework, spec, checkpoint, rounds, images = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
adapter = build_adapter(dataclasses.replace(Job.from_file(spec), device="auto"), Reporter(None))
""" + MAKE_CHECKPOINT + """
adapter.load_checkpoint(checkpoint)


def batch():
    adapter.predict_batch(images, 5, False)


def alone():
    for image in images:
        adapter.predict(image, 5, False)


batch(), alone()  # warm: first calls set things up (Ultralytics' predictor, allocator pools)
for r in range(rounds):
    for side, run in ((("batch", batch), ("alone", alone)) if r % 2 == 0 else (("alone", alone), ("batch", batch))):
        started = time.perf_counter()
        run()
        print(json.dumps({"round": r, "side": side, "images_per_s": len(images) / (time.perf_counter() - started)}),
              flush=True)
"""


def make_images(folder: Path, count: int, size: tuple[int, int] = (640, 480)) -> list[Path]:
    """``count`` photo-like JPEGs: a gradient, a few shapes, noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.linear_gradient("L").resize(size).convert("RGB")
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y = rng.randint(0, size[0] - 80), rng.randint(0, size[1] - 80)
            colour = tuple(rng.randint(0, 255) for _ in range(3))
            draw.ellipse([x, y, x + rng.randint(30, 200), y + rng.randint(30, 200)], fill=colour)
        image = Image.blend(image, Image.effect_noise(size, 40).convert("RGB"), 0.2).filter(ImageFilter.SMOOTH)
        paths.append(folder / f"{i}.jpg")
        image.save(paths[-1], quality=90)
    return paths


def write_job(folder: Path, framework: str, case: tuple[str, str, int] | None = None) -> Path:
    """A job.json in `folder` for the framework's case (task, model, image size; default `CASES`')."""
    task, model, size = case or CASES[framework]
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": "bench", "framework": framework, "task": task, "model": model, "pretrained": False,
            "image_size": size, "dataset": {"path": str(folder), "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 16, "learning_rate": 0.01, "device": "cpu", "num_workers": 0,
                         "seed": 0},
            "advanced": defaults(get_catalog(framework)), "weights": None, "resume": None}
    job = {"job_id": f"bench-{framework}", "job_dir": str(folder), "device": "cpu",
           "checkpoint_dir": str(folder / "checkpoints"), "spec": spec}
    (folder / "job.json").write_text(json.dumps(job))
    return folder / "job.json"


def run_in_env(framework: str, envs: Path, tmp: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """`script` with `args` in the framework's env (built in `envs`, or reused), as the daemon runs a child:
    CPU only, its threads, offline; exits when it fails."""
    with open(tmp / f"{framework}-env-build.log", "w") as log:
        env = EnvManager(envs).ensure(get_spec(framework), log=log)
    print(f"{framework}: env {env.name} {'reused' if env.reused else f'built in {env.build_seconds:.1f} s'}",
          flush=True)
    environ = {**base_environ(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "",
               "OMP_NUM_THREADS": threads(), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(env.python), "-c", script, *args], env=environ, cwd=tmp, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{framework}: the script failed:\n{done.stderr[-3000:]}")
    return done


def measure(framework: str, envs: Path, tmp: Path, images: list[Path], rounds: int) -> dict[str, list[float]]:
    job = write_job(tmp / f"job-{framework}", framework)
    done = run_in_env(framework, envs, tmp, IN_ENV, framework, str(job), str(tmp / f"{framework}.pt"), str(rounds),
                      *map(str, images))
    rates: dict[str, list[float]] = {"batch": [], "alone": []}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            rates[row["side"]].append(row["images_per_s"])
    return rates


def report(framework: str, rates: dict[str, list[float]], count: int) -> None:
    task, model, size = CASES[framework]
    batch, alone = rates["batch"], rates["alone"]
    print(f"\n{framework} {model} ({task}) at {size} px, CPU, OMP_NUM_THREADS={threads()}, {count} images of 640x480, "
          f"{len(batch)} rounds (alternating):")
    for name, values in ((f"predict_batch({count})", batch), (f"{count} x predict", alone)):
        print(f"  {name:<20} median {statistics.median(values):7.1f} images/s  min {min(values):7.1f}  "
              f"max {max(values):7.1f}")
    ratios = [b / a for b, a in zip(batch, alone, strict=True)]
    print(f"  speedup (median/median) {statistics.median(batch) / statistics.median(alone):.2f}x; "
          f"per round {', '.join(f'{r:.2f}' for r in ratios)}")


def run_bench(description: str, cases: dict, measure, report, prefix: str) -> None:
    """The command line of the benches over framework envs: per framework `measure(framework, envs, tmp,
    images, rounds)`, then `report(framework, found, image count)`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--frameworks", nargs="+", choices=list(cases), default=list(cases))
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in a temp folder)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        envs = args.envs or tmp / "envs"
        envs.mkdir(parents=True, exist_ok=True)
        images = make_images(tmp / "images", args.images)
        results = {fw: measure(fw, envs, tmp, images, args.rounds) for fw in args.frameworks}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for framework, found in results.items():
        report(framework, found, args.images)


if __name__ == "__main__":
    run_bench(__doc__.splitlines()[0], CASES, measure, report, "vy-bench-predict-batch-")
