"""The Transformers adapter vs bare HF ``Trainer`` in the same venv.

A small ViT (made from a ``ViTConfig`` in the env, saved with ``save_pretrained`` next to a 64 px
``ViTImageProcessor``) and an ImageFolder dataset (``make_imagefolder``: three colour classes, 64
px) are made in a temp dir; ``bench/harness.py`` builds (or reuses) the ``transformers`` env, starts
a real daemon and times both sides in alternating rounds after one untimed 1-epoch warm-up of each:

- visionyard: ``SubmitJob`` of an ``image_classification`` job (``model: <folder>``,
  ``pretrained: true``, CPU) → the job's final state; the first optimizer step and each epoch's
  metrics are the times the child stamped on its first ``progress`` report and on its ``metrics``
  reports.
- bare:      a script in the env's python doing what the adapter does, as a subprocess: process
  start → exit. The same ``TrainingArguments`` as ``TransformersAdapter.training_arguments()``
  builds from the catalog's defaults (the warm-ups' ``training_args.bin`` are compared, paths
  aside), the same ``AutoImageProcessor`` (resized as ``image_processor()`` does) and
  ``AutoModelForImageClassification.from_pretrained(folder, num_labels, id2label, label2id,
  ignore_mismatched_sizes=True)``, a torch ``Dataset`` that opens each image, flips train images
  with p=0.5 and runs the processor (as ``ClassificationTask.encode``), the same collate, and
  ``classification_metrics`` (its source, copied in: the bare run imports nothing of
  visionyard's). Its callback only prints a timestamp at the first step and each evaluation.
  Same ``OMP_NUM_THREADS`` as the daemon gives its children.

Goal: wall time through visionyard ≤ 1.03× bare (median/median). Each round's own ratio is shown
too: on a busy box, where ``OMP_NUM_THREADS`` = cores, a run can stretch several-fold, so look at
the rounds and the load average before trusting a median.

Both write and reuse bytecode, as Python does by default: the bare runs the ``.pyc`` files the
warm-up wrote into the venv, the jobs those in the home's shared ``pycache`` (the daemon lets its
children write there even when it runs with ``PYTHONDONTWRITEBYTECODE``).

    uv run python bench/bench_transformers.py [--rounds 5] [--epochs 3] [--per-class 600] [--val-per-class 100]
                                              [--size 64] [--batch 16] [--lr 5e-4] [--envs DIR] [--keep]
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.catalog import defaults  # noqa: E402
from adapters.datasets.images import list_images  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from adapters.job import TRAINING_DEFAULTS  # noqa: E402
from adapters.metrics import primary_metric  # noqa: E402
from adapters.transformers.tasks.classification import classification_metrics  # noqa: E402
from envs.manager import Env  # noqa: E402

from child_env import base_environ, threads  # noqa: E402  (bench/ is on the path)
from harness import CPU, WALL, BareScript, Case, Run, arguments, bare_environ, run_bench, wall_goal  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402

GOAL_RATIO = 1.03
TASK = "image_classification"

MAKE_MODEL = """\
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

size = int(sys.argv[2])
config = ViTConfig(image_size=size, patch_size=8, hidden_size=96, num_hidden_layers=4, num_attention_heads=4,
                   intermediate_size=192, num_labels=3)
ViTForImageClassification(config).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": size, "width": size}).save_pretrained(sys.argv[1])
"""

BARE_SCRIPT = """\
import json, random, sys, time


def mark(what):
    print(f"VYBENCH {what} {time.time():.6f}", flush=True)


args = json.loads(open(sys.argv[1]).read())
import numpy as np
import torch
from PIL import Image
from transformers import (AutoImageProcessor, AutoModelForImageClassification, Trainer, TrainerCallback,
                          TrainingArguments)
from transformers.utils import logging as hf_logging

mark("imports")
hf_logging.disable_progress_bar()

METRICS_SOURCE


class Folder(torch.utils.data.Dataset):
    def __init__(self, samples, train):
        self.samples, self.train = samples, train

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with Image.open(path) as image:
            image = image.convert("RGB")
        if self.train and random.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return {"pixel_values": processor(images=image, return_tensors="pt")["pixel_values"][0], "labels": label}


def collate(batch):
    return {key: torch.stack([item[key] for item in batch]) if hasattr(batch[0][key], "shape")
            else torch.tensor([item[key] for item in batch]) for key in batch[0]}


def compute_metrics(eval_pred):
    return classification_metrics(np.asarray(eval_pred.predictions), np.asarray(eval_pred.label_ids))


class Marks(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            mark("step")

    def on_evaluate(self, args, state, control, **kwargs):
        mark(f"epoch {round(state.epoch)}")


names = args["class_names"]
processor = AutoImageProcessor.from_pretrained(args["model"])
size = getattr(processor, "size", None)
if isinstance(size, dict) and {"height", "width"} <= set(size):
    processor.size = {"height": args["image_size"], "width": args["image_size"]}
model = AutoModelForImageClassification.from_pretrained(
    args["model"], ignore_mismatched_sizes=True, num_labels=len(names), id2label=dict(enumerate(names)),
    label2id={name: i for i, name in enumerate(names)})
mark("model")
trainer = Trainer(model=model, args=TrainingArguments(**args["training_args"]),
                  train_dataset=Folder(args["train"], True), eval_dataset=Folder(args["val"], False),
                  data_collator=collate, compute_metrics=compute_metrics, processing_class=processor,
                  callbacks=[Marks()])
trainer.train()
mark("trained")
""".replace("METRICS_SOURCE", inspect.getsource(classification_metrics))

COMPARE_ARGS = """\
import sys
import torch

a, b = (torch.load(p, weights_only=False).to_dict() for p in sys.argv[1:3])
for key in sorted(set(a) | set(b)):
    if key not in ("output_dir", "logging_dir") and a.get(key) != b.get(key):
        print(f"{key}: visionyard {a.get(key)!r}, bare {b.get(key)!r}")
"""


def job_spec(model: Path, dataset: Path, args: argparse.Namespace, epochs: int, name: str) -> dict:
    return {"name": name, "framework": "transformers", "task": TASK, "model": str(model), "pretrained": True,
            "image_size": args.size, "dataset": {"path": str(dataset), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": args.batch, "learning_rate": args.lr, "device": "cpu"}}


def training_arguments(spec: dict, out: Path) -> dict:
    """What ``TransformersAdapter.training_arguments()`` passes for ``spec`` on CPU, no ``advanced``."""
    d, t, controls = defaults(get_catalog("transformers")), spec["training"], TRAINING_DEFAULTS
    primary = primary_metric(spec["task"])
    return dict(
        output_dir=str(out), num_train_epochs=t["epochs"], per_device_train_batch_size=t["batch_size"],
        per_device_eval_batch_size=t["batch_size"], learning_rate=t["learning_rate"],
        weight_decay=d["optimizer"]["weight_decay"], adam_beta1=d["optimizer"]["beta1"],
        adam_beta2=d["optimizer"]["beta2"], lr_scheduler_type=d["scheduler"]["type"],
        warmup_steps=d["scheduler"]["warmup_steps"] or d["scheduler"]["warmup_ratio"] or 0,
        gradient_accumulation_steps=max(t.get("gradient_accumulation", controls["gradient_accumulation"]), 1),
        **({} if (clip := t.get("gradient_clip", controls["gradient_clip"])) is None else {"max_grad_norm": clip}),
        label_smoothing_factor=d["label_smoothing"] or 0.0, fp16=False, bf16=False, use_cpu=True,
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch", save_total_limit=2,
        metric_for_best_model=primary.name.removeprefix("val/"), greater_is_better=primary.higher_is_better,
        dataloader_num_workers=t.get("num_workers", 0), seed=t.get("seed", 0), data_seed=t.get("seed", 0),
        remove_unused_columns=False, report_to="none", disable_tqdm=True,
    )


def samples(split_dir: Path, class_names: list[str]) -> list[tuple[str, int]]:
    """(path, label) per image, in the imagefolder reader's order."""
    return [(str(p), i) for i, name in enumerate(class_names) for p in list_images(split_dir / name)]


class Bare:
    """Bare HF ``Trainer`` in the env's python: one subprocess per run, nothing of visionyard's."""

    def __init__(self, python: Path, work: Path, model: Path, dataset: Path):
        self.work, self.model = work, model
        self.script = BareScript(python, work, BARE_SCRIPT, bare_environ())
        self.class_names = sorted(d.name for d in (dataset / "train").iterdir() if d.is_dir())
        self.train = samples(dataset / "train", self.class_names)
        self.val = samples(dataset / "val", self.class_names)

    def run(self, spec: dict, name: str) -> tuple[Run, Path]:
        """The run, timed from process start; and its checkpoint dir."""
        out = self.work / name
        doc = {"model": str(self.model), "image_size": spec["image_size"], "class_names": self.class_names,
               "train": self.train, "val": self.val,
               "training_args": training_arguments(spec, out / "checkpoints")}
        return self.script.run(out, doc, spec["training"]["epochs"]), out / "checkpoints"


def compare_args(python: Path, visionyard: Path, bare: Path) -> list[str]:
    """TrainingArguments (the newest checkpoint's training_args.bin) that differ, paths aside."""
    newest = [max(d.glob("checkpoint-*/training_args.bin"), key=lambda p: p.stat().st_mtime)
              for d in (visionyard, bare)]
    out = subprocess.run([str(python), "-c", COMPARE_ARGS, *map(str, newest)], check=True, capture_output=True,
                         text=True).stdout
    return out.splitlines()


#: What the report shows of each run: (title, value of a Run, whether the bare ratio means much).
MEASURES = (
    WALL,
    ("time to the first optimizer step (submit → first progress event | process start → on_step_end)",
     lambda r: r.marks["step"], False),
    ("time to the first epoch's metrics", lambda r: r.epochs[0], False),
    ("epochs 2..N (first → last epoch's metrics)", lambda r: r.epochs[-1] - r.epochs[0], True),
    ("after the last epoch (last epoch's metrics → end: last save, exit, bookkeeping)",
     lambda r: r.wall - r.epochs[-1], False),
    CPU,
)


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, epochs=3, size=64, batch=16, size_help="image size (px), also the ViT's")
    parser.add_argument("--per-class", type=int, default=600, help="train images per class (3 classes)")
    parser.add_argument("--val-per-class", type=int, default=100, help="val images per class")
    parser.add_argument("--lr", type=float, default=5e-4)
    args = parser.parse_args(argv)

    def prepare(tmp: Path, env: Env) -> Case:
        model = tmp / "model"
        subprocess.run([str(env.python), "-c", MAKE_MODEL, str(model), str(args.size)], check=True,
                       env={**base_environ(), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        dataset = make_imagefolder(tmp / "data", per_class=args.per_class, val_per_class=args.val_per_class,
                                   size=args.size)
        bare = Bare(env.python, tmp / "bare", model, dataset)
        return Case(
            title=(f"ViT (4 layers, hidden 96, patch 8) from a local folder, CPU, OMP_NUM_THREADS={threads()}, "
                   f"{len(bare.train)} train / {len(bare.val)} val images at {args.size} px, batch {args.batch}, "
                   f"{args.epochs} epochs"),
            job_spec=lambda epochs, name: job_spec(model, dataset, args, epochs, name),
            bare=bare.run,
            differences=lambda vy, bare_dir: compare_args(env.python, vy, bare_dir),
            compared="TrainingArguments (training_args.bin, paths aside)",
            measures=MEASURES,
            goals=lambda runs: [wall_goal(runs, GOAL_RATIO)],
            bare_marks=(("imports done", "imports"), ("model loaded", "model"), ("trainer.train() returned", "trained")),
        )

    return run_bench(args, "transformers", prepare)


if __name__ == "__main__":
    raise SystemExit(main())
