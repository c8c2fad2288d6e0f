"""``RunRecorder``: the one place that decides what an epoch, a checkpoint and a result report are.

Every adapter reports through it, whether it owns its training loop (timm: ``fit()`` in
``adapters.base``) or a framework owns it (Ultralytics' trainer, HF ``Trainer``: their callbacks
call the recorder). So metrics come ordered the same way, "best" is tracked against the task's
primary metric the same way, and the final result has the same shape for every framework.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from adapters.files import atomic_path, link_tree
from adapters.metrics import LR, MODEL_PARAMETERS, primary_metric
from adapters.reporter import Reporter

BEST = "best"
LAST = "last"


class RunRecorder:
    def __init__(self, reporter: Reporter, task: str, total_epochs: int) -> None:
        self.reporter = reporter
        self.primary = primary_metric(task)
        self.total_epochs = total_epochs
        self.best_metric: float | None = None
        self.best_epoch = 0  # epoch of best_metric; 0 before any improvement
        self.metrics: dict[str, float] = {}  # the latest epoch's
        self.checkpoints: dict[str, Path | None] = {BEST: None, LAST: None}
        self.parameters: int | None = None  # the model's, reported with the first epoch this run reports

    def model_size(self, parameters: int) -> None:
        """The model's parameter count, reported with the next epoch (``model/parameters``)."""
        self.parameters = int(parameters)

    def restore(self, best_metric: float | None, best_epoch: int, metrics: dict[str, float] | None) -> None:
        """Carry a resumed run's best and latest metrics forward."""
        self.best_metric, self.best_epoch = best_metric, int(best_epoch or 0)
        self.metrics = dict(metrics or {})

    def carry_best(self, source: str | Path, target: str | Path, best_epoch: int,
                   best_metric: float | None = None) -> None:
        """Make the best of the run this one resumes this run's best: ``source``, that run's best checkpoint (a file
        or a folder), saved at ``best_epoch`` (its primary metric ``best_metric``, when the recorder does not have it
        yet), copied to ``target`` in this run's checkpoint dir (unless it is there already) and reported. Without it a resumed run that never beats that
        best would end with no best checkpoint, and would depend on the old job's files. A folder's files are hard
        links where the file system allows, made read-only (``files.link_tree``): a checkpoint is written whole, never
        changed in place."""
        source, target = Path(source), Path(target)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as partial:
                try:
                    if source.is_dir():
                        link_tree(source, partial)
                    else:
                        shutil.copyfile(source, partial)
                except BaseException:
                    shutil.rmtree(partial, ignore_errors=True)
                    raise
        if best_metric is not None:
            self.best_metric, self.best_epoch = float(best_metric), int(best_epoch)
        self.checkpoint(target, BEST, int(best_epoch))

    def progress(self, epoch: int, step: int, total_steps: int) -> None:
        self.reporter.progress(epoch, self.total_epochs, step, total_steps)

    def epoch(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Report an epoch's metrics (1-based epoch); True when the primary metric improved."""
        self.metrics = ordered(metrics)
        if self.parameters is not None:
            self.reporter.metrics(epoch, {**self.metrics, MODEL_PARAMETERS: float(self.parameters)})
            self.parameters = None
        else:
            self.reporter.metrics(epoch, self.metrics)
        improved = self.primary.improved(metrics.get(self.primary.name), self.best_metric)
        if improved:
            self.best_metric, self.best_epoch = float(metrics[self.primary.name]), epoch
        return improved

    def checkpoint(self, path: str | Path, kind: str, epoch: int) -> None:
        self.checkpoints[kind] = Path(path)
        self.reporter.checkpoint(path, kind, epoch)

    def result(self, note: str = "") -> dict[str, Any]:
        """Report and return the result: the latest metrics and the best/last checkpoints; ``note`` says
        how the run ended when not at its last epoch (early stopping)."""
        result = {
            "metrics": self.metrics,
            "best_checkpoint": str(self.checkpoints[BEST] or ""),
            "last_checkpoint": str(self.checkpoints[LAST] or ""),
        }
        if note:
            result["note"] = note
        self.reporter.result(result["metrics"], result["best_checkpoint"], result["last_checkpoint"], note)
        return result


def ordered(metrics: dict[str, float]) -> dict[str, float]:
    """train/* first, then val/*, then lr and the rest: stable, readable log lines."""
    rank = {"train": 0, "val": 1}
    return dict(sorted(metrics.items(), key=lambda kv: (rank.get(kv[0].split("/")[0], 2), kv[0] == LR)))
