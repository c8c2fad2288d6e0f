"""A custom repo's metric files (its spec's ``metric_files``), tailed while its job runs.

One thread per job polls each file (found by its glob as artifacts are: under the output dir, else
among the files the run wrote in its working tree; the last match in natural order) and hands what
is new to ``sink(source, path, position, events, notices)``, which applies the events and stores the
position in one transaction, as the log tail does with its offset. ``position`` is the bytes of
complete lines taken (csv, json_lines) or the records taken (json documents), so a restarted daemon
goes on where the last one stopped: a row is applied once, and a rewritten document yields only its
new records. Formats are read by log_parsers/files.py.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from adapters.files import made_by_run
from log_parsers.base import MetricUpdate
from log_parsers.files import LINE_FORMATS, MetricFileReader

log = logging.getLogger("visionyard.jobs")
POLL_SECONDS = 1.0
READ_BYTES = 16 << 20       # of a line format per poll: a large backlog is taken over several polls
MAX_DOCUMENT_BYTES = 64 << 20  # a JSON document larger than this is not read (a notice says so)

Sink = Callable[[int, Path, int, list[MetricUpdate], list[str]], None]


@dataclass
class _Source:
    index: int
    pattern: str
    reader: MetricFileReader
    path: Path | None = None           # the file read so far (what the glob matched)
    position: int = 0
    seen: tuple[int, int] | None = None  # a document's (mtime_ns, size) when last parsed
    notices: list[str] = field(default_factory=list)

    @property
    def lines(self) -> bool:
        return self.reader.spec.format in LINE_FORMATS


class MetricFilesTailer(threading.Thread):
    """Follows a job's metric files; ``stop()`` reads them a last time (the writer is done)."""

    def __init__(self, specs, output_dir: Path, work_tree: Path | None, positions: dict[int, tuple[str, int]],
                 sink: Sink, interval: float = POLL_SECONDS, name: str = "metric-files"):
        """``specs``: the repo spec's MetricFileSpec entries; ``positions``: what the store holds
        (source index -> (path, position)) from an earlier daemon."""
        super().__init__(name=name, daemon=True)
        self.output_dir, self.work_tree, self.sink, self.interval = Path(output_dir), work_tree, sink, interval
        self.sources = []
        for index, spec in enumerate(specs):
            source = _Source(index, spec.path, MetricFileReader(spec.file_format()))
            if index in positions:
                path, position = positions[index]
                source.path, source.position = Path(path), int(position)
            self.sources.append(source)
        self._stop_event = threading.Event()
        self._final = True

    def replay(self) -> list[MetricUpdate]:
        """What the files held up to the stored positions (an earlier daemon applied it): a CSV's header
        read again, and the events, to rebuild state; nothing is applied."""
        events: list[MetricUpdate] = []
        for source in self.sources:
            if source.path is None or not source.position:
                continue
            try:
                data = _read(source.path, 0, source.position if source.lines else MAX_DOCUMENT_BYTES)
            except OSError:
                continue
            if source.lines:
                events += source.reader.feed(data, final=True)[0]
            else:
                result = source.reader.document(data, 0, upto=source.position)
                events += [] if result is None else result[0]
            source.reader.take_notices()
        return events

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.poll()
            self._stop_event.wait(self.interval)
        if self._final:
            self.poll(final=True)

    def stop(self, final: bool = True) -> None:
        """Stop after a last read (``final``: a partial last line counts, the writer is done); without it
        (the daemon detaches from a job that goes on) the next daemon reads on from the stored positions."""
        self._final = final
        self._stop_event.set()
        if self.is_alive():
            self.join()
        elif final and not self.ident:  # never started: the files are still read once
            self.poll(final=True)

    def poll(self, final: bool = False) -> None:
        for source in self.sources:
            try:
                self._poll(source, final)
            except Exception:  # a file the repo writes oddly must not stop the others, nor the job
                log.exception("reading the metric file %s failed", source.path or source.pattern)

    def _poll(self, source: _Source, final: bool) -> None:
        path = self._find(source.pattern)
        if path is None:
            return
        info = os.stat(path)
        if path != source.path or (source.lines and info.st_size < source.position):
            # a new file (the first match, a newer one, or this one written again from its start)
            if source.path is not None and source.lines:
                source.notices.append(f"reading {path} from its start (read up to byte {source.position} of "
                                      f"{source.path} before)")
            source.path, source.seen = path, None
            if source.lines:
                source.position = 0
                source.reader = MetricFileReader(source.reader.spec)
        seen = (info.st_mtime_ns, info.st_size)
        if source.lines:
            data = _read(path, source.position, READ_BYTES)
            events, used = source.reader.feed(data, final=final and len(data) < READ_BYTES)
            position = source.position + used
        elif seen == source.seen:
            return
        elif info.st_size > MAX_DOCUMENT_BYTES:
            source.notices.append(f"larger than {MAX_DOCUMENT_BYTES >> 20} MiB: not read")
            events, position = [], source.position
        else:
            result = source.reader.document(_read(path, 0, MAX_DOCUMENT_BYTES), source.position)
            if result is None:  # being rewritten: read it again at the next poll
                if final:
                    source.notices.append("does not parse as JSON at the end of the job")
                else:
                    return
                events, position = [], source.position
            else:
                events, position = result
        notices = source.notices + source.reader.take_notices()
        if events or notices or position != source.position:
            self.sink(source.index, path, position, events, notices)
        source.position, source.seen, source.notices = position, seen, []

    def _find(self, pattern: str) -> Path | None:
        from custom_repos.translate import natural_key

        for folder in (self.output_dir, self.work_tree):
            if folder is None or not Path(folder).is_dir():
                continue
            found = [p for p in Path(folder).glob(pattern)
                     if p.is_file() and (folder == self.output_dir or made_by_run(p))]
            if found:
                return max(found, key=lambda p: natural_key(str(p.relative_to(folder))))
        return None


def _read(path: Path, start: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(size)
