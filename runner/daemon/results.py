"""`GetResults` and `CompareJobs`: a job's validation results as each epoch recorded them, and jobs side by side.

The job's adapter writes one record per validation into the job dir (``adapters.evaluation.record``:
``results/val/epoch-NNNN.json`` and ``results/val/index.json``). `GetResults` reads them, picks the
epoch asked for (``best``: the task's primary metric, as the best checkpoint is picked; ``last``; a
number) and answers with every validation's metrics besides, merged with what the job reported for
the epoch (``train/loss``, ...), and with the newest evaluation of the job's own val split that kept
per-image rows (``gallery``: what `results --plots` draws its gallery from; training keeps no
predictions). `CompareJobs` puts jobs of one task side by side: each one's best epoch, its curves, and
the per-class values of the jobs' best records where they have them. Nothing is computed here: the
numbers are the adapters'.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import grpc

from adapters.evaluation.record import (INDEX_FILE, RESULTS_FOLDER, ValidationRecord, best_epoch, read_index,
                                       read_record)
from adapters.metrics import MODEL_PARAMETERS, TRAIN_IMAGES_PER_S, primary_metric
from protos import visionyard_pb2 as pb

#: The per-class value jobs are compared by: the first one every job's best record has.
PER_CLASS_KEYS = ("f1", "AP50-95", "iou", "accuracy", "recall")
#: What an answer carries at most of a record (a record holds no more when an evaluator wrote it): per-image
#: rows, boxes of an image (each of predicted and true), per-class curves of a kind.
MAX_IMAGES, MAX_BOXES, MAX_CURVES = 100, 100, 100
#: A per-image row's keys that are not its values.
IMAGE_KEYS = ("image", "target", "prediction", "predicted", "truth")


def _numbers(values: dict) -> dict[str, float]:
    """The entries of `values` that are numbers (an undefined one, null in the file, is left out)."""
    return {str(k): float(v) for k, v in (values or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def result_to_proto(record: ValidationRecord, best: bool) -> pb.ValidationResult:
    support = "support"
    per_class = [pb.ClassResult(name=str(row.get("class", "")), support=int(row.get(support) or 0),
                                values=_numbers({k: v for k, v in row.items() if k not in ("class", support)}))
                 for row in record.per_class]
    out = pb.ValidationResult(job_id=record.job or "", task=record.task, epoch=record.epoch or 0,
                              step=record.step or 0, source=record.source, evaluator=record.evaluator,
                              classes=record.classes, metrics=_numbers(record.metrics), per_class=per_class,
                              best=best, dataset=record.dataset or "", curves=curves_to_proto(record.curves))
    for row in (record.per_image or ())[:MAX_IMAGES]:
        out.per_image.append(image_to_proto(row))
    if record.confusion_matrix is not None:
        out.confusion_matrix.labels.extend(record.confusion_labels or record.classes)
        out.confusion_matrix.counts.extend(v for row in record.confusion_matrix for v in row)
    return out


def curves_to_proto(curves: dict | None) -> list[pb.Curve]:
    """A record's curves (``adapters.evaluation.record``) as messages: each kind's mean, then its classes."""
    out = []
    for kind, curve in (curves or {}).items():
        if not isinstance(curve, dict):
            continue
        recall = _floats(curve.get("recall"))
        common = {"kind": str(kind), "iou": float(curve.get("iou") or 0.0), "recall": recall}
        if curve.get("mean") is not None:
            out.append(pb.Curve(name="mean", mean=True, precision=_floats(curve["mean"]), **common))
        per_class = curve.get("per_class") if isinstance(curve.get("per_class"), dict) else {}
        out.extend(pb.Curve(name=str(name), precision=_floats(values), **common)
                   for name, values in list(per_class.items())[:MAX_CURVES])
    return out


def image_to_proto(row: dict) -> pb.ImageResult:
    """A ``per_image`` row as a message: an evaluator's per-image values (segmentation, super-resolution, OCR's
    texts) or a gallery row (``adapters.evaluation.scoring``: ``predicted`` and ``truth``, a class each for
    classification, boxes for detection)."""
    out = pb.ImageResult(image=str(row.get("image", "")), target=str(row.get("target") or ""),
                         prediction=str(row.get("prediction") or ""),
                         values=_numbers({k: v for k, v in row.items() if k not in IMAGE_KEYS}))
    predicted, truth = row.get("predicted"), row.get("truth")
    if isinstance(predicted, str):
        out.predicted_label = predicted
    if isinstance(truth, str):
        out.true_label = truth
    for boxes, into in ((predicted, out.predicted_boxes), (truth, out.true_boxes)):
        if isinstance(boxes, list):
            into.extend(box for box in (_image_box(b) for b in boxes[:MAX_BOXES]) if box is not None)
    return out


def _image_box(found) -> pb.ImageBox | None:
    box = found.get("box") if isinstance(found, dict) else None
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
        score = float(found.get("score") or 0.0)
    except (TypeError, ValueError):
        return None
    return pb.ImageBox(label=str(found.get("label", "")), score=score, box=pb.Box(x1=x1, y1=y1, x2=x2, y2=y2),
                       crowd=bool(found.get("crowd")))


def _floats(values) -> list[float]:
    """Numbers of a curve, null as NaN."""
    return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan for v in (values or ())]


class ResultsRpcs:
    """The servicer's results methods (mixed into ``RunnerServicer``)."""

    def GetResults(self, request: pb.GetResultsRequest, context) -> pb.GetResultsResponse:
        record = self._job_record(request.job_id, context)
        if request.evals:
            from runner.daemon.evals import eval_to_proto, read_evals

            return pb.GetResultsResponse(evals=[eval_to_proto(folder, found, details=False)
                                                for folder, found in read_evals(Path(record.job_dir))])
        task = record.spec.get("task", "")
        job_dir = Path(record.job_dir)
        try:
            index = read_index(job_dir)
        except (OSError, ValueError) as exc:
            context.abort(grpc.StatusCode.DATA_LOSS, f"job {record.id}'s {RESULTS_FOLDER / INDEX_FILE} is unreadable: {exc}")
        if not index:
            framework = record.spec.get("repo") or record.spec.get("framework", "?")
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} ({framework}, {task}, {record.state.value.lower()}) has no validation "
                          "results: none of its epochs has validated yet, or it trained with a framework or repo "
                          "that records no per-class results")
        best = best_epoch(index, task)
        wanted = (request.epoch or "best").strip().lower()
        epochs = [entry["epoch"] for entry in index]
        if wanted == "best":
            epoch = best if best is not None else epochs[-1]
        elif wanted == "last":
            epoch = epochs[-1]
        elif wanted.lstrip("-").isdigit():
            epoch = int(wanted)
            if epoch not in epochs:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"job {record.id} has no validation of epoch {epoch}: it validated epochs "
                              f"{_spans(epochs)}")
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"epoch {request.epoch[:40]!r} is not one: give best, last or an epoch number")
        entry = next(e for e in index if e["epoch"] == epoch)
        if not entry.get("file"):
            kept = [e["epoch"] for e in index if e.get("file")]
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"epoch {epoch} of job {record.id} kept only its metrics: with more than 100 classes the "
                          f"per-class results are kept for the best and last epochs ({_spans(kept)})")
        try:
            found = read_record(job_dir, epoch)
        except (OSError, ValueError, TypeError, json.JSONDecodeError) as exc:
            context.abort(grpc.StatusCode.DATA_LOSS, f"job {record.id}'s results of epoch {epoch} are unreadable: {exc}")
        found.job = found.job or record.id
        reported = self._reported(record)
        return pb.GetResultsResponse(
            result=result_to_proto(found, best=epoch == best), gallery=_gallery(record),
            epochs=[pb.ResultsEpoch(epoch=e["epoch"], step=e.get("step") or 0,
                                    metrics={**reported.get(e["epoch"], ({}, 0.0))[0], **_numbers(e.get("metrics"))},
                                    seconds=reported.get(e["epoch"], ({}, 0.0))[1],
                                    kept=bool(e.get("file")), best=e["epoch"] == best) for e in index])

    def _reported(self, record) -> dict[int, tuple[dict[str, float], float]]:
        """epoch → (the metrics the job reported for it, seconds from the job's start to the report)."""
        found: dict[int, tuple[dict[str, float], float]] = {}
        for key, step, value, when in self.rt.store.metric_points(record.id):
            metrics, seconds = found.setdefault(step, ({}, 0.0))
            metrics[key] = value
            found[step] = (metrics, max(seconds, when - (record.started_at or when)))
        return found

    def CompareJobs(self, request: pb.CompareRequest, context) -> pb.CompareResponse:
        ids = list(dict.fromkeys(request.job_ids))
        if len(ids) < 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "compare takes two or more different jobs")
        records = [self._job_record(job_id, context) for job_id in ids]
        tasks = {r.id: r.spec.get("task", "") for r in records}
        if len(set(tasks.values())) > 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the jobs are of different tasks ("
                          + ", ".join(f"{job} {task}" for job, task in tasks.items())
                          + "): compare jobs of one task")
        task = tasks[records[0].id]
        primary = primary_metric(task)
        jobs, best_records = [], []
        for record in records:
            compared, best = self._compared(record, task, context)
            jobs.append(compared)
            best_records.append(best)
        evaluated = self._common_evaluation(records)
        if evaluated is not None:  # every job evaluated on the same data: those numbers, not each one's own
            best_records = evaluated
            for compared, found in zip(jobs, evaluated):
                compared.metrics.clear()
                compared.metrics.update(_numbers(found.metrics))
                compared.source = f"{found.evaluator} on {found.dataset} ({found.split}, {found.images} images)"
        classes, key = self._per_class(records, best_records, jobs, context)
        if evaluated is not None:
            note = (f"every job evaluated by {evaluated[0].evaluator} on the same data ({evaluated[0].dataset}, split "
                    f"{evaluated[0].split}, dataset hash {evaluated[0].dataset_hash[:19]}...): comparable")
        else:
            sources = {j.source for j in jobs}
            note = ("each job's numbers come from its own validation: " + "; ".join(
                        f"{j.job_id} {j.source}" for j in jobs)
                    + ("" if len(sources) == 1 else " (different evaluators: the numbers may not be comparable)")
                    + "; `visionyard eval` of each on the same data makes them comparable")
        return pb.CompareResponse(task=task, primary_metric=primary.name, higher_is_better=primary.higher_is_better,
                                  jobs=jobs, classes=classes, per_class_key=key, comparable=evaluated is not None,
                                  note=note)

    @staticmethod
    def _common_evaluation(records) -> list[ValidationRecord] | None:
        """Each job's newest evaluation of the newest data (dataset hash and split) every job was
        evaluated on, in the jobs' order; None when they share none."""
        from runner.daemon.evals import read_evals

        per_job = []
        for record in records:
            newest: dict[tuple[str, str], ValidationRecord] = {}
            for _, found in read_evals(Path(record.job_dir)) if record.job_dir else ():
                newest.setdefault((found.dataset_hash or "", found.split or ""), found)  # newest first
            per_job.append(newest)
        common = [key for key in per_job[0] if key[0] and all(key in found for found in per_job[1:])]
        return [found[common[0]] for found in per_job] if common else None

    def _compared(self, record, task: str, context) -> tuple[pb.ComparedJob, ValidationRecord | None]:
        reported = self._reported(record)
        try:
            index = read_index(record.job_dir) if record.job_dir else []
        except (OSError, ValueError):
            index = []
        epochs = sorted(set(reported) | {e["epoch"] for e in index})
        by_index = {e["epoch"]: e for e in index}
        curve = [pb.ResultsEpoch(epoch=epoch, metrics={**reported.get(epoch, ({}, 0.0))[0],
                                                       **_numbers(by_index.get(epoch, {}).get("metrics"))},
                                 seconds=reported.get(epoch, ({}, 0.0))[1], kept=bool(by_index.get(epoch, {}).get("file")))
                 for epoch in epochs if epoch > 0]
        best = best_epoch([{"epoch": c.epoch, "metrics": dict(c.metrics)} for c in curve], task)
        for c in curve:
            c.best = c.epoch == best
        chosen = next((c for c in curve if c.epoch == best), curve[-1] if curve else None)
        found = None
        if best is not None and by_index.get(best, {}).get("file"):
            try:
                found = read_record(record.job_dir, best)
            except (OSError, ValueError, TypeError):
                found = None
        spec = record.spec
        framework = spec.get("repo") or spec.get("framework", "")
        source = (found.evaluator if found else
                  f"{framework}'s log, read by its parser" if spec.get("framework") == "custom" else
                  f"{framework}'s own validation")
        end = record.finished_at or (time.time() if record.started_at else 0)
        sizes = [c.metrics[MODEL_PARAMETERS] for c in curve if MODEL_PARAMETERS in c.metrics]
        rates = [c.metrics[TRAIN_IMAGES_PER_S] for c in curve if TRAIN_IMAGES_PER_S in c.metrics]
        return pb.ComparedJob(job_id=record.id, name=record.name, framework=framework, model=str(spec.get("model", "")),
                              state=record.state.value, best_epoch=best or 0, epochs=len(curve),
                              metrics=dict(chosen.metrics) if chosen else {}, source=source,
                              train_seconds=max(0.0, end - record.started_at) if record.started_at else 0.0,
                              curve=curve, parameters=int(sizes[-1]) if sizes else 0,
                              images_per_second=statistics.median(rates) if rates else 0.0), found

    def _per_class(self, records, best_records, jobs, context) -> tuple[list[str], str]:
        """The classes and the per-class value the jobs are compared by (none when a job has no record)."""
        if any(found is None or not found.per_class for found in best_records):
            return [], ""
        first = best_records[0].classes
        for record, found in zip(records[1:], best_records[1:]):
            if list(found.classes) != list(first):
                only = sorted(set(found.classes) ^ set(first))[:5]
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"the jobs' class lists differ: {records[0].id} has {len(first)} classes, {record.id} "
                              f"{len(found.classes)}"
                              + (f"; in one only: {', '.join(only)}" if only else "; in another order")
                              + ": compare jobs trained on the same classes")
        keys = [k for k in PER_CLASS_KEYS if all(any(k in row for row in f.per_class) for f in best_records)]
        if not keys:
            return [], ""
        for compared, found in zip(jobs, best_records):
            rows = {row.get("class"): row.get(keys[0]) for row in found.per_class}
            compared.per_class.extend(float(v) if isinstance(v, (int, float)) else math.nan
                                      for v in (rows.get(name) for name in first))
        return list(first), keys[0]


def _gallery(record) -> pb.EvalResponse | None:
    """The newest evaluation of the job's own val split (``visionyard eval JOB``, best or last checkpoint, or
    its dataset named) that kept per-image rows, without its per-class rows and matrix; None when none did."""
    from runner.daemon.evals import eval_name, eval_to_proto, read_evals

    if not record.job_dir:
        return None
    own = {eval_name(which, "val", "") for which in ("best", "last")}
    dataset = record.spec.get("dataset")
    path = str(dataset.get("path") or "") if isinstance(dataset, dict) else ""
    for folder, found in read_evals(Path(record.job_dir)):
        if found.split == "val" and found.per_image and (folder.name in own or (path and found.dataset == path)):
            found.per_class, found.confusion_matrix = [], None
            return eval_to_proto(folder, found)
    return None


def _spans(epochs: list[int]) -> str:
    """``1-5, 8`` for [1, 2, 3, 4, 5, 8]; "none" for []."""
    spans: list[list[int]] = []
    for epoch in sorted(epochs):
        if spans and epoch == spans[-1][1] + 1:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans) or "none"
