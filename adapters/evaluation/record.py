"""The validation record: what one validation measured, as one JSON object, and where it is kept.

One record per validation (an epoch of training, or an ``eval`` run)::

    {"version": 1, "job": "…" | null, "task": "object_detection", "epoch": 3, "step": 120,
     "source": "training" | "eval", "evaluator": "visionyard.coco",
     "classes": ["cat", "dog"], "metrics": {"val/mAP50-95": 0.41, …},
     "per_class": [{"class": "cat", "AP50": 0.7, …}, …],
     "confusion_matrix": [[…], …] | null, "confusion_labels": ["cat", "dog", "background"],
     "per_image": […],                                  # only when the evaluator gives it
     "curves": {"pr": {…}}}                             # only when the evaluator gives it

An ``eval`` run's record (``source: "eval"``, ``epoch`` and ``step`` null) also says what was
evaluated: ``dataset`` (its folder), ``dataset_hash`` (``adapters.evaluate.dataset_hash``: the files
evaluated, by content), ``checkpoint``, ``split`` (``val``, ``train`` or ``all``), ``images`` (how
many) and ``seconds`` (the whole run: loading, predicting, scoring). Records without them (every
training validation) leave the keys out, and a reader takes records with or without them.

``curves``: the precision–recall curves of a detection-like task at IoU 0.50, one entry per kind: ``pr``
(boxes), ``mask_pr`` and ``pose_pr`` (the masks' and keypoints' twins, as the ``val/mask_…`` metrics)::

    "pr": {"iou": 0.5, "recall": [0.0, 0.01, …, 1.0],           # COCO's 101 recall points
           "mean": [101 precisions],                           # the mean over the classes with ground truth
           "per_class": {"cat": [101 precisions], …}}          # classes with ground truth; none above 100 classes

``precision[i]`` is the best precision at recall ``recall[i]`` or above (COCO's interpolation, 0 past
the highest recall reached); the mean of a class's curve is its AP50. A record without curves (every
other task, older records) leaves the key out.

``confusion_matrix[t][p]``: rows are the ground truth, columns the prediction, in the order of
``confusion_labels`` (the classes, plus ``background`` last for detection, instance segmentation
and pose). Values that are undefined (an AP of a class without ground truth, a NaN IoU) are
``null``, never NaN, so any JSON reader takes the file.

During training, ``ResultsWriter`` keeps one file per validation under the job folder::

    <job_dir>/results/val/epoch-0003.json     one record
    <job_dir>/results/val/index.json          [{"epoch", "step", "file", "metrics"}, …]

The index lists every validation with its metrics; ``file`` is null for an epoch whose record
was not kept (see ``ResultsWriter``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from adapters.files import atomic_path
from adapters.metrics import primary_metric

RECORD_VERSION = 1
#: The folder of the training validations' records, under the job folder.
RESULTS_FOLDER = Path("results") / "val"
INDEX_FILE = "index.json"
EPOCH_FILE = "epoch-{epoch:04d}.json"
#: The last label of a detection matrix: a detection matching no object, an object nothing detected.
BACKGROUND = "background"
SOURCES = ("training", "eval")
#: Up to this many classes every epoch's record is kept; above, only the best and the last epoch's
#: (a 1,000-class matrix is a few MB of JSON per epoch).
KEEP_EVERY_EPOCH_UP_TO = 100
#: A record's per-class precision–recall curves up to this many classes (above, only their mean).
CURVES_PER_CLASS_UP_TO = 100
#: COCO's recall points of a precision–recall curve (0, 0.01, … 1).
RECALL_POINTS = 101
#: The optional keys of an ``eval`` run's record, in the order written.
EVAL_FIELDS = ("dataset", "dataset_hash", "checkpoint", "split", "images", "seconds")


@dataclass
class Evaluation:
    """What an evaluator measured: the part of a record that does not say when or for which job."""

    evaluator: str
    classes: list[str]
    metrics: dict[str, float | None]
    per_class: list[dict[str, Any]]
    confusion_matrix: np.ndarray | None = None
    confusion_labels: list[str] = field(default_factory=list)
    per_image: list[dict[str, Any]] | None = None
    #: Precision–recall curves by kind (``pr``, ``mask_pr``, ``pose_pr``; see the module); None: none.
    curves: dict[str, dict[str, Any]] | None = None


@dataclass
class ValidationRecord:
    task: str
    epoch: int | None
    step: int | None
    source: str
    evaluator: str
    classes: list[str]
    metrics: dict[str, float | None]
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]] | None = None
    confusion_labels: list[str] = field(default_factory=list)
    job: str | None = None
    per_image: list[dict[str, Any]] | None = None
    version: int = RECORD_VERSION
    #: Precision–recall curves (see the module); None when the evaluator has none, and then not written.
    curves: dict[str, dict[str, Any]] | None = None
    #: What an ``eval`` run evaluated (None in a training validation's record, and then not written).
    dataset: str | None = None
    dataset_hash: str | None = None
    checkpoint: str | None = None
    split: str | None = None
    images: int | None = None
    seconds: float | None = None

    @classmethod
    def of(cls, evaluation: Evaluation, *, task: str, epoch: int | None, step: int | None, source: str,
           job: str | None = None, metrics: dict[str, float] | None = None) -> ValidationRecord:
        """The record of ``evaluation``; ``metrics`` replaces its metrics (a trainer adds ``val/loss``)."""
        if source not in SOURCES:
            raise ValueError(f"Unknown source '{source}'. Valid: {', '.join(SOURCES)}")
        matrix = evaluation.confusion_matrix
        return cls(task=task, epoch=epoch, step=step, source=source, evaluator=evaluation.evaluator,
                   classes=list(evaluation.classes), metrics=dict(evaluation.metrics if metrics is None else metrics),
                   per_class=list(evaluation.per_class),
                   confusion_matrix=None if matrix is None else np.asarray(matrix).astype(np.int64).tolist(),
                   confusion_labels=list(evaluation.confusion_labels), job=job, per_image=evaluation.per_image,
                   curves=evaluation.curves)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data in the documented key order; NaN and infinities become None."""
        out = plain({"version": self.version, "job": self.job, "task": self.task, "epoch": self.epoch,
                     "step": self.step, "source": self.source, "evaluator": self.evaluator, "classes": self.classes,
                     "metrics": self.metrics, "per_class": self.per_class})
        matrix = self.confusion_matrix  # ints only: not walked value by value (a million of them for 1,000 classes)
        out["confusion_matrix"] = None if matrix is None else np.asarray(matrix, dtype=np.int64).tolist()
        out["confusion_labels"] = list(self.confusion_labels)
        if self.per_image is not None:
            out["per_image"] = plain(self.per_image)
        if self.curves is not None:
            out["curves"] = plain(self.curves)
        for key in EVAL_FIELDS:
            if getattr(self, key) is not None:
                out[key] = plain(getattr(self, key))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationRecord:
        if data.get("version") != RECORD_VERSION:
            raise ValueError(f"a validation record of version {data.get('version')!r}; this code reads "
                             f"version {RECORD_VERSION}")
        names = {f.name for f in fields(cls)}
        missing = sorted({"task", "epoch", "step", "source", "evaluator", "classes", "metrics", "per_class"}
                         - set(data))
        if missing:
            raise ValueError(f"a validation record without {', '.join(missing)}")
        return cls(**{key: value for key, value in data.items() if key in names})

    @classmethod
    def from_json(cls, text: str) -> ValidationRecord:
        return cls.from_dict(json.loads(text))


def recall_points() -> np.ndarray:
    """COCO's 101 recall points of a precision–recall curve: 0, 0.01, … 1."""
    return np.linspace(0.0, 1.0, RECALL_POINTS)


def pr_curve(precision, classes: list[str], iou: float = 0.5) -> dict[str, Any] | None:
    """A record's curve (see the module) from ``precision``, classes x 101 recall points (``recall_points``),
    NaN where undefined (a class without ground truth: a row of NaN): the mean over the classes with a
    value at each point and, up to ``CURVES_PER_CLASS_UP_TO`` classes, each class that has one. Values
    rounded to 4 decimals (a curve is drawn, not recomputed); None when no class has one."""
    precision = np.asarray(precision, dtype=np.float64).reshape(len(classes), RECALL_POINTS)
    counted = np.isfinite(precision).any(1)
    if not counted.any():
        return None
    with np.errstate(invalid="ignore"):
        totals, counts = np.nansum(precision[counted], 0), np.isfinite(precision[counted]).sum(0)
        mean = np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)
    out: dict[str, Any] = {"iou": float(iou), "recall": recall_points().round(2).tolist(),
                           "mean": np.round(mean, 4).tolist()}
    if len(classes) <= CURVES_PER_CLASS_UP_TO:
        out["per_class"] = {str(name): np.round(row, 4).tolist()
                            for name, row, kept in zip(classes, precision, counted) if kept}
    return out


def plain(value: Any) -> Any:
    """``value`` as JSON data: numpy scalars and arrays to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


class ResultsWriter:
    """Writes each training validation's record under ``<job_dir>/results/val/`` and keeps the index.

    Every epoch's file is kept when the record has at most ``KEEP_EVERY_EPOCH_UP_TO`` classes;
    above that only the best epoch's (by the task's primary metric, first best on ties, as the
    best checkpoint) and the last one's, the others' index entries keeping their metrics with
    ``"file": null``. Each file is written whole or not at all (``atomic_path``), the record before
    the index that names it, and a file is removed only once the index no longer names it.
    """

    def __init__(self, job_dir: str | Path, task: str, keep_every_epoch_up_to: int = KEEP_EVERY_EPOCH_UP_TO) -> None:
        self.job_dir = Path(job_dir)
        self.folder = self.job_dir / RESULTS_FOLDER
        self.task = task
        self.keep_every_epoch_up_to = keep_every_epoch_up_to

    def write(self, record: ValidationRecord) -> Path:
        """Write ``record`` (a validation of an epoch), update the index; the record's path."""
        if record.epoch is None:
            raise ValueError("a training validation's record needs its epoch")
        self.folder.mkdir(parents=True, exist_ok=True)
        name = EPOCH_FILE.format(epoch=record.epoch)
        with atomic_path(self.folder / name) as partial:
            partial.write_text(record.to_json(), encoding="utf-8")
        index = [entry for entry in self.index() if entry["epoch"] != record.epoch]
        index.append({"epoch": record.epoch, "step": record.step, "file": name, "metrics": plain(record.metrics)})
        index.sort(key=lambda entry: entry["epoch"])
        stale = []
        if len(record.classes) > self.keep_every_epoch_up_to:
            keep = {self.best_epoch(index), index[-1]["epoch"]}
            for entry in index:
                if entry["file"] and entry["epoch"] not in keep:
                    stale.append(entry["file"])
                    entry["file"] = None
        with atomic_path(self.folder / INDEX_FILE) as partial:
            partial.write_text(json.dumps(index, indent=1, allow_nan=False), encoding="utf-8")
        for file in stale:
            (self.folder / file).unlink(missing_ok=True)
        return self.folder / name

    def index(self) -> list[dict[str, Any]]:
        """The index as written so far ([] before the first validation)."""
        return read_index(self.job_dir)

    def best_epoch(self, index: list[dict[str, Any]]) -> int | None:
        return best_epoch(index, self.task)


def best_epoch(index: list[dict[str, Any]], task: str) -> int | None:
    """The epoch of ``index`` whose primary metric is best (the first one on ties), as the best
    checkpoint is picked; None when no epoch has the metric. Epoch 0 (a zero-shot task's evaluation before
    training) has no checkpoint, so it is never the best."""
    primary, best, epoch = primary_metric(task), None, None
    for entry in index:
        if entry.get("epoch") == 0:
            continue
        value = (entry.get("metrics") or {}).get(primary.name)
        if primary.improved(value, best):
            best, epoch = float(value), entry["epoch"]
    return epoch


def read_index(job_dir: str | Path) -> list[dict[str, Any]]:
    """The job's index of training validations, oldest first ([] when it has none)."""
    path = Path(job_dir) / RESULTS_FOLDER / INDEX_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []


def read_record(job_dir: str | Path, epoch: int) -> ValidationRecord:
    """The record of ``epoch``'s validation; FileNotFoundError naming the epoch when it was not kept."""
    path = Path(job_dir) / RESULTS_FOLDER / EPOCH_FILE.format(epoch=epoch)
    if not path.is_file():
        raise FileNotFoundError(f"no validation record of epoch {epoch} in {path.parent}")
    return ValidationRecord.from_json(path.read_text(encoding="utf-8"))
