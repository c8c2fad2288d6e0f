"""The CLI through `main(argv)` against an in-process daemon (no env built: jobs run the fake
adapter), as a terminal of a given width, a NO_COLOR terminal, or a pipe shows it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from protos import visionyard_pb2 as pb
from runner.cli import main
from tests.inprocess_daemon import InProcessDaemon, dataset, end_leftover_jobs, fake_job

ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: A folder name long enough that a job's paths are wider than an 80-column terminal (and short
#: enough for the daemon's unix socket).
LONG_FOLDER = "cli-home-long-enough-that-paths-pass-80"


@dataclass
class Jobs:
    daemon: InProcessDaemon
    address: str
    done: pb.Job      # SUCCEEDED after 2 epochs, with checkpoints
    crashed: pb.Job   # FAILED (training) after 1 epoch, a long name


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> Jobs:
    root = tmp_path_factory.mktemp(LONG_FOLDER)
    daemon = InProcessDaemon(root / "home")
    try:
        data = dataset(root / "data")
        done = daemon.client.submit(fake_job(data, "train", epochs=2)).id
        daemon.wait_final(done)
        crashed = daemon.client.submit(fake_job(data, "a crash of a job with a rather long name", epochs=1)).id
        daemon.wait_final(crashed)
        yield Jobs(daemon, f"unix://{daemon.home / 'daemon.sock'}", daemon.client.get(done),
                   daemon.client.get(crashed))
    finally:
        daemon.stop()
        end_leftover_jobs(daemon.home)


@pytest.fixture
def cli(monkeypatch, capsys):
    """`cli(*argv, columns=None, no_color=False, raw=False)` -> (exit code, stdout): as a colour
    terminal of `columns` columns shows it (with `no_color`, a NO_COLOR one; ANSI codes taken out
    unless `raw`), or with no `columns`, as a pipe gets it."""

    def run(*argv: str, columns: int | None = None, no_color: bool = False, raw: bool = False) -> tuple[int, str]:
        for name in ("TTY_COMPATIBLE", "COLUMNS", "NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name, raising=False)
        if columns is not None:
            monkeypatch.setenv("TTY_COMPATIBLE", "1")
            monkeypatch.setenv("COLUMNS", str(columns))
        if no_color:
            monkeypatch.setenv("NO_COLOR", "1")
        capsys.readouterr()
        code = main(list(argv))
        out = capsys.readouterr().out
        return code, out if raw else ANSI.sub("", out)

    return run
