"""A custom repo's validations as validation records, from what its log parser reads.

A framework adapter writes its own records (``adapters.evaluation.record``); a custom repo only
prints. When the repo's parser reads a per-class table (``per_class:``, ``log_parsers/per_class.py``)
the daemon writes, for each epoch with ``val/`` metrics, the record a framework would:
``source: "training"``, ``evaluator`` the repo (``yolov7 a207844``), ``classes`` the job's dataset
classes (as the translator gave them to the repo; the names in the order printed when unknown),
``metrics`` the epoch's parsed ``val/`` metrics, ``per_class`` the table's rows (``{"class": …,
"AP50": …}``, a class printed twice keeping its last row) and no confusion matrix. An epoch that
validated without printing a table gets its record too, with no rows, so ``visionyard results``
lists every validated epoch. ``step`` is null: the log does not say how many batches ran.

Only the latest validation is kept in memory: its record is written once per chunk of log lines
that changed it (``flush``, called before the chunk's transaction commits), and the daemon's
restart replays the log through ``add(..., replay=True)``, which rebuilds that state without
writing. A record that cannot be written is logged and noted in the job's log, never raised: the
log's parsing and the job go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from adapters.evaluation.record import ResultsWriter, ValidationRecord, read_index, read_record
from log_parsers.base import ClassRow, Event, MetricUpdate

log = logging.getLogger("visionyard.jobs")

VAL_PREFIX = "val/"


class RepoResults:
    """The validation records of one custom repo job, written from its parser's events."""

    def __init__(self, job_dir: Path, job_id: str, task: str, evaluator: str, classes: list[str],
                 note: Callable[[str], None] | None = None) -> None:
        self.writer = ResultsWriter(job_dir, task)
        self.job_id, self.task, self.evaluator = job_id, task, evaluator
        self.classes = list(classes)
        self.note = note
        self._step: int | None = None           # the validation held in memory
        self._metrics: dict[str, float] = {}
        self._rows: dict[str, dict] = {}        # class name -> row, in the order printed
        self._dirty = False
        self._written: set[int] | None = None   # epochs the index lists (read when first needed)
        self._failed = False

    def add(self, events: Iterable[Event], replay: bool = False) -> None:
        """Take a parser's events; `replay`: lines a previous daemon handled (rebuild, write nothing)."""
        for event in events:
            if isinstance(event, MetricUpdate):
                values = {k: v for k, v in event.values.items() if k.startswith(VAL_PREFIX)}
                if values:
                    self._at(event.step, replay)
                    self._metrics.update(values)
                    self._dirty = not replay
            elif isinstance(event, ClassRow):
                self._at(event.step, replay)
                self._rows.pop(event.name, None)  # a row printed again replaces the first, at its new place
                self._rows[event.name] = {"class": event.name, **event.values}
                self._dirty = not replay

    def flush(self) -> None:
        """Write the validation in memory if it changed since it was last written."""
        if not self._dirty or self._step is None:
            return
        self._dirty = False
        rows = list(self._rows.values())
        record = ValidationRecord(
            task=self.task, epoch=self._step, step=None, source="training", evaluator=self.evaluator,
            classes=self.classes or [row["class"] for row in rows], metrics=dict(self._metrics), per_class=rows,
            job=self.job_id)
        try:
            self.writer.write(record)
        except Exception as exc:  # noqa: BLE001 (a full disk, a bad value: never the log's parsing)
            log.warning("job %s: could not write the validation record of epoch %d: %s: %s", self.job_id,
                        self._step, type(exc).__name__, exc)
            if self.note is not None and not self._failed:
                self.note(f"[visionyard] could not write the validation record of epoch {self._step}: "
                          f"{type(exc).__name__}: {exc}")
            self._failed = True
            return
        if self._written is not None:
            self._written.add(self._step)

    def _at(self, step: int, replay: bool) -> None:
        """Make `step` the validation in memory: the one before is written first; a validation
        already written (a late line of an older epoch) is read back to be added to."""
        if step == self._step:
            return
        self.flush()
        self._step, self._metrics, self._rows = step, {}, {}
        if replay:
            return
        if self._written is None:
            try:
                self._written = {entry["epoch"] for entry in read_index(self.writer.job_dir)}
            except (OSError, ValueError, TypeError, KeyError):
                self._written = set()
        if step in self._written:
            try:
                kept = read_record(self.writer.job_dir, step)
            except (OSError, ValueError, TypeError):
                return
            self._metrics = {k: v for k, v in kept.metrics.items() if v is not None}
            self._rows = {str(row.get("class")): row for row in kept.per_class}
