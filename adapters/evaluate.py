"""Evaluating a job's checkpoint on a dataset with the inference path, scored by the evaluators every
framework shares.

``python -m adapters.entrypoint --spec job.json --eval --checkpoint PATH --out DIR [--dataset PATH
--format F] [--split val|train|all] [--batch 16] [--device D]``

- **What is evaluated.** By default the job's own dataset, split exactly as training split it (the
  adapter's ``dataset_split``: the job's split settings, seed and the framework's own default ratio),
  so ``--split val`` is the very images training validated on. ``--dataset PATH --format F``: any
  dataset of a format the task reads (the dataset layer reads or converts it); without a val split on
  disk its val split is made with the default split settings (seed 0). A dataset with a val split
  only (a test set) is fine; ``--split all`` takes train and val.
- **How.** The checkpoint is loaded as ``predict`` loads it (``adapter.load_checkpoint``); the
  adapter's ``prepare_evaluation()`` then switches its predict path to what scoring needs (detection:
  every box down to the framework's own evaluation threshold, none cut) and says what the model
  predicts (``{"classes": [...], "scale": int}``). The images go through ``predict_batch`` ``--batch``
  at a time, in one call (visual QA's with each record's question, ``questions``; an adapter that takes one
  ``question`` a call is asked each question apart), and a scorer per task
  (``adapters.evaluation.scoring``) turns the results and the dataset's labels into the shared
  evaluators' ``Evaluation``. A top-down pose model (``prepare_evaluation`` says ``boxes: "truth"``) is given each
  image's own boxes, crowd regions excepted (``scorer.truth_boxes``: COCO keypoints' protocol with ground-truth
  boxes, as training validates), and each person it returns is of its box's class; its box AP is left out (the
  boxes are the dataset's), so the evaluation holds the keypoint metrics training reports. The dataset's classes
  are mapped to the model's by name; one the model does not know is an error naming both lists (a zero-shot
  model looks for the dataset's classes).
- **Output.** ``DIR/eval.json``: a validation record (``adapters.evaluation.record``) with
  ``source: "eval"``, ``epoch`` and ``step`` null, the job's id, the evaluator, the model's classes,
  the metrics (``val/*``), per-class rows, the confusion matrix and ``per_image`` (see ``scoring``),
  plus ``dataset`` (its folder), ``dataset_hash`` (:func:`dataset_hash`), ``checkpoint``, ``split``,
  ``images`` (the records evaluated: visual QA's are questions, several to an image) and ``seconds`` (the
  whole run, loading included).
- **Progress.** One JSON line per batch on stdout, ``{"done": n, "total": N}``, then a last line
  ``{"eval": "DIR/eval.json", "metrics": {...}}``. Whatever else a framework prints goes to stderr,
  which also holds the log.
- **Exit.** 0 when ``eval.json`` was written; 1 with ``eval failed: <reason>`` on stderr otherwise
  (a checkpoint that is gone, a dataset that can't be read or has no images in the split, classes the
  model lacks, a task not scored).

Nothing is reported to the daemon's Reporter, and the job's own files are only read: an eval of a
running job's checkpoint does not disturb it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("visionyard.evaluate")

EVAL_FILE = "eval.json"
SPLITS = ("val", "train", "all")
DEFAULT_BATCH = 16
#: Problems of a dataset read that do not stop an evaluation: a test set has no train split, and may
#: hold fewer classes than training needs. A split without images is refused below, by name.
FORGIVEN = ("empty-split", "too-few-classes")
HASH_CHUNK = 1 << 20


class EvalError(ValueError):
    """Bad input to an evaluation, with what to do."""


def evaluate(spec_path: str, checkpoint: str, out_dir: str, *, dataset: str | None = None, fmt: str | None = None,
             split: str = "val", batch: int = DEFAULT_BATCH, device: str = "cpu", progress: IO[str] | None = None) -> int:
    """Evaluate, write ``out_dir/eval.json``; the exit code (see the module)."""
    from adapters.datasets import DatasetError
    from adapters.entrypoint import build_adapter
    from adapters.evaluation.record import ValidationRecord
    from adapters.evaluation.scoring import ClassesDiffer, make_scorer
    from adapters.files import atomic_path
    from adapters.job import Job
    from adapters.reporter import Reporter

    progress = sys.stdout if progress is None else progress
    started = time.perf_counter()
    try:
        if split not in SPLITS:
            raise EvalError(f"Unknown split '{split}'. Valid: {', '.join(SPLITS)}")
        if not Path(checkpoint).exists():
            raise EvalError(f"checkpoint {checkpoint} does not exist (removed, or not saved yet): evaluate another "
                            "one (best or last)")
        job = dataclasses.replace(Job.from_file(spec_path), device=device)
        adapter = build_adapter(job, Reporter(None))
        data, records = read_eval_set(job, adapter, dataset, fmt, split)
        adapter.load_checkpoint(checkpoint)
        info = prepare_evaluation(adapter, data.class_names)
        scale = info.get("scale")
        if job.spec.task == "super_resolution" and data.scale and scale and data.scale != scale:
            raise EvalError(f"the model upscales x{scale} but the dataset is x{data.scale}: evaluate on x{scale} data "
                            f"(LR_x{scale}/ folders, or HR images only)")
        scorer = make_scorer(job.spec.task, data.root, data.class_names, info.get("classes") or [], scale)
        fingerprint = dataset_hash(records, data.root, data.class_names)
        given = GivenBoxes(data.class_names, info.get("classes") or []) if info.get("boxes") == "truth" else None
        with tempfile.TemporaryDirectory(prefix="visionyard-eval-") as scratch:
            predict_all(adapter, scorer, records, Path(scratch), max(1, int(batch)), progress, given)
        evaluation = scorer.evaluation()
        if given is not None:
            given.keypoints_only(evaluation)
        record = ValidationRecord.of(evaluation, task=job.spec.task, epoch=None, step=None, source="eval",
                                     job=job.job_id or None)
        record = dataclasses.replace(record, dataset=data.root, dataset_hash=fingerprint, checkpoint=str(checkpoint),
                                     split=split, images=len(records), seconds=time.perf_counter() - started)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / EVAL_FILE) as partial:
            partial.write_text(record.to_json(), encoding="utf-8")
    except Exception as exc:  # noqa: BLE001 (the reason goes to whoever started us, on stderr)
        log.debug("eval failed", exc_info=True)
        plain = isinstance(exc, (EvalError, ClassesDiffer, DatasetError))
        print(f"eval failed: {exc}" if plain else f"eval failed: {type(exc).__name__}: {exc}", file=sys.stderr,
              flush=True)
        return 1
    print(json.dumps({"eval": str(out / EVAL_FILE), "metrics": record.to_dict()["metrics"]}), file=progress,
          flush=True)
    return 0


def read_eval_set(job, adapter, path: str | None, fmt: str | None, split: str):
    """(the dataset, the records of ``split``): the job's dataset split as training split it, or the one at
    ``path`` in format ``fmt``."""
    from adapters.datasets import DatasetError, SplitOptions, inspect_dataset, split_options

    spec = job.spec
    if path:
        if not fmt:
            raise EvalError("--dataset needs --format (the dataset's format, e.g. imagefolder, yolo, coco)")
        options = SplitOptions()
    else:
        path, fmt = spec.dataset.path, spec.dataset.format
        split_of = getattr(adapter, "dataset_split", None)
        options = split_of() if split_of else split_options(spec.dataset.as_dict(), spec.training.seed)
    if not path or not Path(path).is_dir():
        raise EvalError(f"the dataset {path or '(none)'} does not exist or is not a folder")
    data, problems = inspect_dataset(path, fmt, spec.task, split=options, decode="none")
    errors = [p for p in problems.errors if p.kind not in FORGIVEN]
    if data is None or errors:
        raise DatasetError(errors or problems.errors or f"{path} can't be read as a {fmt} dataset")
    for problem in problems.warnings[:5]:
        log.warning("dataset: %s", problem)
    records = {"val": data.val, "train": data.train, "all": [*data.train, *data.val]}[split]
    if not records:
        why = {"val": "it has no val split on disk and too few images to make one",
               "train": "it has no train images"}.get(split, "it has no images")
        raise EvalError(f"nothing to evaluate in split '{split}' of {data.root}: {why}; evaluate "
                        f"{'--split all' if split != 'all' else 'another dataset'}")
    return data, records


def prepare_evaluation(adapter, dataset_classes=()) -> dict[str, Any]:
    """The adapter's ``prepare_evaluation()`` (its predict path set for scoring, and what the model predicts:
    ``classes``, ``scale``); for an adapter without it, its ``class_names``. One whose ``prepare_evaluation``
    takes ``dataset_classes`` gets the evaluated dataset's (a zero-shot model predicts those)."""
    import inspect

    prepare = getattr(adapter, "prepare_evaluation", None)
    if prepare is not None:
        if "dataset_classes" in inspect.signature(prepare).parameters:
            return dict(prepare(dataset_classes=list(dataset_classes)) or {})
        return dict(prepare() or {})
    return {"classes": list(getattr(adapter, "class_names", None) or [])}


class GivenBoxes:
    """What ``eval`` gives a top-down model: each record's boxes (``truth_boxes``), and each person it returns
    labelled with its box's class (the dataset's class id mapped to the model's by name)."""

    def __init__(self, dataset_classes, model_classes) -> None:
        from adapters.evaluation.scoring import class_map

        self.model_classes = list(model_classes)
        self.to_model = class_map(list(dataset_classes), self.model_classes)

    def boxes(self, record) -> list[list[float]]:
        from adapters.evaluation.scorer import truth_boxes

        return [box for box, _ in truth_boxes(record)]

    def label(self, record, result) -> None:
        """Each prediction of ``result`` (one per given box, in order) gets its box's class."""
        from adapters.evaluation.scorer import truth_boxes
        from adapters.evaluation.scoring import predictions

        found, given = predictions(result), truth_boxes(record)
        if len(found) != len(given):
            raise EvalError(f"the model returned {len(found)} people for the {len(given)} boxes of {record.path}")
        for prediction, (_, class_id) in zip(found, given, strict=True):
            index = int(self.to_model[class_id])
            prediction.update(index=index, label=self.model_classes[index])

    @staticmethod
    def keypoints_only(evaluation) -> None:
        """The box metrics left out (the boxes were the dataset's): those of the keypoints stay."""
        evaluation.metrics = {name: value for name, value in evaluation.metrics.items()
                              if name.startswith("val/pose_")}


def predict_all(adapter, scorer, records: list, scratch: Path, batch: int, progress: IO[str],
                given: GivenBoxes | None = None) -> None:
    """Every record's image through the adapter's predict path, ``batch`` at a time, into ``scorer``; a
    progress line after each batch. A batch is one call, each image with what predict takes per image, one
    value each: the scorer's ``per_image_options`` (visual QA's ``questions``), where the adapter takes them,
    and with ``given`` each image's own boxes (``boxes``; its people are labelled with their boxes' classes).
    Otherwise the records of a batch that predict takes with other options (``scorer.options``: visual QA's
    ``question``, to an adapter that takes one question a call) go through it apart, each group in one call."""
    batched = getattr(adapter, "predict_batch", None)
    total = len(records)
    for start in range(0, total, batch):
        chunk = records[start:start + batch]
        images = scorer.inputs(chunk, scratch)
        results: list = [None] * len(chunk)
        each = scorer_per_image(scorer, chunk, batched or adapter.predict)
        groups = by_options(scorer, chunk) if each is None else [({}, list(range(len(chunk))))]
        for options, members in groups:
            group = [images[i] for i in members]
            mine = {key: [values[i] for i in members] for key, values in (each or {}).items()}
            if given is not None:
                mine["boxes"] = [given.boxes(chunk[i]) for i in members]
            if batched is not None:
                found = batched(group, scorer.top_k, False, **options, **mine)
            else:
                found = [adapter.predict(image, scorer.top_k, **options, **{k: [v[j]] for k, v in mine.items()})
                         for j, image in enumerate(group)]
            for i, result in zip(members, list(found), strict=True):
                if given is not None:
                    given.label(chunk[i], result)
                results[i] = result
        scorer.update(chunk, results)
        for image in images:  # files made for this batch (an LR image, an embedded image) are done with
            if image.startswith(str(scratch) + os.sep):
                os.unlink(image)
        print(json.dumps({"done": start + len(chunk), "total": total}), file=progress, flush=True)


def scorer_per_image(scorer, records: list, predict) -> dict[str, list] | None:
    """The scorer's ``per_image_options`` of ``records`` (one value per record under each name: visual QA's
    ``questions``) when ``predict`` takes them; None when the scorer has none or ``predict`` does not take them
    (the records then go by ``scorer.options``)."""
    if not hasattr(scorer, "per_image_options"):
        return None
    each = dict(scorer.per_image_options(records))
    return each if takes(predict, each) else None


def takes(function, names) -> bool:
    """Whether ``function`` takes every one of ``names`` as a keyword: it names them, or takes ``**kwargs``."""
    import inspect

    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params) or set(names) <= {p.name for p in params}


def by_options(scorer, records: list) -> list[tuple[dict[str, Any], list[int]]]:
    """(options, the positions of the records predicted with them) for each distinct ``scorer.options`` of
    ``records``, in the order first met."""
    groups: dict[str, tuple[dict[str, Any], list[int]]] = {}
    for i, record in enumerate(records):
        options = scorer.options(record) if hasattr(scorer, "options") else {}
        groups.setdefault(json.dumps(options, sort_keys=True), (options, []))[1].append(i)
    return list(groups.values())


def dataset_hash(records: list, root: str, class_names) -> str:
    """``blake2b:<hex>`` (32-byte BLAKE2b) of what an evaluation read, so two evaluations with one hash scored
    the same labelled images:

    - the dataset's class names in its order (what its class ids mean), one per line, then a NUL byte;
    - every file the evaluated records name — the image, its LR partner (super-resolution), its mask
      (semantic segmentation), its label file (a YOLO ``.txt``, a VOC ``.xml``, a labelme ``.json``, the
      COCO annotation file, OCR's ``labels.jsonl``) — each distinct file once, sorted by its path relative
      to the dataset's folder (``/``-separated; absolute when outside it): that path, a NUL byte, the
      file's size (8 bytes, little-endian), its bytes, streamed.

    A label file is hashed whole, also where it holds the labels of images not evaluated (a COCO file of
    both splits); an ImageFolder label is its folder, so it is in the path. Not covered: files the
    records do not name (a YOLO ``data.yaml`` beyond its class names, a split file) and the dataset's
    folder itself (a copy elsewhere hashes the same)."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update("\n".join(map(str, class_names)).encode("utf-8") + b"\0")
    files: dict[str, str] = {}
    base = os.path.abspath(root)
    for record in records:
        for path in (record.path, record.lr, record.mask, record.label_file):
            if path:
                full = os.path.abspath(path)
                files.setdefault(full, Path(os.path.relpath(full, base)).as_posix()
                                 if full.startswith(base + os.sep) else full)
    for full, name in sorted(files.items(), key=lambda item: item[1]):
        digest.update(name.encode("utf-8") + b"\0")
        with open(full, "rb") as f:
            digest.update(os.fstat(f.fileno()).st_size.to_bytes(8, "little"))
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
    return f"blake2b:{digest.hexdigest()}"
