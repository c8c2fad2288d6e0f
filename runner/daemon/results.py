"""`GetResults`: a job's validation results, per-class metrics and confusion matrix, as each epoch recorded them.

The job's adapter writes one record per validation into the job dir (``adapters.evaluation.record``:
``results/val/epoch-NNNN.json`` and ``results/val/index.json``); this reads them, picks the epoch
asked for (``best``: the task's primary metric, as the best checkpoint is picked; ``last``; a
number) and answers with every validation's metrics besides. Nothing is computed here: the
numbers are the adapter's.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc

from adapters.evaluation.record import (INDEX_FILE, RESULTS_FOLDER, ValidationRecord, best_epoch, read_index,
                                       read_record)
from protos import visionyard_pb2 as pb


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
                              best=best)
    if record.confusion_matrix is not None:
        out.confusion_matrix.labels.extend(record.confusion_labels or record.classes)
        out.confusion_matrix.counts.extend(v for row in record.confusion_matrix for v in row)
    return out


class ResultsRpcs:
    """The servicer's results methods (mixed into ``RunnerServicer``)."""

    def GetResults(self, request: pb.GetResultsRequest, context) -> pb.GetResultsResponse:
        record = self._job_record(request.job_id, context)
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
        reported: dict[int, dict[str, float]] = {}  # the epoch's metrics as the job reported them (train/loss...)
        for key, step, value in self.rt.store.metrics(record.id):
            reported.setdefault(step, {})[key] = value
        return pb.GetResultsResponse(
            result=result_to_proto(found, best=epoch == best),
            epochs=[pb.ResultsEpoch(epoch=e["epoch"], step=e.get("step") or 0,
                                    metrics={**reported.get(e["epoch"], {}), **_numbers(e.get("metrics"))},
                                    kept=bool(e.get("file")), best=e["epoch"] == best) for e in index])


def _spans(epochs: list[int]) -> str:
    """``1-5, 8`` for [1, 2, 3, 4, 5, 8]; "none" for []."""
    spans: list[list[int]] = []
    for epoch in sorted(epochs):
        if spans and epoch == spans[-1][1] + 1:
            spans[-1][1] = epoch
        else:
            spans.append([epoch, epoch])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans) or "none"
