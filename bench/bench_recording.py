"""Recording per-class results: an epoch's validation with the validation record against the same validation without it.

"Recording" is what an adapter does per validation beyond its scalar metrics: the confusion matrix, the per-class
rows (and curves), ``ValidationRecord.of`` and ``ResultsWriter.write`` under the job's ``results/val/``. Per case, in
the framework's env (the daemon's ``EnvManager`` and spec; built in a temp folder, or reused with ``--envs``), one
process builds the adapter from a job.json (``build_adapter``, ``Reporter(None)``, CPU, ``num_workers: 0``) on a
dataset made in code, with fresh weights, and times one validation per side and round:

- timm (resnet10t at 64 px, 500 val images of 10 classes, batch 32): recording = ``TimmAdapter.validate(epoch)`` as
  a training epoch calls it (loss, ``ConfusionMatrix`` per batch, top-5, ``classification_results``, the record
  written); baseline = the validate before the record: the same loop (``steps.eval_model``, autocast, loss) with
  torchmetrics top-1 accuracy, macro F1 and top-5, nothing kept or written.
- Ultralytics (yolov8n from its yaml at ``--yolo-size`` px, 100 val images of 320 px with two boxes each,
  ``make_yolo_task``; batch 16, its val loader 32): the adapter's ``train()`` runs one epoch on 8 images; at that
  epoch's end (after Ultralytics' own validation and the adapter's ``on_fit_epoch_end``) the rounds run in the
  trainer as it is, then training stops. recording = ``trainer.validate()`` with the adapter's callbacks
  (``ConfusionCounter`` hooks the validator's ``_process_batch``) + the adapter's ``_on_fit_epoch_end`` (epoch
  metrics, ``validation_results``, the record); baseline = ``trainer.validate()`` with neither our callbacks nor the
  hook (Ultralytics' own validator) + ``_on_fit_epoch_end`` with no validation of ours to record (the epoch's
  metrics only). A fresh head scores every box alike, near its bias init (a few thousandths with two classes):
  nothing reaches 0.25, leaving the matrix no detection to match, so its class logits get a fixed random field
  (``SPREAD``; ``--fresh-head`` leaves the head as it is): 300 boxes per image after NMS, about 3 above 0.25 (the
  report says how many).
- Transformers, image classification (a tiny ViT, 32 px, 1,000 val images of 10 classes, batch 32) and object
  detection (the tiny D-FINE of ``tests/hf_models.py``, 30 queries, 64 px, 120 val images of ``make_yolo_task``,
  batch 16): the adapter's ``train()`` builds its Trainer (the task's class, arguments, datasets, collate,
  ``compute_metrics``, the reporting callback), whose ``train`` the bench replaces by the rounds. recording =
  ``Trainer.evaluate()`` (``compute_metrics``, then the callback's ``record_validation``); baseline = the same
  evaluate with the record's extra work off: classification's ``compute_metrics`` the one before the record
  (``classification_metrics``: accuracy, top-5, macro F1 from the logits); detection's COCOeval, AP, precision and
  recall as before, without the matched confusion matrix and the PR curves (``matched_confusion_matrix``,
  ``pr_precision``, ``pr_curve`` no-ops); no record either way (``record_validation`` a no-op).

A third side, "no write", is the recording with ``adapter.results.write`` a no-op: what writing the files costs.
One untimed recording warms the process up (for detection it also counts the boxes), then ``--rounds`` rounds
run each side once, in an order that rotates every round, ``gc.collect()`` before each timed run; each side's
first run's scalar metrics are compared with the recording's. Reported per case: each side's
wall and process CPU seconds (median, min, max, ratio to the baseline's median, every round), the recording's
ratio to the baseline (median/median, goal ≤ 1.02×, and per round), and the time spent inside the record's own
code in the recording runs (those functions wrapped with timers; gross: the matrix also gives the accuracy and F1
that torchmetrics or ``classification_metrics`` gave before). The child gets the threads the daemon gives a child
(``bench/child_env.py``); where other processes share the cores, OpenMP's waiting inflates wall and CPU time alike
and a round can take several times another: read the rounds and the in-code times, not only the medians.

    uv run python bench/bench_recording.py [--rounds 5] [--frameworks timm ultralytics transformers] [--scale 1.0]
                                           [--yolo-size 256] [--fresh-head] [--envs DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
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

from child_env import base_environ, threads  # noqa: E402  (bench/ is on the path)

from adapters.catalog import defaults  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from tests.dataset_fixtures import make_yolo_task  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402
from tests.hf_models import DETECTION_MODELS  # noqa: E402

GOAL = 1.02
MARK = "VYREC "
SIDES = ("recording", "baseline", "no write")
#: The Ultralytics class logits' random field (mean, std): a fresh yolov8n scores every box alike, near its bias
#: init, none above the matrix's 0.25; with this field each image brings NMS's 300 boxes to the validator and
#: about 3 above 0.25 to the matrix, as a model in training does.
SPREAD = (-8.0, 2.0)

# ---------------------------------------------------------------- run in the framework's env

#: Shared by every case: argv[1] is the case's JSON. ``timed`` wraps a function so that the time spent in it adds
#: to PARTS; ``patched`` swaps attributes for a block; ``rounds`` warms and times the sides, printing MARK lines.
PRELUDE = """
import functools, gc, inspect, json, math, sys, time
from collections import defaultdict
from contextlib import contextmanager
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter

case = json.load(open(sys.argv[1]))
MARK, PARTS, MISSING = %r, defaultdict(float), object()


def emit(**doc):
    print(MARK + json.dumps(doc), flush=True)


def timed(owner, name):
    raw = inspect.getattr_static(owner, name)
    kind = type(raw) if isinstance(raw, (classmethod, staticmethod)) else None
    func = raw.__func__ if kind else raw

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            PARTS[label] += time.perf_counter() - started
    label = f"{owner.__name__}.{name}" if isinstance(owner, type) else name
    setattr(owner, name, kind(wrapper) if kind else wrapper)


@contextmanager
def patched(*changes):
    saved = [(owner, name, vars(owner).get(name, MISSING)) for owner, name, _ in changes]
    for owner, name, value in changes:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, old in reversed(saved):
            delattr(owner, name) if old is MISSING else setattr(owner, name, old)


def scalars(metrics):
    return {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)
            and not any(w in k for w in ("runtime", "per_second", "preparation_time", "epoch"))}


def rounds(sides, warm=None):
    (warm or sides[0][1])()  # untimed: the first validation of the process (the recording's, unless given)
    emit(warm=True)
    for r in range(case["rounds"]):
        k = r %% len(sides)
        for name, run in sides[k:] + sides[:k]:
            gc.collect()
            PARTS.clear()
            started, cpu = time.perf_counter(), time.process_time()
            metrics = run()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            emit(round=r, side=name, seconds=seconds, cpu=cpu, parts=dict(PARTS), metrics=scalars(metrics))


adapter = build_adapter(Job.from_file(case["job"]), Reporter(None))
""" % MARK

TIMM = """
import itertools
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score
import adapters.timm.trainer as trainer_module
from adapters.evaluation.confusion import ConfusionMatrix
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from adapters.metrics import VAL_ACCURACY, VAL_F1, VAL_LOSS, VAL_TOP5

adapter.prepare_dataset()
adapter.prepare_model()
for owner, name in ((ConfusionMatrix, "update"), (trainer_module, "classification_results"),
                    (ValidationRecord, "of"), (ResultsWriter, "write")):
    timed(owner, name)


@torch.no_grad()
def before():
    model = adapter.steps.eval_model
    model.eval()
    n = len(adapter.class_names)
    meters = {VAL_ACCURACY: MulticlassAccuracy(num_classes=n, top_k=1, average="micro"),
              VAL_F1: MulticlassF1Score(num_classes=n, average="macro")}
    if n >= 5:
        meters[VAL_TOP5] = MulticlassAccuracy(num_classes=n, top_k=5, average="micro")
    meters = {name: meter.to(adapter.device) for name, meter in meters.items()}
    total_loss, seen = 0.0, 0
    for images, labels in adapter._loaders["val"]:
        images, labels = adapter._to_device(images, labels)
        with adapter.steps.autocast():
            logits = model(images).float()
        total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        seen += labels.size(0)
        for meter in meters.values():
            meter.update(logits, labels)
    return {VAL_LOSS: total_loss / max(seen, 1), **{name: float(m.compute()) for name, m in meters.items()}}


epochs = itertools.count(1)


def no_write():
    with patched((adapter.results, "write", lambda record: None)):
        return adapter.validate(next(epochs))


rounds([("recording", lambda: adapter.validate(next(epochs))), ("baseline", before), ("no write", no_write)])
"""

ULTRALYTICS = """
import statistics
import torch
import adapters.ultralytics.trainer as trainer_module
from adapters.evaluation.record import ResultsWriter, ValidationRecord

adapter.prepare_dataset()
adapter.prepare_model()
for owner, name in ((trainer_module, "validation_results"), (ValidationRecord, "of"), (ResultsWriter, "write")):
    timed(owner, name)
counter, taken = adapter._confusion, {}
take = counter.take


def keep_taken():
    taken["matrix"] = take()
    return taken["matrix"]


counter.take = keep_taken


class Spread(torch.nn.Module):
    # A class-score conv whose logits are a fixed random field (mean, std per class and place) plus the
    # conv's features without its bias.
    def __init__(self, conv, mean, std, seed):
        super().__init__()
        self.conv, self.mean, self.std, self.seed, self.field = conv, mean, std, seed, {}

    def forward(self, x):
        out = self.conv(x)
        shape = tuple(out.shape[1:])
        if shape not in self.field:
            generator = torch.Generator().manual_seed(self.seed)
            self.field[shape] = torch.randn(shape, generator=generator) * self.std + self.mean
        return out - self.conv.bias.view(-1, 1, 1) + self.field[shape].to(out)


class Done(Exception):
    pass


def bench(trainer):
    validator = trainer.validator
    ours = [cb for cbs in validator.callbacks.values() for cb in cbs if getattr(cb, "__self__", None) is adapter]
    without_ours = {event: [cb for cb in cbs if cb not in ours] for event, cbs in validator.callbacks.items()}
    if case["spread"]:
        head = trainer.ema.ema.model[-1]  # the model a training validation runs
        for i, branch in enumerate(head.cv3):
            branch[-1] = Spread(branch[-1], case["spread"][0], case["spread"][1], i)

    def validate_and_end():
        adapter._validated = False  # as at the epoch's start
        trainer.metrics, trainer.fitness = trainer.validate()
        adapter._reported.clear()
        adapter._on_fit_epoch_end(trainer)
        return dict(trainer.metrics)

    def recording():
        metrics = validate_and_end()
        PARTS["ConfusionCounter (hook + matching)"] = counter.seconds
        return metrics

    def baseline():
        validator.__dict__.pop("_process_batch", None)  # Ultralytics' own per-image step, not our hook
        with patched((validator, "callbacks", without_ours)):
            return validate_and_end()  # on_fit_epoch_end without a validation of ours: the epoch's metrics only

    def no_write():
        with patched((adapter.results, "write", lambda record: None)):
            return recording()

    def warm():  # the recording, counting the boxes that NMS leaves
        boxes, post = [], validator.postprocess

        def counting(preds):
            out = post(preds)
            boxes.extend(len(image["conf"]) for image in out)
            return out

        with patched((validator, "postprocess", counting)):
            recording()
        matrix = taken["matrix"]
        emit(note=f"{statistics.mean(boxes):.0f} boxes per image after Ultralytics' NMS (confidence "
                  f"{validator.args.conf}, IoU {validator.args.iou}); the matrix counted {int(matrix[:, :-1].sum())} "
                  f"detections above 0.25 and {int(matrix[:-1].sum())} objects in {len(boxes)} images")

    rounds([("recording", recording), ("baseline", baseline), ("no write", no_write)], warm)
    raise Done


adapter.model.add_callback("on_fit_epoch_end", bench)  # after the adapter's own
try:
    adapter.train()
except Done:
    pass
"""

TRANSFORMERS = """
import statistics
import numpy as np
for script, out in case["build"]:  # the tiny model, saved with save_pretrained
    argv, sys.argv = sys.argv, ["-c", out]
    exec(script, {"__name__": "__main__"})
    sys.argv = argv
from adapters.evaluation import detection as coco
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from adapters.transformers.tasks import classification as cls_task, detection as det_task

adapter.prepare_dataset()
adapter.prepare_model()
classify = case["task"] == "image_classification"
record_parts = ((cls_task, "classification_evaluation"),) if classify else (
    (coco, "matched_confusion_matrix"), (coco, "pr_precision"), (coco, "pr_curve"))
for owner, name in (*record_parts, (ValidationRecord, "of"), (ResultsWriter, "write")):
    timed(owner, name)
none = lambda *args, **kwargs: None


def bench(trainer):
    def baseline():
        if classify:
            old = lambda p: cls_task.classification_metrics(np.asarray(p.predictions), np.asarray(p.label_ids))
            changes = [(trainer, "compute_metrics", old)]
        else:
            changes = [(coco, name, none) for _, name in record_parts]
        with patched(*changes, (adapter, "record_validation", none)):
            return trainer.evaluate()

    def no_write():
        with patched((adapter.results, "write", none)):
            return trainer.evaluate()

    def warm():  # the recording, counting the detections (detection)
        found, evaluate = [], det_task.detection_evaluation

        def counting(truth, detections, names):
            found.extend((len(d["scores"]), int((d["scores"] > 0.25).sum())) for d in detections)
            return evaluate(truth, detections, names)

        with patched((det_task, "detection_evaluation", counting)):
            trainer.evaluate()
        if found:
            emit(note=f"{statistics.mean(n for n, _ in found):.1f} detections per image after post-processing "
                      f"(score above detection.threshold), {statistics.mean(n for _, n in found):.1f} of them above "
                      f"0.25, {len(found)} images")

    rounds([("recording", trainer.evaluate), ("baseline", baseline), ("no write", no_write)], warm)


base = adapter.task.trainer_class()


class BenchTrainer(base):
    def train(self, *args, **kwargs):
        bench(self)


adapter.task.trainer_class = lambda: BenchTrainer
adapter.train()
"""

TINY_VIT = """
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_labels=10)
ViTForImageClassification(cfg).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(sys.argv[1])
"""

# ---------------------------------------------------------------- the cases

#: Ten colour classes for the classification sets.
COLOURS = {f"c{i}": ((37 * i) % 256, (91 * i + 60) % 256, (157 * i + 120) % 256) for i in range(10)}


@dataclass
class Case:
    name: str
    framework: str
    title: str
    script: str
    doc: dict  # the case's JSON: job, task, rounds, build
    runs: dict[str, list[dict]] = field(default_factory=dict)  # side -> the timed runs' MARK docs
    metrics: dict[str, dict] = field(default_factory=dict)  # side -> its first timed run's scalar metrics
    notes: list[str] = field(default_factory=list)  # what the script said about its data (boxes per image)


def write_job(folder: Path, framework: str, task: str, model: str, dataset: Path, fmt: str, size: int,
              batch: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"name": "bench-recording", "framework": framework, "task": task, "model": model,
            "pretrained": framework == "transformers", "image_size": size,
            "dataset": {"path": str(dataset), "format": fmt},
            "training": {"epochs": 1, "batch_size": batch, "learning_rate": 1e-3, "device": "cpu", "num_workers": 0,
                         "seed": 0}, "advanced": defaults(get_catalog(framework)), "weights": None, "resume": None}
    job = {"job_id": f"bench-{framework}", "job_dir": str(folder), "device": "cpu",
           "checkpoint_dir": str(folder / "checkpoints"), "spec": spec}
    (folder / "job.json").write_text(json.dumps(job))
    return folder / "job.json"


def make_cases(framework: str, tmp: Path, args: argparse.Namespace) -> list[Case]:
    scaled = lambda n: max(2, round(n * args.scale))  # noqa: E731
    work = tmp / framework
    if framework == "timm":
        per_class = scaled(50)
        data = make_imagefolder(work / "data", per_class=2, val_per_class=per_class, size=64, classes=COLOURS)
        job = write_job(work / "job", "timm", "image_classification", "resnet10t", data, "imagefolder", 64, 32)
        return [Case("timm", framework, f"timm resnet10t (image_classification) at 64 px, {10 * per_class} val images "
                     "of 10 classes, batch 32", PRELUDE + TIMM, {"job": str(job), "task": "image_classification"})]
    if framework == "ultralytics":
        val = scaled(100)
        data = make_yolo_task(work / "data", "object_detection", train=8, val=val, size=320)
        job = write_job(work / "job", "ultralytics", "object_detection", "yolov8n", data, "yolo", args.yolo_size, 16)
        return [Case("ultralytics", framework, f"Ultralytics yolov8n (object_detection, from its yaml) at "
                     f"{args.yolo_size} px, {val} val images of 320 px with 2 boxes each, batch 16 (val 32)",
                     PRELUDE + ULTRALYTICS, {"job": str(job), "task": "object_detection",
                                             "spread": None if args.fresh_head else SPREAD})]
    models = work / "models"
    per_class, val = scaled(100), scaled(120)
    cls_data = make_imagefolder(work / "cls-data", per_class=2, val_per_class=per_class, size=32, classes=COLOURS)
    det_data = make_yolo_task(work / "det-data", "object_detection", train=8, val=val, size=64)
    cls_job = write_job(work / "cls-job", "transformers", "image_classification", str(models / "vit"), cls_data,
                        "imagefolder", 32, 32)
    det_job = write_job(work / "det-job", "transformers", "object_detection", str(models / "dfine"), det_data,
                        "yolo", 64, 16)
    return [Case("transformers classification", framework, f"Transformers tiny ViT (image_classification) at 32 px, "
                 f"{10 * per_class} val images of 10 classes, batch 32", PRELUDE + TRANSFORMERS,
                 {"job": str(cls_job), "task": "image_classification", "build": [[TINY_VIT, str(models / "vit")]]}),
            Case("transformers detection", framework, f"Transformers tiny D-FINE (object_detection, 30 queries) at "
                 f"64 px, {val} val images with 2 boxes each, batch 16", PRELUDE + TRANSFORMERS,
                 {"job": str(det_job), "task": "object_detection", "build": [[DETECTION_MODELS, str(models)]]})]


def run_case(case: Case, python: Path, tmp: Path, rounds: int) -> None:
    """Run the case's script in the env; fills ``case.runs``, ``metrics`` and ``notes`` from its MARK lines."""
    doc = tmp / f"{case.name.replace(' ', '-')}.json"
    doc.write_text(json.dumps({**case.doc, "rounds": rounds}))
    log_path = tmp / f"{case.name.replace(' ', '-')}.log"
    environ = {**base_environ(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "",
               "OMP_NUM_THREADS": threads(), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(python), "-c", case.script, str(doc)], env=environ, cwd=tmp, text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        for line in proc.stdout:
            if not line.startswith(MARK):
                log.write(line)
                continue
            mark = json.loads(line[len(MARK):])
            if "note" in mark:
                case.notes.append(mark["note"])
                continue
            if "warm" in mark:
                print(f"  {case.name}: warm-up done ({time.perf_counter() - started:.0f} s in)", flush=True)
                continue
            case.runs.setdefault(mark["side"], []).append(mark)
            case.metrics.setdefault(mark["side"], mark["metrics"])
            print(f"  {case.name} round {mark['round'] + 1} {mark['side']:<10} {mark['seconds']:7.3f} s  "
                  f"(CPU {mark['cpu']:6.3f} s)", flush=True)
    if proc.wait() != 0 or not case.runs:
        raise SystemExit(f"{case.name}: the script failed (exit {proc.returncode}):\n"
                         + log_path.read_text(errors="replace")[-4000:])


# ---------------------------------------------------------------- the report


def row(label: str, values: list[float], base: list[float]) -> str:
    median = statistics.median(values)
    return (f"    {label:<10}{median:8.3f}{min(values):8.3f}{max(values):8.3f}"
            f"{median / statistics.median(base):8.3f}×   [{', '.join(f'{v:.3f}' for v in values)}]")


def compared(runs: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(the scalar metrics of each side's first run compared with the recording's, those that differ)."""
    keys, differ, ours = set(), [], runs.get("recording", {})
    for side, metrics in runs.items():
        for key in sorted(set(metrics) & set(ours)):
            keys.add(key)
            if not math.isclose(metrics[key], ours[key], rel_tol=1e-5, abs_tol=1e-6):
                differ.append(f"{side} {key} {metrics[key]:.6g} ≠ {ours[key]:.6g}")
    return sorted(keys), differ


def report(case: Case, rounds: int) -> bool:
    print(f"\n{case.title}; CPU, OMP_NUM_THREADS={threads()}; {rounds} rounds, order rotating")
    for note in case.notes:
        print(f"  {note}")
    runs = {side: case.runs[side] for side in SIDES if side in case.runs}
    for measure, title in (("seconds", "wall seconds per validation"), ("cpu", "CPU seconds of the process")):
        values = {side: [run[measure] for run in side_runs] for side, side_runs in runs.items()}
        base = values["baseline"]
        print(f"  {title}\n    {'':<10}{'median':>8}{'min':>8}{'max':>8}{'/ base':>8}   rounds")
        for side, side_values in values.items():
            print(row(side, side_values, base))
    seconds = {side: [run["seconds"] for run in side_runs] for side, side_runs in runs.items()}
    base = seconds["baseline"]
    ratio = statistics.median(seconds["recording"]) / statistics.median(base)
    per_round = [r / b for r, b in zip(seconds["recording"], base, strict=True)]
    met = ratio <= GOAL
    print(f"  wall, recording / baseline (median/median) {ratio:.3f}×   goal ≤ {GOAL}× {'ok' if met else 'MISSED'}; "
          f"per round {', '.join(f'{r:.3f}' for r in per_round)} (median {statistics.median(per_round):.3f}×)")
    if "no write" in seconds:
        writes = [r / w for r, w in zip(seconds["recording"], seconds["no write"], strict=True)]
        print(f"  wall, recording / no write: per round {', '.join(f'{r:.3f}' for r in writes)} "
              f"(median {statistics.median(writes):.3f}×)")
    parts: dict[str, list[float]] = {}
    for run in runs["recording"]:
        for name, value in run["parts"].items():
            parts.setdefault(name, []).append(value)
    if parts:
        total = statistics.median([sum(run["parts"].values()) for run in runs["recording"]])
        print("  inside the record's code in the recording runs (medians, gross): "
              + ", ".join(f"{name} {1000 * statistics.median(values):.1f} ms" for name, values in parts.items())
              + f"; together {1000 * total:.1f} ms = {100 * total / statistics.median(base):.2f} % of the baseline's "
              "median")
    keys, differ = compared(case.metrics)
    print("  scalar metrics of each side's first run: " + ("; ".join(differ) if differ else
                                                 f"every side's equal the recording's ({', '.join(keys)})"))
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frameworks", nargs="+", choices=("timm", "ultralytics", "transformers"),
                        default=["timm", "ultralytics", "transformers"])
    parser.add_argument("--scale", type=float, default=1.0, help="scales the validation sets (0.2: a quick check)")
    parser.add_argument("--yolo-size", type=int, default=256)
    parser.add_argument("--fresh-head", action="store_true",
                        help="Ultralytics: validate the fresh head as it is (no box reaches 0.25: nothing to match)")
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (job dirs, records, logs)")
    args = parser.parse_args()
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-recording-"))
    cases: list[Case] = []
    try:
        envs = args.envs or tmp / "envs"
        envs.mkdir(parents=True, exist_ok=True)
        for framework in args.frameworks:
            with open(tmp / f"{framework}-env-build.log", "w") as build_log:
                env = EnvManager(envs).ensure(get_spec(framework), log=build_log)
            print(f"{framework}: env {env.name} {'reused' if env.reused else f'built in {env.build_seconds:.1f} s'}; "
                  f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
            for case in make_cases(framework, tmp, args):
                run_case(case, env.python, tmp, args.rounds)
                cases.append(case)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    met = [report(case, args.rounds) for case in cases]
    print(f"\ngoal (recording ≤ {GOAL}× baseline): {sum(met)} of {len(met)} cases met; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores  [{time.perf_counter() - begun:.0f} s total]")
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
