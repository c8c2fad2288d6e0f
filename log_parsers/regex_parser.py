"""Regex parsers defined in a repo spec's YAML, for repos without a built-in parser.

    parser:
      patterns:
        - regex: 'epoch (?P<epoch>\\d+)/(?P<epochs>\\d+) loss=(?P<loss>[\\d.eE+-]+)'
          metrics: {loss: train/loss}     # named group -> metric name
          epoch_group: epoch              # optional: the group holding the epoch number
          epoch_base: 1                   # 0 if the repo counts epochs from 0 (default 1)
          total_epochs_group: epochs      # optional
          step_group: ...                 # optional: batch within the epoch -> ProgressUpdate
          step_base: 1                    # 0 if batches count from 0 (default 1)
          total_steps_group: ...          # optional
        - regex: 'val acc (?P<acc>[\\d.]+)%'
          metrics: {acc: val/accuracy}
          scale: {acc: 0.01}              # optional per-group multiplier

Patterns are compiled once, at build time, into an ordered tuple of frozen records (the shape
of pipx's `analyze_pip_output`). Every pattern is tried (`re.search`) on every line, in order,
so one line can match several; a pattern that sets the epoch updates it before the patterns
after it on the same line. Metrics without an epoch group go to the current epoch (the last one
seen; 1 before any). A line's values for one step are merged into one MetricUpdate; the daemon
stores (step, key) as one row, so a later value for the same step overwrites an earlier one.
Values that do not parse as float are skipped.

A validation pattern (only ``val/`` metrics, no epoch or step group) matches once an epoch. When it
matches again before any epoch moved on, the parser says so (``take_notices``): with no epoch ever
reported by a pattern, each of its matches counts as the next epoch (so epoch 2's validation never
overwrites epoch 1's); otherwise the later values replace the earlier. ``unmatched()`` lists the
patterns that never matched, which the daemon reports as warnings on the job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from log_parsers.base import Event, Line, LogParser, MetricUpdate, ProgressUpdate, to_float

__all__ = ["Pattern", "RegexParser", "compile_patterns"]

_KEYS = ("regex", "metrics", "scale", "epoch_group", "epoch_base", "total_epochs_group",
         "step_group", "step_base", "total_steps_group")
_GROUP_KEYS = ("epoch_group", "total_epochs_group", "step_group", "total_steps_group")
# MLflow's rule for metric names: alphanumerics, underscores, dashes, periods, spaces, colons, slashes.
_METRIC_NAME = re.compile(r"[\w\-. :/]+")


@dataclass(frozen=True, slots=True)
class Pattern:
    regex: re.Pattern[str]
    metrics: tuple[tuple[str, str, float], ...]  # (group, metric name, scale)
    epoch_group: str | None = None
    epoch_base: int = 1
    total_epochs_group: str | None = None
    step_group: str | None = None
    step_base: int = 1
    total_steps_group: str | None = None
    # Derived at compile time for the per-line path: indexes into match.groups() (-1: unset).
    slots: tuple[tuple[int, str, float], ...] = ()  # metrics, by index
    epoch_index: int = -1
    total_epochs_index: int = -1
    step_index: int = -1
    total_steps_index: int = -1
    positional: bool = False  # any epoch/step group set: the pattern moves the position
    #: Only val/ metrics and no position: a validation summary, once an epoch (a second match in one epoch is
    #: noticed, see RegexParser._again).
    validation: bool = False


def _to_int(text: str | None) -> int | None:
    """An integer count ("3", also "3.0"); None for anything else (or a group that did not match)."""
    try:
        return int(text)
    except TypeError:
        return None
    except ValueError:
        value = to_float(text)
        return int(value) if value is not None and value.is_integer() else None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def compile_regex(entry: Any, path: str, keys: tuple[str, ...], needs: str = "a 'regex'") -> re.Pattern:
    """The ``regex`` of a pattern's config (a mapping of ``keys``) compiled; ValueError naming the bad field."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{path}: expected a mapping with {needs}, got {type(entry).__name__}")
    for key in entry:
        if key not in keys:
            raise ValueError(f"{path}.{key}: unknown key (valid: {', '.join(keys)})")
    source = entry.get("regex")
    if not isinstance(source, str) or not source:
        raise ValueError(f"{path}.regex: required, a non-empty string")
    try:
        return re.compile(source)
    except re.error as exc:
        raise ValueError(f"{path}.regex: invalid regular expression: {exc}") from None


def _compile_one(entry: Any, path: str) -> Pattern:
    regex = compile_regex(entry, path, _KEYS)
    groups = regex.groupindex

    def group(key: str, name: Any) -> str:
        if not isinstance(name, str):
            raise ValueError(f"{path}.{key}: expected a group name (string), got {type(name).__name__}")
        if name not in groups:
            valid = ", ".join(groups) or "none: name a group with (?P<name>...)"
            raise ValueError(f"{path}.{key}: no group named {name!r} in the regex (named groups: {valid})")
        return name

    metrics = entry.get("metrics", {})
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{path}.metrics: expected a mapping of group name -> metric name")
    for name, metric in metrics.items():
        group(f"metrics.{name}", name)
        if not isinstance(metric, str) or not _METRIC_NAME.fullmatch(metric):
            raise ValueError(f"{path}.metrics.{name}: invalid metric name {metric!r} (letters, digits, "
                             "'_', '-', '.', ' ', ':', '/')")
    scale = entry.get("scale", {})
    if not isinstance(scale, Mapping):
        raise ValueError(f"{path}.scale: expected a mapping of group name -> multiplier")
    for name, factor in scale.items():
        if name not in metrics:
            raise ValueError(f"{path}.scale.{name}: not a group listed under metrics")
        if not is_number(factor):
            raise ValueError(f"{path}.scale.{name}: expected a finite number, got {factor!r}")
    named = {key: group(key, entry[key]) for key in _GROUP_KEYS if entry.get(key) is not None}
    bases = {}
    for key in ("epoch_base", "step_base"):
        base = entry.get(key, 1)
        if not isinstance(base, int) or isinstance(base, bool) or base < 0:
            raise ValueError(f"{path}.{key}: expected 0 or 1 (a non-negative integer), got {base!r}")
        bases[key] = base
    if not metrics and not named:
        raise ValueError(f"{path}: maps nothing: give metrics or an epoch/step group")
    metric_list = tuple((g, m, float(scale.get(g, 1.0))) for g, m in metrics.items())
    indexes = {key.replace("_group", "_index"): groups[name] - 1 for key, name in named.items()}
    return Pattern(regex=regex, metrics=metric_list, **named, **bases,
                   slots=tuple((groups[g] - 1, m, f) for g, m, f in metric_list),
                   positional=bool(named), **indexes,
                   validation=bool(metric_list) and not named and all(m.startswith("val/") for _, m, _ in metric_list))


def compile_patterns(config: Mapping[str, Any], path: str = "parser") -> tuple[Pattern, ...]:
    """Check a regex-parser config and compile it; ValueError naming the bad field otherwise."""
    for key in config:
        if key not in ("patterns", "per_class"):  # per_class: read by the registry (per_class.py)
            raise ValueError(f"{path}.{key}: unknown key (valid: builtin, patterns, per_class)")
    entries = config.get("patterns")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}.patterns: required, a non-empty list of patterns")
    return tuple(_compile_one(entry, f"{path}.patterns[{i}]") for i, entry in enumerate(entries))


class RegexParser(LogParser):
    name = "regex"

    def __init__(self, patterns: tuple[Pattern, ...]) -> None:
        super().__init__()
        self.patterns = patterns
        self._epoch = 1
        self._total_epochs: int | None = None
        #: How often each pattern matched (the daemon warns about those that never do).
        self.matches = [0] * len(patterns)
        self._positioned = False  # a pattern with an epoch group has matched
        self._epoch_of: dict[int, int] = {}  # a validation pattern -> the epoch its last match went to
        self._notices: list[str] = []
        self._noticed: set[int] = set()

    def parse_line(self, line: Line) -> list[Event]:
        text = line.text
        events: list[Event] = []
        values: dict[str, float] = {}
        for index, pattern in enumerate(self.patterns):
            match = pattern.regex.search(text)
            if match is None:
                continue
            self.matches[index] += 1
            groups = match.groups()
            if pattern.validation and self._epoch_of.get(index) == self._epoch:
                values = self._again(index, values, events)  # a second validation line in one epoch
            if pattern.validation:
                self._epoch_of[index] = self._epoch
            if pattern.positional:
                before = self._epoch
                progress = self._position(pattern, groups)
                self._positioned = self._positioned or pattern.epoch_index >= 0
                if values and self._epoch != before:  # values seen so far belong to the old epoch
                    events.append(MetricUpdate(before, values))
                    values = {}
                if progress is not None:
                    events.append(progress)
            for index, metric, factor in pattern.slots:
                number = groups[index]
                if number is None:
                    continue
                try:
                    values[metric] = float(number) * factor
                except ValueError:
                    pass
        if values:
            events.append(MetricUpdate(self._epoch, values))
        return events

    def _again(self, index: int, values: dict[str, float], events: list[Event]) -> dict[str, float]:
        """A validation pattern matched again in the epoch its last match went to. With no epoch from any
        pattern yet, its matches are the epochs: the values so far go to this epoch and the match to the next
        one. With epochs, the later values replace the earlier. Either way a notice says so, once."""
        source = self.patterns[index].regex.pattern
        shown = source if len(source) <= 60 else source[:57] + "..."
        if not self._positioned:
            if values:
                events.append(MetricUpdate(self._epoch, values))
            self._epoch += 1
            self._notice(index, f"pattern {index + 1} ({shown}) matched again with no new epoch and no pattern has "
                                f"reported an epoch: each of its matches counts as the next epoch (now {self._epoch}); "
                                "give a pattern an epoch_group to say which epoch a line belongs to")
            return {}
        self._notice(index, f"pattern {index + 1} ({shown}) matched twice in epoch {self._epoch}: the later values "
                            "replace the earlier")
        return values

    def _notice(self, index: int, text: str) -> None:
        if index not in self._noticed:
            self._noticed.add(index)
            self._notices.append(text)

    def take_notices(self) -> list[str]:
        """What the parser noticed since the last call (each once per pattern)."""
        notices, self._notices = self._notices, []
        return notices

    def unmatched(self) -> list[str]:
        """The patterns that never matched, each as ``pattern N (regex)``."""
        return [f"pattern {i + 1} ({p.regex.pattern})" for i, p in enumerate(self.patterns) if not self.matches[i]]

    def _position(self, pattern: Pattern, groups: tuple[str | None, ...]) -> ProgressUpdate | None:
        """Update the current epoch/total from a match; a ProgressUpdate when it names a position."""
        if pattern.total_epochs_index >= 0:
            total = _to_int(groups[pattern.total_epochs_index])
            if total is not None:
                self._total_epochs = total
        if pattern.epoch_index >= 0:
            epoch = _to_int(groups[pattern.epoch_index])
            if epoch is None:
                return None
            epoch += 1 - pattern.epoch_base
            self._epoch = epoch if epoch > 1 else 1
        elif pattern.step_index < 0:
            return None
        step = total_steps = None
        if pattern.step_index >= 0:
            step = _to_int(groups[pattern.step_index])
            if step is not None:
                step += 1 - pattern.step_base
                step = step if step > 1 else 1
        if pattern.total_steps_index >= 0:
            total_steps = _to_int(groups[pattern.total_steps_index])
        return self._progress(self._epoch, self._total_epochs, step, total_steps)
