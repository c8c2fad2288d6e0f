"""What several Transformers test modules share: script parts run in the transformers env (``in_one_process``
steps), and checks of what a run reported."""

from __future__ import annotations

from pathlib import Path

from adapters.metrics import primary_metric

#: The head of a script that evaluates a job's model the way training does: ``evaluation_trainer(job_file,
#: callbacks=())`` → (the job's adapter, its model and dataset loaded, and the ``Trainer`` that
#: ``TransformersAdapter.train`` makes: the task's Trainer class and ``training_arguments``, the val set, the task's
#: collate and ``compute_metrics``). Its ``evaluate()`` is an epoch's evaluation, without the training.
EVALUATION_TRAINER = """
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
from adapters.transformers.tasks.base import RecordDataset


def evaluation_trainer(job_file, callbacks=()):
    adapter = build_adapter(Job.from_file(job_file), Reporter(None))
    adapter.prepare_dataset()
    adapter.prepare_model()
    task = adapter.task
    trainer = task.trainer_class()(
        model=adapter.model, args=adapter.training_arguments(),
        eval_dataset=RecordDataset(task.samples(adapter.dataset.val, train=False), task, train=False),
        data_collator=task.collate, compute_metrics=task.compute_metrics, processing_class=adapter.processor,
        callbacks=list(callbacks))
    return adapter, trainer
"""


def assert_resumed_best(task: str, first, resumed, checkpoints: Path, steps_per_epoch: int) -> None:
    """A run resumed from the last checkpoint of another (``first`` and ``resumed``: their fake reporters) ends with
    the best trained epoch of the two runs as its best: by the task's primary metric, the first epoch to reach the
    best value (a tie is no improvement), reported as the best checkpoint with that epoch and as the result's, a
    folder in the resumed run's own ``checkpoints`` dir. Epoch 0 (a zero-shot baseline) has no checkpoint."""
    primary = primary_metric(task)
    values = {m.step: m.values[primary.name] for run in (first, resumed) for m in run.of_kind("metrics") if m.step}
    best = (max if primary.higher_is_better else min)(sorted(values), key=values.__getitem__)
    reported = [c for c in resumed.of_kind("checkpoint") if c.kind == "best"]
    [result] = resumed.of_kind("result")
    folder = checkpoints / f"checkpoint-{best * steps_per_epoch}"
    assert reported and reported[-1].epoch == best, (values, reported)
    assert result.best_checkpoint == reported[-1].path == str(folder), values
    assert (folder / "config.json").is_file() and (folder / "trainer_state.json").is_file()
