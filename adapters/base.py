"""``TrainingAdapter``: the hooks a framework adapter fills in, and the one training loop.

The loop (``fit``) is the same for every framework, so resume, best/last checkpoints, early
stopping and the events the daemon sees behave identically everywhere. Adapters only say how
to build, train, validate, save and load.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from adapters.job import Job
from adapters.metrics import LR, primary_metric
from adapters.reporter import Reporter

log = logging.getLogger("visionyard.adapter")

BEST = "best"
LAST = "last"


class TrainingAdapter:
    """Base class of framework adapters; ``fit()`` drives the hooks below."""

    def __init__(self, job: Job, reporter: Reporter | None = None) -> None:
        self.job = job
        self.spec = job.spec
        self.reporter = reporter if reporter is not None else Reporter(None)
        self.primary = primary_metric(job.spec.task)
        self.checkpoint_dir = Path(job.checkpoint_dir)
        self.best_metric: float | None = None
        self.best_epoch = 0  # epoch of best_metric; 0 before any improvement

    # ------------------------------------------------------------ hooks

    def prepare_dataset(self) -> None:
        """Read the dataset (runs before ``prepare_model``, which may need the class count)."""
        raise NotImplementedError

    def prepare_model(self) -> None:
        """Build the model, optimizer and scheduler."""
        raise NotImplementedError

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Train one epoch (1-based), step the scheduler; return ``train/*`` metrics and ``lr``."""
        raise NotImplementedError

    def validate(self, epoch: int) -> dict[str, float]:
        """Return ``val/*`` metrics."""
        raise NotImplementedError

    def save_checkpoint(self, kind: str, epoch: int, metrics: dict[str, float]) -> Path:
        """Write ``<checkpoint_dir>/<kind>.pt`` (with ``best_metric``/``best_epoch``); return it."""
        raise NotImplementedError

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Load weights (and optimizer/scheduler state when prepared; else build the model).

        Returns at least ``epoch``, and ``best_metric``, ``best_epoch``, ``metrics`` when known.
        """
        raise NotImplementedError

    def predict(self, image_path: str | Path, top_k: int = 5) -> list[dict[str, Any]]:
        """Top-k predictions ``[{"label", "score", "index"}]`` of a loaded checkpoint."""
        raise NotImplementedError

    # ------------------------------------------------------------ helpers

    def setting(self, path: str, default: Any = None) -> Any:
        return self.spec.setting(path, default)

    def checkpoint_path(self, kind: str) -> Path:
        return self.checkpoint_dir / f"{kind}.pt"

    def report_progress(self, epoch: int, step: int, total_steps: int) -> None:
        self.reporter.progress(epoch, self.spec.training.epochs, step, total_steps)

    # ------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), report every epoch and the result; return the result."""
        epochs = self.spec.training.epochs
        patience = int(self.setting("early_stopping.patience", 0) or 0)
        self.prepare_dataset()
        self.prepare_model()

        start, metrics = 1, {}
        if self.spec.resume:
            state = self.load_checkpoint(self.spec.resume)
            start = int(state["epoch"]) + 1
            self.best_metric = state.get("best_metric")
            self.best_epoch = int(state.get("best_epoch") or 0)
            metrics = dict(state.get("metrics") or {})
            log.info("resuming from %s at epoch %d of %d", self.spec.resume, start, epochs)
            self._carry_best_forward(Path(self.spec.resume))

        last_path = best_path = None
        for epoch in range(start, epochs + 1):
            metrics = {**self.train_epoch(epoch), **self.validate(epoch)}
            self.reporter.metrics(epoch, _ordered(metrics))
            improved = self.primary.improved(metrics.get(self.primary.name), self.best_metric)
            if improved:
                self.best_metric, self.best_epoch = float(metrics[self.primary.name]), epoch
            last_path = self.save_checkpoint(LAST, epoch, metrics)
            self.reporter.checkpoint(last_path, LAST, epoch)
            if improved:
                best_path = self.save_checkpoint(BEST, epoch, metrics)
                self.reporter.checkpoint(best_path, BEST, epoch)
            if patience and epoch - self.best_epoch >= patience and epoch < epochs:
                log.info(
                    "early stopping at epoch %d: no better %s for %d epoch(s)",
                    epoch,
                    self.primary.name,
                    patience,
                )
                break

        if best_path is None and self.spec.resume and self.checkpoint_path(BEST).exists():
            best_path = self.checkpoint_path(BEST)  # carried over from the resumed run
        if last_path is None and self.spec.resume:
            last_path = Path(self.spec.resume)  # nothing left to train
        result = {
            "metrics": _ordered(metrics),
            "best_checkpoint": str(best_path or ""),
            "last_checkpoint": str(last_path or ""),
        }
        self.reporter.result(result["metrics"], result["best_checkpoint"], result["last_checkpoint"])
        return result

    def _carry_best_forward(self, resumed: Path) -> None:
        """Copy the resumed run's ``best.pt`` into this run's checkpoint dir.

        A resumed job usually gets a new checkpoint dir; without the copy it would have no best
        checkpoint until it beats the old best, and would depend on the old job's files.
        """
        source = resumed if resumed.name == f"{BEST}.pt" else resumed.with_name(f"{BEST}.pt")
        target = self.checkpoint_path(BEST)
        if not source.is_file() or target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        self.reporter.checkpoint(target, BEST, self.best_epoch)


def _ordered(metrics: dict[str, float]) -> dict[str, float]:
    """train/* first, then val/*, then lr and the rest: stable, readable log lines."""
    rank = {"train": 0, "val": 1}
    return dict(sorted(metrics.items(), key=lambda kv: (rank.get(kv[0].split("/")[0], 2), kv[0] == LR)))
