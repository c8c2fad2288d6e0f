"""The adapter base classes: the hooks a framework adapter fills in.

``TrainingAdapter`` owns the training loop (``fit``): resume, best/last checkpoints and early
stopping behave identically for every adapter that trains this way (timm); it only says how to
build, train, validate, save and load. ``FrameworkLoopAdapter`` is for frameworks that own their
loop (Ultralytics, HF ``Trainer``): ``train()`` runs it, and the framework's callbacks report
through the same ``RunRecorder``, so the daemon sees the same events from both kinds.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from adapters.controls import EarlyStopper
from adapters.job import Job
from adapters.recorder import BEST, LAST, RunRecorder
from adapters.reporter import Reporter

log = logging.getLogger("visionyard.adapter")

__all__ = ["BEST", "LAST", "FrameworkLoopAdapter", "TrainingAdapter"]


class TrainingAdapter:
    """Base class of framework adapters; ``fit()`` drives the hooks below."""

    def __init__(self, job: Job, reporter: Reporter | None = None) -> None:
        self.job = job
        self.spec = job.spec
        self.reporter = reporter if reporter is not None else Reporter(None)
        self.recorder = RunRecorder(self.reporter, job.spec.task, job.spec.training.epochs)
        self.checkpoint_dir = Path(job.checkpoint_dir)

    @property
    def best_metric(self) -> float | None:
        return self.recorder.best_metric

    @property
    def best_epoch(self) -> int:
        return self.recorder.best_epoch

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

        For a model without a job an adapter may also have ``load_weights(weights)``: ``weights`` a file or
        folder of the framework's own kind, or None for the model's pretrained weights from the local cache
        (never downloaded); the labels are the model's own. The warm worker (``adapters.serve``) looks for
        it with ``hasattr``.
        """
        raise NotImplementedError

    def predict(self, image_path: str | Path, top_k: int = 5, annotate: bool = False) -> dict[str, Any]:
        """What a loaded checkpoint sees in one image, in the task-generic shape that
        ``adapters.entrypoint`` documents (task, predictions with box / polygon / keypoints /
        rotated box, size, optional annotated ``image_png`` or ``mask_png``, text, timings).

        An adapter may also have ``predict_batch(images, top_k, annotate)``: one such result per image,
        from the framework's batched path; the warm worker (``adapters.serve``) then uses it. It is left
        out here on purpose: the worker looks for it with ``getattr``.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ helpers

    def setting(self, path: str, default: Any = None) -> Any:
        return self.spec.setting(path, default)

    def asked_image_size(self) -> int | None:
        """The spec's ``image_size`` when it asks for one; None when it is the default the daemon fills
        for the model (the catalog's size, else 224). A model without a job then keeps its weights' own
        size (``load_weights``): a 384 px checkpoint is not shrunk to a guessed 224."""
        from adapters.catalog import default_input_size
        from adapters.frameworks import get_catalog

        size = int(self.spec.image_size or 0)
        if not size or size == default_input_size(get_catalog(self.spec.framework), self.spec.model):
            return None
        return size

    def checkpoint_path(self, kind: str) -> Path:
        return self.checkpoint_dir / f"{kind}.pt"

    def report_progress(self, epoch: int, step: int, total_steps: int) -> None:
        self.recorder.progress(epoch, step, total_steps)

    # ------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train to the end (or early stop), report every epoch and the result; return the result."""
        epochs = self.spec.training.epochs
        stopper = self.early_stopper()
        self.prepare_dataset()
        self.prepare_model()

        start = 1
        if self.spec.resume:
            state = self.load_checkpoint(self.spec.resume)
            start = int(state["epoch"]) + 1
            self.recorder.restore(state.get("best_metric"), int(state.get("best_epoch") or 0), state.get("metrics"))
            if stopper is not None:
                stopper.restore(state.get("best_metric"), int(state.get("best_epoch") or 0))
            log.info("resuming from %s at epoch %d of %d", self.spec.resume, start, epochs)
            self._carry_best_forward(Path(self.spec.resume))
            if self.checkpoint_path(BEST).exists():
                self.recorder.checkpoints[BEST] = self.checkpoint_path(BEST)
            self.recorder.checkpoints[LAST] = Path(self.spec.resume)  # until this run writes its own

        for epoch in range(start, epochs + 1):
            improved = self.recorder.epoch(epoch, {**self.train_epoch(epoch), **self.validate(epoch)})
            metrics = self.recorder.metrics
            self.recorder.checkpoint(self.save_checkpoint(LAST, epoch, metrics), LAST, epoch)
            if improved:
                self.recorder.checkpoint(self.save_checkpoint(BEST, epoch, metrics), BEST, epoch)
            if stopper is not None and stopper.update(epoch, metrics.get(self.recorder.primary.name)) and epoch < epochs:
                log.info("%s", stopper.note())
                return self.recorder.result(note=stopper.note())
        return self.recorder.result()

    def early_stopper(self) -> EarlyStopper | None:
        """The run's early stopping (``training.early_stopping``) on the task's primary metric, or None."""
        rule = self.spec.training.early_stopping
        if rule is None:
            return None
        primary = self.recorder.primary
        return EarlyStopper(rule, primary.name, primary.higher_is_better)

    def _carry_best_forward(self, resumed: Path) -> None:
        """Copy the resumed run's ``best.pt`` into this run's checkpoint dir.

        A resumed job usually gets a new checkpoint dir; without the copy it would have no best
        checkpoint until it beats the old best, and would depend on the old job's files.
        """
        source = resumed if resumed.name == f"{BEST}.pt" else resumed.with_name(f"{BEST}.pt")
        target = self.checkpoint_path(BEST)
        if source.is_file() and not target.exists():
            self.recorder.carry_best(source, target, self.best_epoch)



class FrameworkLoopAdapter(TrainingAdapter):
    """An adapter whose framework runs the training loop; its callbacks report via ``self.recorder``.

    ``train()`` runs the framework's loop (resume included); the recorder's latest metrics and
    checkpoints make the result.
    """

    def train(self) -> None:
        raise NotImplementedError

    #: How the run ended when not at its last epoch (set by the framework's callbacks: early stopping).
    stop_note = ""

    def fit(self) -> dict[str, Any]:
        self.prepare_dataset()
        self.prepare_model()
        self.train()
        return self.recorder.result(note=self.stop_note)
