"""In-process daemons for the core's and the daemon's tests (no env is built: `tests/inprocess_daemon.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inprocess_daemon import InProcessDaemon, dataset, end_leftover_jobs
from tests.runner.predict_served import serving


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return dataset(tmp_path_factory.mktemp("data") / "colours")


@pytest.fixture
def serve(tmp_path):
    """`serve(**options)` starts an `InProcessDaemon` on the test's home (again after a `stop()`: a
    restart); every daemon is stopped at the end, and every job still running there ended."""
    started: list[InProcessDaemon] = []

    def start(home: Path | None = None, **options) -> InProcessDaemon:
        started.append(InProcessDaemon(home or tmp_path / "home", **options))
        return started[-1]

    yield start
    for daemon in started:
        daemon.stop()
    for home in {d.home for d in started}:
        end_leftover_jobs(home)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """`served(limits, child_seconds, workers)`: a RunnerServicer over a real socket with a finished
    job whose worker is `predict_child.py` (tests/runner/predict_served.py)."""
    yield from serving(tmp_path, monkeypatch)
