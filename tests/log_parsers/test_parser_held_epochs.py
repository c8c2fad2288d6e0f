"""HeldEpochParser: train values held until the epoch's validation, the next epoch or the end of the log."""

from __future__ import annotations

import re

from log_parsers import Line, MetricUpdate
from log_parsers.held_epochs import HeldEpochParser

_TRAIN = re.compile(r"train (\d+) loss=(\S*)")
_VAL = re.compile(r"val (\d+)? ?acc=(\S+)")


class Toy(HeldEpochParser):
    """`train <epoch> loss=<x>` (an empty x reads as no values) and `val [<epoch>] acc=<y>`."""

    def parse_line(self, line: Line):
        if match := _TRAIN.match(line.text):
            epoch = int(match.group(1))
            events = self._start_epoch(epoch) if epoch != self._epoch else []
            self._held = match.group(2)
            return events
        if match := _VAL.match(line.text):
            epoch = None if match.group(1) is None else int(match.group(1))
            return self._with_validation({"val/accuracy": float(match.group(2))}, epoch)
        return []

    def _train_values(self, held: str):
        return {"train/loss": float(held)} if held else {}


def run(*lines: str):
    parser = Toy()
    during = [event for line in lines for event in parser.feed_line(Line(line, True))]
    return during, parser.finish()


def test_validation_takes_the_latest_train_values_of_its_epoch_once():
    during, final = run("train 0 loss=2", "train 0 loss=1", "val acc=0.5", "val acc=0.6")
    assert during == [MetricUpdate(1, {"train/loss": 1.0, "val/accuracy": 0.5}), MetricUpdate(1, {"val/accuracy": 0.6})]
    assert final == []


def test_an_epoch_without_validation_is_released_at_the_next_epoch_and_at_finish():
    during, final = run("train 0 loss=2", "train 1 loss=1")
    assert during == [MetricUpdate(1, {"train/loss": 2.0})]
    assert final == [MetricUpdate(2, {"train/loss": 1.0})]


def test_a_late_validation_of_an_earlier_epoch_leaves_the_current_epoch_held():
    during, final = run("train 0 loss=2", "train 1 loss=1", "val 0 acc=0.5")
    assert during == [MetricUpdate(1, {"train/loss": 2.0}), MetricUpdate(1, {"val/accuracy": 0.5})]
    assert final == [MetricUpdate(2, {"train/loss": 1.0})]


def test_held_values_that_read_as_nothing_are_not_released():
    assert run("train 0 loss=", "train 1 loss=") == ([], [])
