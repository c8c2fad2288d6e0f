"""``HFTask``: what differs per task when HF's ``Trainer`` trains a vision model.

The adapter (``adapters/transformers/trainer.py``) owns everything the tasks share: loading from
a hub id or folder (offline: fail fast), ``TrainingArguments``, the callback that reports through
the ``RunRecorder``, checkpoints (``save_pretrained`` folders with the processor), resume and
predict's task-generic shape. A task says how to build its model and processor, turn dataset
records into model inputs, batch them, score an evaluation, and predict a batch of images.

Scoring an evaluation (``compute_metrics``) also leaves what it measured per class or per sample
(an ``adapters.evaluation`` ``Evaluation``) in ``evaluation``: the adapter takes it when the
Trainer reports the evaluation and writes it as that epoch's validation record, with the metrics
reported.
"""

from __future__ import annotations

import os
from typing import Any

from adapters.datasets import Dataset, ImageRecord
from adapters.evaluation.record import Evaluation


class HFTask:
    #: The task's name in the job spec.
    name = ""
    #: The ``transformers`` Auto class that loads a checkpoint of this task.
    auto_model = ""
    #: ``compute_metrics``' key for the task's primary metric (``val/<key>``).
    primary = ""
    #: Trainer arguments this task needs (e.g. keep uncollated predictions for detection).
    training_args: dict[str, Any] = {}

    def __init__(self, job) -> None:
        self.job = job
        self.spec = job.spec
        self.class_names: list[str] = []
        self.dataset: Dataset | None = None
        #: What the last ``compute_metrics`` measured per class or per sample, until the adapter takes it.
        self.evaluation: Evaluation | None = None

    def setting(self, path: str, default: Any = None) -> Any:
        return self.spec.setting(path, default)

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset: Dataset | None) -> tuple[Any, Any]:
        """(model, processor) from a hub id or folder; fresh weights when not ``pretrained``.

        ``dataset`` is None when loading a checkpoint of ours (predict, resume): then the
        checkpoint already has the right head.
        """
        raise NotImplementedError

    # ------------------------------------------------------------ data

    def samples(self, records: list[ImageRecord], train: bool) -> list:
        """What the Trainer iterates over for ``records``: each is given to :meth:`encode`. The records themselves,
        unless a task makes several samples of one image (top-down pose: one per person)."""
        return records

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        """One sample (a record, unless :meth:`samples` says otherwise) → the model's inputs (``pixel_values``,
        ``labels``, ...)."""
        raise NotImplementedError

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        return {key: torch.stack([item[key] for item in batch]) if hasattr(batch[0][key], "shape")
                else torch.tensor([item[key] for item in batch]) for key in batch[0]}

    # ------------------------------------------------------------ evaluation and inference

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """Metrics of one evaluation, keyed by their name after ``val/`` (``accuracy``); sets ``evaluation``."""
        raise NotImplementedError

    def take_evaluation(self) -> Evaluation | None:
        """The last evaluation's ``Evaluation`` (None when there is none), handed over once."""
        evaluation, self.evaluation = self.evaluation, None
        return evaluation

    def val_names(self, count: int) -> list[str]:
        """The names of the first ``count`` validation images, in the order the Trainer evaluates them (the
        dataset's): each path relative to the dataset's folder. A count that is not the dataset's (another
        eval set) gets the images' positions instead."""
        records = self.dataset.val if self.dataset is not None else []
        if len(records) != count:
            return [f"#{i}" for i in range(count)]
        root = os.path.abspath(self.dataset.root)
        names = []
        for record in records:
            path = os.path.abspath(record.path)
            names.append(os.path.relpath(path, root) if path.startswith(root + os.sep) else os.path.basename(path))
        return names

    def trainer_class(self):
        from transformers import Trainer

        return Trainer

    def prepare_evaluation(self) -> None:
        """Make :meth:`predict_batch` give what an evaluation scores, where that differs from what a user is
        shown (a detection task's low score threshold). The model stays loaded; nothing else changes."""

    def predict(self, model, processor, image, top_k: int, annotate: bool) -> dict[str, Any]:
        """One PIL image → ``{"predictions": [...], ...}`` in the task-generic shape: the one-image case
        of :meth:`predict_batch`."""
        return self.predict_batch(model, processor, [image], top_k, annotate)[0]

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool) -> list[dict[str, Any]]:
        """PIL images → one :meth:`predict` result each, from as few forward passes as keep every image's
        input what it is alone (``common.in_shape_groups``)."""
        raise NotImplementedError


class RecordDataset:
    """A torch-style dataset over records, encoded on access by the task."""

    def __init__(self, records: list[ImageRecord], task: HFTask, train: bool) -> None:
        self.records, self.task, self.train = records, task, train

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.task.encode(self.records[i], self.train)
