r"""Per-class tables: the rows a repo prints for each class after a validation's summary line.

A parser config (a built-in or a regex parser) may add `per_class:`:

    parser:
      builtin: yolov7                    # or patterns: [...]
      per_class:
        regex: '^\s*(?P<class>\S.*?)\s+\d+\s+(?P<labels>\d+)\s+(?P<p>\S+)\s+(?P<r>\S+)\s+(?P<ap50>\S+)\s+(?P<ap>\S+)$'
        values: {ap50: AP50, ap: AP50-95, p: precision, r: recall, labels: support}
        scale: {p: 0.01}                 # optional per-group multiplier, as in patterns
        skip: [all]                      # optional: names that are no class (a summary row)

`regex` needs a group named `class` (the class's name, stripped of surrounding spaces) and maps
other named groups to the keys of a validation record's per-class row (`values`). Use the keys
the framework adapters write where they mean the same (Ultralytics' detection rows: `AP50`,
`AP50-95`, `precision`, `recall`, `support` = the class's objects in the validation set), so a
repo's rows compare with a framework job's. A value whose text is an integer (and unscaled)
stays an int; a group that did not take part in the match leaves its key out; a row whose
value is not a number is skipped whole.

Which epoch a row belongs to: the parser follows the events of the parser it wraps. A line
that yields `val/` metrics opens the table of that validation's step; the rows after it belong
to that step until the parser moves to another epoch (a MetricUpdate or ProgressUpdate of
another step). Only final lines (ended by `\n`) are tried, and only while a table is open (for
YOLOv7: from the `all` row to the next epoch's first progress bar), so a line outside costs a
call and a comparison (~5% on YOLOv7's progress-bar repaints). A name can hold spaces: anchor the
regex at the end (`$`) and take the name lazily, so the fields are counted from the right.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from log_parsers.base import ClassRow, Event, Line, LogParser, MetricUpdate, ProgressUpdate
from log_parsers.regex_parser import compile_regex, is_number

__all__ = ["PER_CLASS_KEYS", "PerClassParser", "PerClassTable", "compile_per_class"]

PER_CLASS_KEYS = ("regex", "values", "scale", "skip")
CLASS_GROUP = "class"
VAL_PREFIX = "val/"
#: A longer line is no table row (and is not searched: a runaway line must not cost a slow match).
MAX_ROW_CHARS = 2000
_INTEGER = re.compile(r"[-+]?\d+")
# The keys a row may use: as metric names (JSON and protobuf map keys), `class` excepted.
_KEY = re.compile(r"[\w\-. :/]+")


@dataclass(frozen=True, slots=True)
class PerClassTable:
    regex: re.Pattern[str]
    class_index: int                             # index of the `class` group in match.groups()
    values: tuple[tuple[int, str, float], ...]   # (group index, row key, scale)
    skip: frozenset[str] = frozenset()

    def row(self, text: str) -> tuple[str, dict[str, float | int]] | None:
        """(class name, values) of a table row; None for any other line, or a malformed row."""
        if len(text) > MAX_ROW_CHARS:
            return None
        match = self.regex.search(text)
        if match is None:
            return None
        groups = match.groups()
        name = (groups[self.class_index] or "").strip()
        if not name or name in self.skip:
            return None
        values: dict[str, float | int] = {}
        for index, key, factor in self.values:
            text = groups[index]
            if text is None:
                continue
            try:
                values[key] = int(text) if factor == 1.0 and _INTEGER.fullmatch(text) else float(text) * factor
            except ValueError:
                return None
        return name, values


def compile_per_class(entry: Any, path: str = "parser.per_class") -> PerClassTable:
    """Check a `per_class:` config and compile it; ValueError naming the bad field otherwise."""
    regex = compile_regex(entry, path, PER_CLASS_KEYS, needs="a 'regex' and 'values'")
    groups = regex.groupindex
    if CLASS_GROUP not in groups:
        raise ValueError(f"{path}.regex: needs a group named 'class' (the class's name): (?P<class>...)")
    values = entry.get("values")
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{path}.values: required, a mapping of group name -> per-class key")
    for name, key in values.items():
        if name not in groups or name == CLASS_GROUP:
            valid = ", ".join(g for g in groups if g != CLASS_GROUP) or "none"
            raise ValueError(f"{path}.values.{name}: no value group named {name!r} in the regex "
                             f"(named groups: {valid})")
        if not isinstance(key, str) or key == CLASS_GROUP or not _KEY.fullmatch(key):
            raise ValueError(f"{path}.values.{name}: invalid per-class key {key!r} (letters, digits, '_', '-', "
                             "'.', ' ', ':', '/'; not 'class')")
    keys = list(values.values())
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"{path}.values: key {twice!r} is given by two groups")
    scale = entry.get("scale", {})
    if not isinstance(scale, Mapping):
        raise ValueError(f"{path}.scale: expected a mapping of group name -> multiplier")
    for name, factor in scale.items():
        if name not in values:
            raise ValueError(f"{path}.scale.{name}: not a group listed under values")
        if not is_number(factor):
            raise ValueError(f"{path}.scale.{name}: expected a finite number, got {factor!r}")
    skip = entry.get("skip", [])
    if not isinstance(skip, list) or not all(isinstance(s, str) for s in skip):
        raise ValueError(f"{path}.skip: expected a list of names (strings)")
    return PerClassTable(regex=regex, class_index=groups[CLASS_GROUP] - 1,
                         values=tuple((groups[g] - 1, k, float(scale.get(g, 1.0))) for g, k in values.items()),
                         skip=frozenset(s.strip() for s in skip))


class PerClassParser(LogParser):
    """A parser (`inner`) plus a per-class table: the inner's events, and a ClassRow per row."""

    def __init__(self, inner: LogParser, table: PerClassTable) -> None:
        super().__init__()
        self.inner = inner
        self.table = table
        self.name = inner.name
        self._step: int | None = None  # the validation whose rows may follow; None: no table open

    def parse_line(self, line: Line) -> list[Event]:
        events = self.inner.parse_line(line)
        if events and self._follow(events):
            return events  # the validation's own line: its summary, not a row
        if self._step is None or not line.final:
            return events
        found = self.table.row(line.text)
        if found is None:
            return events
        return [*events, ClassRow(self._step, *found)]

    def take_notices(self) -> list[str]:
        return self.inner.take_notices()

    def unmatched(self) -> list[str]:
        return self.inner.unmatched()

    def finish(self) -> list[Event]:
        events = self._parse_lines(self._splitter.flush())
        rest = self.inner.finish()
        self._follow(rest)
        return events + rest

    def _follow(self, events: list[Event]) -> bool:
        """Open or close the table from the inner parser's events; True when they hold a validation."""
        validated = False
        for event in events:
            if isinstance(event, MetricUpdate):
                if any(key.startswith(VAL_PREFIX) for key in event.values):
                    self._step, validated = event.step, True
                elif event.step != self._step:
                    self._step = None
            elif isinstance(event, ProgressUpdate) and event.epoch != self._step:
                self._step = None
        return validated
