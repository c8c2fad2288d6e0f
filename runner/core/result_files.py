"""A job's validation results in its MLflow run: the records its training wrote, and the best epoch's
per-class table and figures.

At the end of the run (``Tracker.end_run``), from ``<job dir>/results/val/`` (``adapters.evaluation.record``):
every kept record and the index under ``results/val/``; for the best epoch (by the task's primary
metric) the per-class rows as an MLflow table (``results/per_class.json``, shown by the UI) and
PNGs of its confusion matrix (counts and normalised by row), per-class values and, where the record has
them, precision–recall curves (``pr_curves.png``, ``mask_``/``pose_`` twins) (``runner.plots``).
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("visionyard.tracking")

RANKED_BY = ("f1", "iou", "AP50-95", "accuracy")  # the per-class value drawn as bars, the first one present


def log_results(client, run_id: str, job_dir: Path, task: str) -> None:
    from adapters.evaluation.record import INDEX_FILE, RESULTS_FOLDER, best_epoch, read_index, read_record

    folder = Path(job_dir) / RESULTS_FOLDER
    index = read_index(job_dir)
    if not index:
        return
    for entry in index:
        if entry.get("file") and (folder / entry["file"]).is_file():
            client.log_artifact(run_id, str(folder / entry["file"]), "results/val")
    client.log_artifact(run_id, str(folder / INDEX_FILE), "results/val")
    epoch = best_epoch(index, task)
    if epoch is None or not next(e for e in index if e["epoch"] == epoch).get("file"):
        return
    record = read_record(job_dir, epoch)
    if record.per_class:
        columns = list(dict.fromkeys(k for row in record.per_class for k in row))
        client.log_table(run_id, {k: [row.get(k) for row in record.per_class] for k in columns},
                         "results/per_class.json")
    _figures(client, run_id, record, f"epoch {epoch} (best)")


def _figures(client, run_id: str, record, title: str) -> None:
    import tempfile

    from runner import plots

    with tempfile.TemporaryDirectory(prefix="vy-figures-") as tmp:
        drawn = []
        if record.confusion_matrix:
            labels = record.confusion_labels or record.classes
            drawn.append(plots.confusion_matrix(labels, record.confusion_matrix, Path(tmp) / "confusion_matrix.png",
                                                title=f"confusion matrix, {title}"))
            drawn.append(plots.confusion_matrix(labels, record.confusion_matrix,
                                                Path(tmp) / "confusion_matrix_normalised.png", normalise=True,
                                                title=f"normalised by row, {title}"))
        keys = {k for row in record.per_class for k in row}
        if rank := next((k for k in RANKED_BY if k in keys), None):
            drawn.append(plots.per_class_bars([str(row.get("class")) for row in record.per_class],
                                              [row.get(rank) for row in record.per_class], rank,
                                              Path(tmp) / f"per_class_{rank}.png", title=f"{rank} per class, {title}"))
        drawn += plots.pr_curve_figures(record.curves or {}, record.per_class, record.metrics, tmp, title)
        for path in drawn:
            client.log_artifact(run_id, str(path), "results")
