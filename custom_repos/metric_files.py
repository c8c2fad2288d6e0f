"""A repo spec's ``metric_files``: files the repo writes its metrics to, read as they grow.

The YAML's models and checks (each problem names its field, ``metric_files[0].metrics.acc1``); the
formats are read by log_parsers/files.py and the files tailed by runner/core/metric_files.py.
"""

from __future__ import annotations

import difflib
import re
from pathlib import PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.metrics import VOCABULARY


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileMetricSpec(_Strict):
    """One column (CSV) or key (JSON) of a metric file as a visionyard metric; a plain string is ``name``."""

    name: str
    scale: float = 1.0  # ConvNeXt's log.txt has accuracy in percent: 0.01


class MetricFileSpec(_Strict):
    """A file the repo writes metrics to, read as it grows (runner/core/metric_files.py, log_parsers/files.py).

    ``path`` is a glob like the artifacts' (under the output dir, else among the files the run wrote in its
    working tree; the last match in natural order). ``format``: ``csv`` (a header row, then a row per epoch),
    ``json_lines`` (an object per line), ``json`` (a document rewritten whole: its list of records at
    ``records``, a dotted key) or ``trainer_state`` (``json`` with ``records: log_history``). ``epoch``: the
    column or key holding the epoch, ``first_epoch`` the number the file gives the first one. ``metrics``:
    column or key -> metric name, or ``{name, scale}``. A metric a file names comes from the file only."""

    path: str
    format: str
    epoch: str = Field(min_length=1)
    first_epoch: int = Field(1, ge=0)
    records: str = ""
    metrics: dict[str, FileMetricSpec] = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return _relative_glob(value)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        from log_parsers.files import FORMATS  # lazily: log_parsers is another team's package

        if value not in FORMATS:
            close = ["json_lines"] if value.lower() in ("jsonl", "ndjson") else difflib.get_close_matches(value, FORMATS, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown format '{value}'.{hint} Valid: {', '.join(FORMATS)}")
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: {"name": item} if isinstance(item, str) else item for key, item in value.items()}
        return value

    @model_validator(mode="after")
    def _records_only_for_documents(self) -> MetricFileSpec:
        if self.records and self.format not in ("json", "trainer_state"):
            raise ValueError(f"records: only a json or trainer_state document has records; a {self.format} file "
                             "has a record per line")
        return self

    def file_format(self):
        """The reader's plain-data config (log_parsers.files.MetricFileFormat)."""
        from log_parsers.files import FileMetric, MetricFileFormat

        return MetricFileFormat(format=self.format, epoch=self.epoch, first_epoch=self.first_epoch,
                                records=self.records, metrics=tuple(FileMetric(column, m.name, m.scale)
                                                                    for column, m in self.metrics.items()))


def metric_file_problems(files: list[MetricFileSpec]) -> list[tuple[str, str]]:
    """(field path, message) for each metric a spec's ``metric_files`` may not give: not in the vocabulary, or twice."""
    problems: list[tuple[str, str]] = []
    named: dict[str, str] = {}  # metric -> where it was mapped first
    for i, entry in enumerate(files):
        for column, mapped in entry.metrics.items():
            where = f"metric_files[{i}].metrics.{column}"
            if (message := metric_name_problem(mapped.name)) is not None:
                problems.append((where, message))
            elif mapped.name in named:
                problems.append((where, f"'{mapped.name}' is mapped by {named[mapped.name]} already: a metric "
                                        "comes from one column of one file"))
            else:
                named[mapped.name] = where
    return problems


#: Framework-specific extras a metric file may name beside the vocabulary (as a framework's own losses are named).
EXTRA_METRIC_RE = re.compile(r"^train/[a-z0-9_]+_loss$")


def metric_name_problem(name: str) -> str | None:
    """Why ``name`` is not a metric a repo may report (adapters/metrics.py), or None."""
    if name in VOCABULARY or EXTRA_METRIC_RE.match(name):
        return None
    close = difflib.get_close_matches(name, sorted(VOCABULARY), n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return (f"'{name}' is not a visionyard metric name.{hint} Valid: {', '.join(sorted(VOCABULARY))}, or a loss "
            "of its own as train/<name>_loss")


def _relative_glob(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"'{value}' must be a relative path inside the folder (no '..')")
    return value
