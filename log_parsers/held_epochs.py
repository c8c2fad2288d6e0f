"""The base of parsers that hold an epoch's train values until its validation.

Training repos print their train losses batch by batch and their validation results after the
epoch, as separate lines. A `HeldEpochParser` keeps the latest training record of the current
epoch (the subclass chooses what: the line's text, its groups) and emits one MetricUpdate per
epoch: the train values together with the validation's when the validation arrives, or the
train values alone when the next epoch starts or the log ends (an epoch that got no validation).
Subclasses parse their own lines and call `_start_epoch`, `_with_validation` and set `_held`.
"""

from __future__ import annotations

from typing import Any

from log_parsers.base import Event, LogParser, MetricUpdate

__all__ = ["HeldEpochParser"]


class HeldEpochParser(LogParser):
    """Holds the current epoch's train record (`_held`) until a validation or the epoch's end.

    A subclass's training-line handler does, per line::

        if epoch != self._epoch:
            events = self._start_epoch(epoch)   # releases the previous epoch's held values
        self._held = <the record>                # whatever `_train_values` turns into values

    and its validation handler returns `self._with_validation(values)`. The epoch check stays in
    the subclass so a training line of the current epoch costs no extra call (the hot path).
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch: int | None = None  # 0-based epoch of the latest training line
        self._held: Any = None          # that epoch's training record, not yet emitted (None: nothing held)

    # -- what subclasses implement ----------------------------------------------------------
    def _train_values(self, held: Any) -> dict[str, float]:
        """The metrics of a held training record."""
        raise NotImplementedError

    # -- shared behaviour -------------------------------------------------------------------
    def finish(self) -> list[Event]:
        events = super().finish()
        events.extend(self._release())
        return events

    def _start_epoch(self, epoch: int) -> list[Event]:
        """Make `epoch` the current one; the previous epoch's held train values, released.

        Subclasses that keep per-epoch state reset it here (and call this)."""
        events = self._release()
        self._epoch = epoch
        return events

    def _with_validation(self, values: dict[str, float], epoch: int | None = None) -> list[Event]:
        """One MetricUpdate for a validation of `epoch` (default: the current one, or the first when no
        training line came): that epoch's held train values, if still held, with `values`."""
        if epoch is None:
            epoch = self._epoch or 0
        merged: dict[str, float] = {}
        if self._held is not None and epoch == self._epoch:
            merged = self._train_values(self._held)
            self._held = None
        merged.update(values)
        return [MetricUpdate(epoch + 1, merged)]

    def _release(self) -> list[Event]:
        """The current epoch's held train values, which got no validation (none when they read as nothing)."""
        if self._held is None or self._epoch is None:
            return []
        values = self._train_values(self._held)
        self._held = None
        return [MetricUpdate(self._epoch + 1, values)] if values else []
