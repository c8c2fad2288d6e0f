"""The Transformers adapter's six newer tasks vs the same bare HF ``Trainer`` run in the same venv.

For each task (``--tasks``: depth_estimation, zero_shot_classification, zero_shot_detection, image_captioning,
visual_qa, video_classification) a tiny model is built from its config in the env (the tests' builders in
``tests/hf_models.py``: DPT at 32 px, CLIP at 32 px, Grounding DINO at 64 px, GIT at 32 px, ViLT at 32 px, VideoMAE
of 4 frames at 32 px), saved with ``save_pretrained``, and a dataset of the task's format is written in a temp
dir (depth maps, ImageFolder, COCO boxes, captions.jsonl, questions.jsonl, a video_folder of mp4 files);
``bench/harness.py`` builds (or reuses) the ``transformers`` env, starts a real daemon and times both sides in
alternating rounds after one untimed 1-epoch warm-up of each:

- visionyard: ``SubmitJob`` of the task's job (``model: <folder>``, ``pretrained: true``, no ``image_size``: the
  processor's own, CPU) → the job's final state, through the daemon (its adapter child, metrics, validation
  records, checkpoints, MLflow).
- bare: ``bench/transformers_tasks_bare.py`` in the env's python, process start → exit: plain ``Auto*``
  loading, the dataset files read by hand, each sample encoded as the task does, ``transformers.Trainer`` with
  the same ``TrainingArguments`` (the warm-ups' ``training_args.bin`` are compared, paths aside; the task's own
  Trainer arguments included), and a ``Trainer`` subclass where HF lacks what the task needs (SiLog for depth,
  every image against every class prompt for CLIP, generation in evaluation for GIT, answers in evaluation for
  ViLT). What it imports from visionyard is listed in that script's ``IMPORTED`` (losses HF lacks, metric
  functions). The zero-shot tasks evaluate once before training on both sides (the job's epoch 0).

Goal: each task's wall time through visionyard ≤ 1.03× bare (median/median), runs of ≥ 60 s. Wall time on a busy
box is noisy: the summary gives each task's wall and CPU ratios (median of each side, and each round's pair),
CPU being the training process's user+sys (visionyard: the daemon's reaped children), which load stretches less.

    uv run python bench/bench_transformers_tasks.py [--tasks a,b] [--rounds 3] [--epochs 3] [--scale 1.0]
                                                    [--quick] [--envs DIR] [--keep]

``--scale`` multiplies every dataset size (sized at 1.0 for bare runs of 60-80 s on
a quiet 2-core box); ``--quick`` is one round of one epoch on small datasets (a check
that every task runs on both sides, not a measurement). ``--envs`` defaults to ``$VISIONYARD_TEST_ENVS``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.datasets.images import list_images  # noqa: E402
from envs.manager import Env  # noqa: E402
from tests import hf_models  # noqa: E402
from tests.dataset_fixtures import (CAPTION_COLOURS, VQA_COLOURS, caption_references, make_coco_shapes,  # noqa: E402
                                    make_depth_dataset, vqa_questions)
from tests.fixtures import make_imagefolder  # noqa: E402

from bench_transformers import compare_args, training_arguments  # noqa: E402  (bench/ is on the path)
from child_env import base_environ, threads  # noqa: E402
from harness import CPU, WALL, BareScript, Case, Run, bare_environ, measure, report, wall_goal  # noqa: E402

GOAL_RATIO = 1.03
BARE_SCRIPT = Path(__file__).with_name("transformers_tasks_bare.py")

#: ``python VIDEOS ROOT TRAIN VAL``: a video_folder of mp4 files (a square moving left, right or not; 8 frames of
#: 32 px), TRAIN and VAL videos per class.
VIDEOS = """
import sys
from pathlib import Path
import av, numpy as np
root, counts = Path(sys.argv[1]), {"train": int(sys.argv[2]), "val": int(sys.argv[3])}
colours = [(230, 40, 40), (40, 230, 40), (40, 40, 230)]
for split, count in counts.items():
    for name, step in {"left": -2, "right": 2, "still": 0}.items():
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            with av.open(str(root / split / name / f"{name}{i}.mp4"), "w") as container:
                stream = container.add_stream("mpeg4", rate=8)
                stream.width = stream.height = 32
                stream.pix_fmt = "yuv420p"
                for f in range(8):
                    pixels = np.zeros((32, 32, 3), np.uint8)
                    x = 12 + step * (f - 4) + i % 5 - 2
                    pixels[10:20, max(0, x):max(0, x + 10)] = colours[i % 3]
                    for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
"""


# ---------------------------------------------------------------- datasets and their samples, as the job reads them


def captions(root: Path, train: int, val: int) -> Path:
    """``captions`` layout: a coloured square or circle on white, three references each."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    for split, count in (("train", train), ("val", val)):
        (root / split / "images").mkdir(parents=True)
        lines = []
        for i in range(count):
            colour, shape = rng.choice(sorted(CAPTION_COLOURS)), rng.choice(("square", "circle"))
            image = Image.new("RGB", (48, 40), "white")
            (ImageDraw.Draw(image).rectangle if shape == "square" else ImageDraw.Draw(image).ellipse)(
                (10, 6, 38, 34), fill=CAPTION_COLOURS[colour])
            image.save(root / split / "images" / f"{i}.png")
            lines.append(json.dumps({"file": f"{i}.png", "captions": caption_references(colour, shape)}))
        (root / split / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def questions(root: Path, train: int, val: int) -> Path:
    """``vqa`` layout: squares of one colour, two questions each."""
    from PIL import Image

    rng = random.Random(0)
    for split, count in (("train", train), ("val", val)):
        (root / split / "images").mkdir(parents=True)
        lines = []
        for i in range(count):
            colour = rng.choice(sorted(VQA_COLOURS))
            Image.new("RGB", (32, 24), VQA_COLOURS[colour]).save(root / split / "images" / f"{i}.png")
            lines += [json.dumps({"file": f"{i}.png", **q}) for q in vqa_questions(colour)]
        (root / split / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def jsonl(root: Path, split: str, name: str) -> list[dict]:
    return [json.loads(line) for line in (root / split / name).read_text().splitlines() if line.strip()]


def class_folders(root: Path, split: str, names: list[str], files=list_images) -> list[tuple[str, int]]:
    return [(str(p), i) for i, name in enumerate(names) for p in files(root / split / name)]


def coco_samples(root: Path, split: str) -> tuple[list, list[str]]:
    """((image path, [(class, [x, y, w, h]), ...]) per image, the class names: categories by id)."""
    doc = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    categories = sorted(doc["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(categories)}
    objects: dict[int, list] = {}
    for a in doc["annotations"]:
        objects.setdefault(a["image_id"], []).append((index[a["category_id"]], a["bbox"]))
    return ([(str(root / split / image["file_name"]), objects.get(image["id"], [])) for image in doc["images"]],
            [c["name"] for c in categories])


@dataclass
class Task:
    name: str
    model_script: str  # a tests/hf_models.py builder
    model_dir: str  # its folder under the builder's output ("" = the output itself)
    model_text: str  # for the title
    fmt: str  # the dataset format
    sizes: tuple[int, int]  # (train, val) at --scale 1: images, questions' images, or per-class counts
    make: Callable[[Path, Env, int, int], Path]  # (root, env, train, val) → the dataset
    samples: Callable[[Path], dict]  # dataset → the bare run's "train", "val" (and "class_names")
    training_args: dict  # the task's own Trainer arguments (its HFTask.training_args)
    batch: int = 8
    lr: float = 1e-4


def depth_samples(root: Path) -> dict:
    def pairs(split):
        images = list_images(root / split / "images")
        depth = {p.stem: str(p) for p in (root / split / "depth").iterdir()}
        return [(str(p), depth[Path(p).stem]) for p in images]
    return {"train": pairs("train"), "val": pairs("val")}


def folder_samples(root: Path, files=list_images) -> dict:
    names = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    return {"train": class_folders(root, "train", names, files), "val": class_folders(root, "val", names, files),
            "class_names": names}


def videos(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.mp4"))


TASKS = {t.name: t for t in (
    Task("depth_estimation", hf_models.DEPTH_MODELS, "dpt", "DPT (ViT, 4 layers, hidden 32) at 32 px", "depth",
         (5400, 670), lambda root, env, n, m: make_depth_dataset(root, train=n, val=m, val_as_npy=False),
         depth_samples, {"batch_eval_metrics": True}, lr=1e-3),
    Task("zero_shot_classification", hf_models.TINY_ZERO_SHOT, "clip", "CLIP (2+2 layers, hidden 32) at 32 px",
         "imagefolder", (4500, 600), lambda root, env, n, m: make_imagefolder(root, per_class=n, val_per_class=m),
         folder_samples, {"label_names": ["labels"]}),
    Task("zero_shot_detection", hf_models.ZERO_SHOT_DETECTION_MODELS, "grounding_dino",
         "Grounding DINO (Swin 16, d_model 32) at 64 px", "coco", (3200, 560),
         lambda root, env, n, m: make_coco_shapes(root, train=n, val=m, size=64),
         lambda root: {"train": coco_samples(root, "train")[0], "val": coco_samples(root, "val")[0],
                       "class_names": coco_samples(root, "train")[1]},
         {"eval_do_concat_batches": False}),
    Task("image_captioning", hf_models.TINY_CAPTIONERS, "git", "GIT (1+2 layers, hidden 32) at 32 px", "captions",
         (14600, 1950), lambda root, env, n, m: captions(root, n, m),
         lambda root: {s: [(str(root / s / "images" / r["file"]), r["captions"])
                           for r in jsonl(root, s, "captions.jsonl")] for s in ("train", "val")}, {}, lr=5e-4),
    Task("visual_qa", hf_models.TINY_VQA, "vilt", "ViLT (2 layers, hidden 32) at 32 px", "vqa", (5000, 650),
         lambda root, env, n, m: questions(root, n, m),
         lambda root: {s: [(str(root / s / "images" / r["file"]), r["question"], r["answers"])
                           for r in jsonl(root, s, "questions.jsonl")] for s in ("train", "val")},
         {"label_names": ["labels"]}, lr=5e-4),
    Task("video_classification", hf_models.TINY_VIDEOMAE, "", "VideoMAE (4 frames, 2 layers, hidden 32) at 32 px",
         "video_folder", (1900, 285),
         lambda root, env, n, m: (subprocess.run([str(env.python), "-c", VIDEOS, str(root), str(n), str(m)],
                                                 check=True, env=base_environ()), root)[1],
         lambda root: folder_samples(root, videos), {}, lr=5e-4),
)}


# ---------------------------------------------------------------- one task's case


def job_spec(task: Task, model: Path, dataset: Path, epochs: int, name: str) -> dict:
    return {"name": name, "framework": "transformers", "task": task.name, "model": str(model), "pretrained": True,
            "dataset": {"path": str(dataset), "format": task.fmt},
            "training": {"epochs": epochs, "batch_size": task.batch, "learning_rate": task.lr, "device": "cpu"}}


def prepare_case(task: Task, args: argparse.Namespace) -> Callable[[Path, Env], Case]:
    def prepare(tmp: Path, env: Env) -> Case:
        out = tmp / "models"
        subprocess.run([str(env.python), "-c", task.model_script, str(out)], check=True,
                       env={**base_environ(), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}, capture_output=True)
        model = out / task.model_dir if task.model_dir else out
        train, val = (max(2, round(n * args.scale)) for n in task.sizes)
        dataset = task.make(tmp / "data", env, train, val)
        samples = task.samples(dataset)
        script = BareScript(env.python, tmp / "bare", BARE_SCRIPT.read_text(), bare_environ())

        def bare(spec: dict, name: str) -> tuple[Run, Path]:
            run_dir = tmp / "bare" / name
            doc = {"task": task.name, "root": str(ROOT), "model": str(model), **samples,
                   "training_args": {**training_arguments(spec, run_dir / "checkpoints"), **task.training_args}}
            return script.run(run_dir, doc, spec["training"]["epochs"]), run_dir / "checkpoints"

        return Case(
            title=(f"{task.name}: {task.model_text} from a local folder, CPU, OMP_NUM_THREADS={threads()}, "
                   f"{len(samples['train'])} train / {len(samples['val'])} val samples ({task.fmt}), batch "
                   f"{task.batch}, {args.epochs} epochs"),
            job_spec=lambda epochs, name: job_spec(task, model, dataset, epochs, name),
            bare=bare,
            differences=lambda vy, bare_dir: compare_args(env.python, vy, bare_dir),
            compared="TrainingArguments (training_args.bin, paths aside)",
            measures=MEASURES,
            goals=lambda runs: [wall_goal(runs, GOAL_RATIO)],
            bare_marks=(("imports done", "imports"), ("model loaded", "model"),
                        ("trainer.train() returned", "trained")),
        )
    return prepare


#: What the report shows of each run (the zero-shot tasks' epoch 0 comes before the first step on both sides).
MEASURES = (
    WALL,
    ("time to the first optimizer step (submit → first progress event | process start → on_step_end)",
     lambda r: r.marks["step"], False),
    ("time to the last epoch's metrics", lambda r: r.epochs[-1], True),
    ("after the last epoch (last epoch's metrics → end: last save, exit, bookkeeping)",
     lambda r: r.wall - r.epochs[-1], False),
    CPU,
)


# ---------------------------------------------------------------- all tasks


def ratios(runs: dict[str, list[Run]], value: Callable[[Run], float]) -> tuple[float, list[float]]:
    vy, bare = [value(r) for r in runs["visionyard"]], [value(r) for r in runs["bare"]]
    return statistics.median(vy) / statistics.median(bare), [v / b for v, b in zip(vy, bare, strict=True)]


def summary(results: dict[str, dict[str, list[Run]]]) -> bool:
    print(f"\nsummary (visionyard / bare; goal wall ≤ {GOAL_RATIO}×, runs ≥ 60 s):")
    met = True
    for name, runs in results.items():
        wall, wall_rounds = ratios(runs, lambda r: r.wall)
        cpu, cpu_rounds = ratios(runs, lambda r: r.cpu)
        shortest = min(r.wall for side in runs.values() for r in side)
        ok = wall <= GOAL_RATIO
        met &= ok
        print(f"  {name:<25} wall {wall:.3f}× [{', '.join(f'{r:.3f}' for r in wall_rounds)}]   CPU {cpu:.3f}× "
              f"[{', '.join(f'{r:.3f}' for r in cpu_rounds)}]   bare median "
              f"{statistics.median(r.wall for r in runs['bare']):.1f} s, shortest run {shortest:.1f} s"
              f"{'' if shortest >= 60 else ' (< 60 s)'}   {'ok' if ok else 'MISSED'}")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every dataset size")
    parser.add_argument("--quick", action="store_true", help="1 round, 1 epoch, datasets at scale 0.01")
    parser.add_argument("--envs", type=Path, default=os.environ.get("VISIONYARD_TEST_ENVS") or None,
                        help="an envs folder to reuse (default: $VISIONYARD_TEST_ENVS, else built in the temp home)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (job logs, bare logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.scale = 1, 1, 0.01
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    if unknown := [n for n in names if n not in TASKS]:
        parser.error(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")

    begun = time.perf_counter()
    results: dict[str, dict[str, list[Run]]] = {}
    failed: list[str] = []
    for name in names:
        started = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f"vy-bench-{name}-"))
        print(f"\n=== {name}", flush=True)
        try:
            case, runs = measure(tmp, args, "transformers", prepare_case(TASKS[name], args))
        except (RuntimeError, subprocess.CalledProcessError, SystemExit) as exc:  # the other tasks still run
            print(f"{name} FAILED: {exc}", flush=True)
            failed.append(name)
            continue
        finally:
            if args.keep:
                print(f"kept {tmp}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        report(case, runs, args.rounds, time.perf_counter() - started)
        results[name] = runs
        summary({name: runs})
    met = summary(results)
    print(f"{'failed: ' + ', '.join(failed) + '; ' if failed else ''}[{time.perf_counter() - begun:.0f} s in all]")
    return 0 if met and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
