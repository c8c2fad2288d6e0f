"""The Transformers adapter vs bare HF ``Trainer`` in the same venv.

A small ViT (made from a ``ViTConfig`` in the env, saved with ``save_pretrained`` next to a 64 px
``ViTImageProcessor``) and an ImageFolder dataset (``make_imagefolder``: three colour classes, 64
px) are made in a temp dir; the ``transformers`` env is built (or reused) with the project's
``EnvManager`` inside the daemon's home, and a real daemon is started in that home. Timed, in
alternating rounds (the order flips every round), after one untimed 1-epoch warm-up of each:

- visionyard: ``SubmitJob`` of an ``image_classification`` job (``model: <folder>``,
  ``pretrained: true``, CPU) → the job's final state (``finished_at``); the first optimizer step
  and each epoch's metrics are the times the child stamped on its first ``progress`` report and on
  its ``metrics`` reports; CPU is the daemon's reaped-children time (``/proc`` cutime + cstime).
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

    uv run python bench/bench_transformers.py [--rounds 5] [--epochs 3] [--per-class 600] [--envs DIR]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.catalog import defaults  # noqa: E402
from adapters.datasets.images import list_images  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from adapters.metrics import primary_metric  # noqa: E402
from adapters.transformers.tasks.classification import classification_metrics  # noqa: E402
from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from protos import visionyard_pb2 as pb  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402

from child_env import alternating_rounds, base_environ, threads  # noqa: E402  (bench/ is on the path)
from tests.fixtures import make_imagefolder  # noqa: E402

GOAL_RATIO = 1.03
TASK = "image_classification"
TICK = os.sysconf("SC_CLK_TCK")

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


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of a live process from /proc (``children``: of its children it has waited for)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2:].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def job_spec(model: Path, dataset: Path, args: argparse.Namespace, epochs: int, name: str) -> dict:
    return {"name": name, "framework": "transformers", "task": TASK, "model": str(model), "pretrained": True,
            "image_size": args.size, "dataset": {"path": str(dataset), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": args.batch, "learning_rate": args.lr, "device": "cpu"}}


def training_arguments(spec: dict, out: Path) -> dict:
    """What ``TransformersAdapter.training_arguments()`` passes for ``spec`` on CPU, no ``advanced``."""
    d, t = defaults(get_catalog("transformers")), spec["training"]
    primary = primary_metric(spec["task"])
    return dict(
        output_dir=str(out), num_train_epochs=t["epochs"], per_device_train_batch_size=t["batch_size"],
        per_device_eval_batch_size=t["batch_size"], learning_rate=t["learning_rate"],
        weight_decay=d["optimizer"]["weight_decay"], adam_beta1=d["optimizer"]["beta1"],
        adam_beta2=d["optimizer"]["beta2"], lr_scheduler_type=d["scheduler"]["type"],
        warmup_steps=d["scheduler"]["warmup_steps"] or d["scheduler"]["warmup_ratio"] or 0,
        gradient_accumulation_steps=d["gradient_accumulation_steps"], max_grad_norm=d["max_grad_norm"],
        label_smoothing_factor=d["label_smoothing"] or 0.0, fp16=False, bf16=False, use_cpu=True,
        eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch", save_total_limit=2,
        metric_for_best_model=primary.name.removeprefix("val/"), greater_is_better=primary.higher_is_better,
        dataloader_num_workers=t.get("num_workers", 0), seed=t.get("seed", 0), data_seed=t.get("seed", 0),
        remove_unused_columns=False, report_to="none", disable_tqdm=True,
    )


def samples(split_dir: Path, class_names: list[str]) -> list[tuple[str, int]]:
    """(path, label) per image, in the imagefolder reader's order."""
    return [(str(p), i) for i, name in enumerate(class_names) for p in list_images(split_dir / name)]


@dataclass
class Run:
    wall: float  # seconds from submit / process start to the final state / exit
    step: float  # ... to the first optimizer step
    epochs: list[float]  # ... to each epoch's metrics
    cpu: float  # CPU seconds of the training process
    marks: dict[str, float] = field(default_factory=dict)  # other moments, same origin


class Bare:
    """Bare HF ``Trainer`` in the env's python: one subprocess per run, nothing of visionyard's."""

    def __init__(self, python: Path, work: Path, model: Path, dataset: Path, args: argparse.Namespace):
        self.python, self.work, self.model, self.args = python, work, model, args
        work.mkdir(parents=True, exist_ok=True)
        self.script = work / "bare_train.py"
        self.script.write_text(BARE_SCRIPT)
        self.class_names = sorted(d.name for d in (dataset / "train").iterdir() if d.is_dir())
        self.train = samples(dataset / "train", self.class_names)
        self.val = samples(dataset / "val", self.class_names)
        self.env = base_environ()
        self.env.update(PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads())

    def run(self, spec: dict, name: str) -> tuple[Run, Path]:
        """The run, timed from process start; and its checkpoint dir."""
        out = self.work / name
        out.mkdir()
        doc = {"model": str(self.model), "image_size": spec["image_size"], "class_names": self.class_names,
               "train": self.train, "val": self.val,
               "training_args": training_arguments(spec, out / "checkpoints")}
        (out / "args.json").write_text(json.dumps(doc))
        log_path = out / "output.log"
        with open(log_path, "ab") as log:
            started = time.time()
            proc = subprocess.Popen([str(self.python), str(self.script), str(out / "args.json")], cwd=out,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.time() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"bare run {name} exited {os.waitstatus_to_exitcode(status)}; see {log_path}")
        marks = {}
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("VYBENCH "):
                what, at = line[len("VYBENCH "):].rsplit(" ", 1)
                marks[what] = float(at) - started
        epochs = [marks[f"epoch {e}"] for e in range(1, spec["training"]["epochs"] + 1)]
        return Run(wall, marks["step"], epochs, usage.ru_utime + usage.ru_stime, marks), out / "checkpoints"


def through_daemon(daemon, spec: dict) -> tuple[Run, Path]:
    """The job, timed from the submit call; and its checkpoint dir."""
    client, pid = daemon.client, daemon.proc.pid
    daemon_before, child_before = cpu_seconds(pid), cpu_seconds(pid, children=True)
    started = time.time()
    job = client.submit(spec)
    marks = {"submit returned": time.time() - started}
    epochs, step = [], None
    for event in client.watch(job.id):
        kind = event.WhichOneof("kind")
        if kind == "metrics":
            epochs.append(event.time - started)
        elif kind == "progress" and step is None:
            step = event.time - started
        elif kind == "status":
            marks.setdefault(pb.JobState.Name(event.status.state), event.time - started)
    final = client.get(job.id)  # SUCCEEDED is stamped after the daemon has reaped the child
    assert final.state == pb.SUCCEEDED, final.error
    marks["daemon cpu"] = cpu_seconds(pid) - daemon_before
    child_cpu = cpu_seconds(pid, children=True) - child_before
    return Run(final.finished_at - started, step, epochs, child_cpu, marks), Path(final.job_dir) / "checkpoints"


def compare_args(python: Path, visionyard: Path, bare: Path) -> list[str]:
    """TrainingArguments (the newest checkpoint's training_args.bin) that differ, paths aside."""
    newest = [max(d.glob("checkpoint-*/training_args.bin"), key=lambda p: p.stat().st_mtime)
              for d in (visionyard, bare)]
    out = subprocess.run([str(python), "-c", COMPARE_ARGS, *map(str, newest)], check=True, capture_output=True,
                         text=True).stdout
    return out.splitlines()


def row(label: str, values: list[float], base: list[float] | None = None) -> str:
    median = statistics.median(values)
    ratio = f"{median / statistics.median(base):7.3f}×" if base else " " * 8
    return (f"    {label:<12}{median:8.2f}{min(values):8.2f}{max(values):8.2f}{ratio}   "
            f"[{', '.join(f'{v:.2f}' for v in values)}]")


#: What the report shows of each run: (title, value of a Run, whether the bare ratio means much).
MEASURES = (
    ("wall time (submit → final state | process start → exit)", lambda r: r.wall, True),
    ("time to the first optimizer step (submit → first progress event | process start → on_step_end)",
     lambda r: r.step, False),
    ("time to the first epoch's metrics", lambda r: r.epochs[0], False),
    ("epochs 2..N (first → last epoch's metrics)", lambda r: r.epochs[-1] - r.epochs[0], True),
    ("after the last epoch (last epoch's metrics → end: last save, exit, bookkeeping)",
     lambda r: r.wall - r.epochs[-1], False),
    ("CPU seconds of the training process (visionyard: the daemon's reaped-children CPU, /proc cutime+cstime)",
     lambda r: r.cpu, True),
)


def report(runs: dict[str, list[Run]], args: argparse.Namespace, train: int, val: int, seconds: float) -> bool:
    vy, bare = runs["visionyard"], runs["bare"]
    print(f"\nViT (4 layers, hidden 96, patch 8) from a local folder, CPU, OMP_NUM_THREADS={threads()}, {train} train "
          f"/ {val} val images at {args.size} px, batch {args.batch}, {args.epochs} epochs; {args.rounds} rounds, "
          "order alternating; seconds")
    print(f"    {'':<12}{'median':>8}{'min':>8}{'max':>8}{'ratio':>8}   rounds")
    for title, value, ratio in MEASURES:
        print(f"  {title}")
        base = [value(r) for r in bare] if ratio else None
        for name, values in runs.items():
            print(row(name, [value(r) for r in values], base))

    def med(runs_: list[Run], key: str) -> str:
        return f"{statistics.median(r.marks[key] for r in runs_):.2f}"

    print(f"  visionyard (medians, from submit): SubmitJob returned {med(vy, 'submit returned')} s, PREPARING "
          f"{med(vy, 'PREPARING')} s, RUNNING (child exec'd) {med(vy, 'RUNNING')} s; daemon CPU during a job "
          f"{med(vy, 'daemon cpu')} s")
    print(f"  bare (medians, from process start): imports done {med(bare, 'imports')} s, model loaded "
          f"{med(bare, 'model')} s, trainer.train() returned {med(bare, 'trained')} s")
    paired = [v.wall / b.wall for v, b in zip(vy, bare, strict=True)]  # each round's pair ran back to back
    print(f"  wall ratio per round (visionyard / bare): median {statistics.median(paired):.3f}× (min "
          f"{min(paired):.3f}, max {max(paired):.3f}); load average at the end {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    ratio = statistics.median(r.wall for r in vy) / statistics.median(r.wall for r in bare)
    ok = ratio <= GOAL_RATIO
    print(f"goal: wall ≤ {GOAL_RATIO}× bare: {ratio:.3f}× {'ok' if ok else 'MISSED'}  [{seconds:.0f} s total]")
    return ok


def measure(tmp: Path, args: argparse.Namespace) -> tuple[dict[str, list[Run]], int, int]:
    home = tmp / "home"
    home.mkdir()
    if args.envs:
        args.envs.mkdir(parents=True, exist_ok=True)
        (home / "envs").symlink_to(args.envs.absolute(), target_is_directory=True)
    with open(tmp / "env-build.log", "w") as build_log:
        env = EnvManager(home / "envs").ensure(get_spec("transformers"), log=build_log)
    print(f"env {env.name} {'reused' if env.reused else f'built in {env.build_seconds:.1f} s'}; "
          f"OMP_NUM_THREADS={threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    model = tmp / "model"
    subprocess.run([str(env.python), "-c", MAKE_MODEL, str(model), str(args.size)], check=True,
                   env={**base_environ(), "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    dataset = make_imagefolder(tmp / "data", per_class=args.per_class, val_per_class=args.val_per_class,
                               size=args.size)
    bare = Bare(env.python, tmp / "bare", model, dataset, args)

    daemon = start_daemon(home, home / "envs")
    runs: dict[str, list[Run]] = {"visionyard": [], "bare": []}
    try:
        print("warm-up: one 1-epoch run of each (untimed)...", flush=True)
        _, vy_dir = through_daemon(daemon, job_spec(model, dataset, args, 1, "warm"))
        _, bare_dir = bare.run(job_spec(model, dataset, args, 1, "warm"), "warm")
        if differences := compare_args(env.python, vy_dir, bare_dir):
            raise SystemExit("bare TrainingArguments differ from the adapter's:\n  " + "\n  ".join(differences))
        print("bare TrainingArguments = the adapter's (training_args.bin, paths aside)", flush=True)
        spec = job_spec(model, dataset, args, args.epochs, "bench")
        for i, which in alternating_rounds(args.rounds):
            if which == "visionyard":
                run, _ = through_daemon(daemon, dict(spec, name=f"round-{i}"))
            else:
                run, _ = bare.run(spec, f"round-{i}")
            runs[which].append(run)
            print(f"  round {i + 1} {which:<10} wall {run.wall:6.2f} s   first step {run.step:6.2f} s   "
                  f"first epoch {run.epochs[0]:6.2f} s   CPU {run.cpu:6.2f} s", flush=True)
    finally:
        daemon.stop()
    return runs, len(bare.train), len(bare.val)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=600, help="train images per class (3 classes)")
    parser.add_argument("--val-per-class", type=int, default=100, help="val images per class")
    parser.add_argument("--size", type=int, default=64, help="image size (px), also the ViT's")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in the temp home)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (job logs, bare logs)")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-transformers-"))
    try:
        runs, train, val = measure(tmp, args)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report(runs, args, train, val, time.perf_counter() - begun) else 1


if __name__ == "__main__":
    raise SystemExit(main())
