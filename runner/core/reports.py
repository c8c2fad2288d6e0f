"""What a child reports, applied to the store exactly once: over gRPC, or from its journal.

A batch is claimed (its number must be above the last applied) and its items written in one
transaction, so a daemon killed mid-batch applies all of it or none of it, and a batch that
arrives twice (a resend, or once over gRPC and once from the journal) counts once. MLflow hears
about metrics after the commit; the tracker fills in whatever it missed when the run ends.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.reporter import read_journal
from protos import visionyard_pb2 as pb
from runner.core.store import BatchOutOfOrder
from runner.launch.jobdir import JOURNAL

if TYPE_CHECKING:
    from runner.core.runtime import Runtime

log = logging.getLogger("visionyard.reports")


def apply_batch(rt: "Runtime", job_id: str, batch: pb.ReportBatch) -> bool:
    """Apply `batch` unless it already was; True when it was applied now. A batch past the next
    one raises BatchOutOfOrder and changes nothing."""
    store = rt.store
    with store.atomic():
        if not store.claim_batch(job_id, batch.batch_seq):
            return False
        job_dir = rt.paths.job_dir(job_id)
        for item in batch.items:
            _apply_item(rt, job_id, job_dir, item)
    for item in batch.items:
        if item.WhichOneof("kind") == "metrics":
            rt.tracker.log_metrics(job_id, item.metrics.step, dict(item.metrics.values), item.time or None)
    return True


def apply_journal(rt: "Runtime", job_id: str, job_dir: Path) -> int:
    """Apply the batches of the job's journal the store hasn't seen; how many were applied."""
    applied = 0
    for batch in read_journal(job_dir / JOURNAL):
        try:
            if batch.job_id == job_id and apply_batch(rt, job_id, batch):
                applied += 1
        except BatchOutOfOrder as exc:  # a hole in the journal: what follows can't be applied in order
            log.warning("job %s: journal %s: %s", job_id, job_dir / JOURNAL, exc)
            break
    if applied:
        log.info("job %s: applied %d report batch(es) from its journal", job_id, applied)
    return applied


def inside(path: str | Path, folder: Path) -> bool:
    """`path` resolves (symlinks followed) to `folder` or below it."""
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, RuntimeError):
        return False


def _refuse_path(rt: "Runtime", job_id: str, what: str, path: str, job_dir: Path) -> None:
    shown = path if len(path) <= 200 else path[:200] + "…"
    log.warning("job %s reported a %s outside its job dir (%s): %r; refused", job_id, what, job_dir, shown)
    rt.store.add_logs(job_id, [f"[visionyard] refused a reported {what} outside the job dir: {shown!r}"])


def _apply_item(rt: "Runtime", job_id: str, job_dir: Path, item: pb.ReportItem) -> None:
    """One item of a batch. Paths a child reports are taken only inside its job dir: the daemon
    never reads or uploads a file elsewhere on a child's word."""
    store, kind = rt.store, item.WhichOneof("kind")
    when = item.time or time.time()
    if kind == "checkpoint":  # the path on a node that shares nothing: the daemon's copy of the file
        item.checkpoint.path = rt.launcher.reported_path(job_id, item.checkpoint.path)
    elif kind == "result":
        for which in ("best_checkpoint", "last_checkpoint"):
            if getattr(item.result, which):
                setattr(item.result, which, rt.launcher.reported_path(job_id, getattr(item.result, which)))
    if kind == "checkpoint" and not inside(item.checkpoint.path, job_dir):
        return _refuse_path(rt, job_id, "checkpoint", item.checkpoint.path, job_dir)
    if kind == "result":
        for which in ("best_checkpoint", "last_checkpoint"):
            path = getattr(item.result, which)
            if path and not inside(path, job_dir):
                _refuse_path(rt, job_id, which.replace("_", " "), path, job_dir)
                item.result.ClearField(which)
    if kind == "metrics":
        store.add_metrics(job_id, item.metrics.step, dict(item.metrics.values), when)
    elif kind == "progress":
        store.add_event(job_id, pb.JobEvent(time=when, progress=item.progress))
    elif kind == "checkpoint":
        store.add_event(job_id, pb.JobEvent(time=when, checkpoint=item.checkpoint))
        field = "best_checkpoint" if item.checkpoint.kind == "best" else "last_checkpoint"
        store.update(job_id, **{field: item.checkpoint.path})
    elif kind == "result":
        result = item.result
        fields = {"result_json": json.dumps({"metrics": dict(result.metrics),
                                             **({"note": result.note} if result.note else {})})}
        if result.best_checkpoint:
            fields["best_checkpoint"] = result.best_checkpoint
        if result.last_checkpoint:
            fields["last_checkpoint"] = result.last_checkpoint
        store.update(job_id, **fields)
    elif kind == "error":
        store.update(job_id, error_report=f"{item.error.type}: {item.error.message}")
