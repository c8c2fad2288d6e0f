"""Metric files a repo writes beside its log, read as they grow: rows in, `MetricUpdate`s out.

Some repos print little and write their metrics to a file instead: a CSV with a header row
(Ultralytics' ``results.csv``), JSON lines (ConvNeXt's ``log.txt``, mmcv's ``*.log.json``) or a
JSON document rewritten whole each time (HF's ``trainer_state.json``: its records under
``log_history``). A :class:`MetricFileReader` maps each record's columns or keys to metric names and
its epoch column to the 1-based step every parser uses.

Pure like the parsers: bytes in (the runner reads the file), events out; nothing here opens a file.
Line formats consume complete lines only: :meth:`MetricFileReader.feed` says how many bytes it took, a
partial last line waits for its newline (or for ``final``, when the writer is done). A JSON document
is taken whole: :meth:`MetricFileReader.document` yields the records past those already taken, and
nothing while the file does not parse (it is being rewritten).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from log_parsers.base import MetricUpdate

#: csv and json_lines are appended line by line; json and trainer_state are documents rewritten whole.
FORMATS = ("csv", "json_lines", "json", "trainer_state")
LINE_FORMATS = ("csv", "json_lines")
#: Where a format's records are in its document when the spec doesn't say (`records:`).
DEFAULT_RECORDS = {"trainer_state": "log_history"}
#: A line longer than this without a newline is not a metrics row: skipped, so a runaway writer can't
#: make the reader hold (and re-read) an ever-growing tail.
MAX_ROW_BYTES = 1 << 20


@dataclass(frozen=True)
class FileMetric:
    column: str            # the CSV column / JSON key
    metric: str            # the visionyard metric name
    scale: float = 1.0     # ConvNeXt writes accuracy in percent: 0.01


@dataclass(frozen=True)
class MetricFileFormat:
    """How one file's records become metrics: plain data, made from a repo spec's ``metric_files`` entry."""

    format: str
    epoch: str                        # the column / key holding the epoch
    metrics: tuple[FileMetric, ...]
    first_epoch: int = 1              # the number the file gives the first epoch (ConvNeXt's log.txt: 0)
    records: str = ""                 # json: the dotted key of the list of records ("" = the document)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}. Valid: {', '.join(FORMATS)}")

    @property
    def records_key(self) -> str:
        return self.records or DEFAULT_RECORDS.get(self.format, "")


class MetricFileReader:
    """One metric file's reader; keeps what a format needs between reads (a CSV's header)."""

    def __init__(self, spec: MetricFileFormat):
        self.spec = spec
        self.header: list[str] | None = None
        self._notices: list[str] = []
        self._noticed: set[str] = set()

    # ---------------------------------------------------------------- line formats

    def feed(self, data: bytes, final: bool = False) -> tuple[list[MetricUpdate], int]:
        """The events of the complete lines at the start of ``data`` (bytes of the file from where the last
        call stopped), and how many bytes they took. A partial last line is left for the next call, unless
        ``final`` (the writer is done)."""
        end = data.rfind(b"\n") + 1
        if final and end < len(data):
            end = len(data)
        elif end == 0 and len(data) > MAX_ROW_BYTES:
            self._notice("long", f"a line of over {MAX_ROW_BYTES} bytes without a newline: skipped")
            return [], len(data)
        events = [event for line in data[:end].splitlines() for event in self._line(line)]
        return events, end

    def _line(self, raw: bytes) -> list[MetricUpdate]:
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            return []
        if self.spec.format == "json_lines":
            try:
                record = json.loads(text)
            except ValueError:
                self._notice("json", f"a line that is not JSON: {text[:80]!r}")
                return []
            return self._records([record])
        row = next(csv.reader([text]))
        if self.header is None:
            self.header = [name.strip() for name in row]
            missing = [c for c in (self.spec.epoch, *(m.column for m in self.spec.metrics)) if c not in self.header]
            if missing:
                self._notice("header", f"no column {', '.join(map(repr, missing))} in the header "
                                       f"({', '.join(self.header)})")
            return []
        return self._records([dict(zip(self.header, (cell.strip() for cell in row)))])

    # ---------------------------------------------------------------- documents

    def document(self, data: bytes, taken: int, upto: int | None = None) -> tuple[list[MetricUpdate], int] | None:
        """The events of the document's records after the first ``taken`` (up to ``upto``), and how many
        records it holds now; None when it does not parse (being rewritten: read it again later)."""
        try:
            document = json.loads(data.decode("utf-8", "replace"))
        except ValueError:
            return None
        records: Any = document
        for part in filter(None, self.spec.records_key.split(".")):
            records = records.get(part) if isinstance(records, Mapping) else None
        if not isinstance(records, list):
            where = f"'{self.spec.records_key}'" if self.spec.records_key else "the document"
            self._notice("records", f"{where} is not a list of records")
            return [], taken
        return self._records(records[taken:upto]), max(taken, len(records))

    # ---------------------------------------------------------------- records

    def _records(self, records: Iterable[Any]) -> list[MetricUpdate]:
        events = []
        for record in records:
            if not isinstance(record, Mapping):
                continue
            values = {}
            for mapped in self.spec.metrics:
                value = _number(record.get(mapped.column))
                if value is not None:
                    values[mapped.metric] = value * mapped.scale
            if not values:
                continue
            epoch = _number(record.get(self.spec.epoch))
            if epoch is None or not math.isfinite(epoch):
                self._notice("epoch", f"a record without a number in '{self.spec.epoch}': skipped")
                continue
            step = math.ceil(epoch) - self.spec.first_epoch + 1  # HF's 0.5 is within epoch 1
            if step < 1:
                self._notice("first", f"epoch {record.get(self.spec.epoch)!r} comes before first_epoch "
                                      f"{self.spec.first_epoch}: skipped")
                continue
            events.append(MetricUpdate(step=step, values=values))
        return events

    def _notice(self, key: str, text: str) -> None:
        if key not in self._noticed:
            self._noticed.add(key)
            self._notices.append(text)

    def take_notices(self) -> list[str]:
        """What the reader found wrong with the file, each kind once, since the last call."""
        notices, self._notices = self._notices, []
        return notices


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
