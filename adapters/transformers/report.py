"""The Transformers adapter's ``TrainerCallback``: Trainer events → the ``RunRecorder`` (progress, epoch metrics,
checkpoints) and the task's validation records; the zero-shot tasks' evaluation before training (epoch 0), and a
resumed run's best carried forward."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from adapters.base import BEST, LAST, FrameworkLoopAdapter
from adapters.metrics import TRAIN_IMAGES_PER_S

log = logging.getLogger("visionyard.transformers")

#: ``Trainer.evaluate`` bookkeeping that is not a metric.
NOT_METRICS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch",
               "eval_model_preparation_time")  # an evaluation before training has it from then on


def evaluate_before_training(trainer, report: Report) -> None:
    """Evaluate the model as loaded, before its first training step, and report that as epoch 0: its ``val/*``
    metrics and its validation record (a zero-shot task's baseline). A task asks for it with a class attribute
    ``evaluate_before_training = True``; a resumed run has none (its model is not the zero-shot one).

    Epoch 0 has no checkpoint, so it is never ``best``: the Trainer's best starts with the first trained epoch
    (``train()`` starts a fresh ``TrainerState``), the recorder's best is left as it was, early stopping does
    not see it, and ``record.best_epoch`` skips it."""
    report.baseline = True
    try:
        trainer.evaluate()
    finally:
        report.baseline = False


def carry_best_forward(state, args, recorder, stopper) -> None:
    """A resumed run goes on from the best of the run it resumes, which the Trainer's ``state`` (the checkpoint's)
    holds: that best checkpoint folder becomes this run's (``RunRecorder.carry_best``: copied into this run's
    checkpoint dir, where the Trainer then finds and keeps it as its best), its metric and epoch the recorder's and
    early stopping's. A best folder that is gone leaves the resumed run its own best: the first epoch it trains."""
    if state.best_metric is None:
        return
    if not state.best_model_checkpoint or state.best_global_step is None \
            or not Path(state.best_model_checkpoint).exists():
        log.warning("the best checkpoint of the resumed run is gone: this run's best starts with its first epoch")
        state.best_metric = state.best_global_step = state.best_model_checkpoint = None
        return
    key = f"eval_{args.metric_for_best_model}"
    epoch = next((round(entry["epoch"]) for entry in state.log_history
                  if entry.get("step") == state.best_global_step and key in entry), 0)
    target = Path(args.output_dir) / Path(state.best_model_checkpoint).name
    recorder.carry_best(state.best_model_checkpoint, target, epoch, state.best_metric)
    state.best_model_checkpoint = str(target)
    if stopper is not None:
        stopper.restore(state.best_metric, epoch)


def _our_metrics(metrics: dict[str, float], train_log: dict[str, float]) -> dict[str, float]:
    """``Trainer.evaluate``'s ``eval_*`` and the epoch's training log in our vocabulary."""
    out = {f"val/{key.removeprefix('eval_')}": float(value) for key, value in metrics.items()
           if key.startswith("eval_") and key not in NOT_METRICS and isinstance(value, (int, float))}
    if "loss" in train_log:
        out["train/loss"] = float(train_log["loss"])
    if "learning_rate" in train_log:
        out["lr"] = float(train_log["learning_rate"])
    return {k: v for k, v in out.items() if math.isfinite(v)}


def _report_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class Report(_report_callback_base()):
    """Trainer events → the RunRecorder (progress, epoch metrics, checkpoints) and the validation records."""

    def __init__(self, adapter: FrameworkLoopAdapter) -> None:
        self.adapter = adapter
        self.recorder = adapter.recorder
        self.epoch_start = 0
        self.train_log: dict[str, float] = {}
        self.stopper = adapter.early_stopper()
        self.images_per_s: float | None = None
        #: True while ``evaluate_before_training`` runs: that evaluation is epoch 0.
        self.baseline = False

    def _epoch(self, state) -> int:
        return max(1, round(state.epoch or 0))

    def on_train_begin(self, args, state, control, **kwargs):
        if self.adapter.spec.resume:  # ``state``: the resumed checkpoint's
            self.recorder.checkpoints[LAST] = Path(self.adapter.spec.resume)  # until this run saves its own
            carry_best_forward(state, args, self.recorder, self.stopper)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch_start = state.global_step
        self.epoch_started = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):  # before the epoch's evaluation
        seconds = time.perf_counter() - getattr(self, "epoch_started", time.perf_counter())
        self.images_per_s = len(self.adapter.dataset.train) / seconds if seconds > 0 else None

    def on_step_end(self, args, state, control, **kwargs):
        per_epoch = max(1, math.ceil(state.max_steps / max(1, args.num_train_epochs)))
        epoch = min(int(state.global_step - 1) // per_epoch + 1, int(args.num_train_epochs))
        self.recorder.progress(epoch, state.global_step - self.epoch_start, per_epoch)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.train_log = dict(logs)
            # fp16's loss scaler skips steps with inf gradients on purpose: only the loss counts there
            watched = ("loss",) if args.fp16 else ("loss", "grad_norm")
            bad = [k for k in watched if isinstance(logs.get(k), float) and not math.isfinite(logs[k])]
            if bad:  # stop here with the reason, not later in evaluation with NaN boxes or logits
                raise FloatingPointError(
                    f"training diverged in epoch {self._epoch(state)}: {' and '.join(bad)} became "
                    f"{logs[bad[0]]}; lower training.learning_rate, keep training.gradient_clip on, or check the "
                    "dataset for blank or corrupt images")

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        epoch, reported = self._epoch(state), _our_metrics(metrics or {}, self.train_log)
        if self.baseline:  # evaluate_before_training: epoch 0, no best, no early stopping
            self.adapter.record_validation(0, 0, reported)
            best = self.recorder.best_metric, self.recorder.best_epoch
            self.recorder.epoch(0, reported)
            self.recorder.best_metric, self.recorder.best_epoch = best
            return
        if self.images_per_s:
            reported[TRAIN_IMAGES_PER_S] = self.images_per_s
        # the record first, so that it is there when the daemon sees the epoch's metrics
        self.adapter.record_validation(epoch, state.global_step, reported)
        self.recorder.epoch(epoch, reported)
        stopper = self.stopper
        if stopper is not None and stopper.update(epoch, reported.get(stopper.metric)) \
                and epoch < int(args.num_train_epochs):
            self.adapter.stop_note = stopper.note()
            control.should_training_stop = True  # the Trainer still saves this epoch, then ends

    def on_save(self, args, state, control, **kwargs):
        epoch = self._epoch(state)
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.recorder.checkpoint(folder, LAST, epoch)
        if state.best_model_checkpoint and Path(state.best_model_checkpoint) == folder:
            self.recorder.checkpoint(folder, BEST, epoch)
