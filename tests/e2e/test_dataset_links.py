"""Datasets with folder links through a real daemon: a loop is read once, quickly, and never
starves the submits that follow."""

from __future__ import annotations

import os
import time

import pytest

from tests.helpers import job_spec, start_daemon
from tests.fixtures import make_imagefolder

pytestmark = pytest.mark.e2e

#: A submit of these tiny datasets answers in well under this (a loop used to take the 60 s check limit).
QUICK_SECONDS = 10
#: More than the daemon's submit-check threads, so one stuck check would starve the next submit.
LOOPING_SUBMITS = 5


def looping_dataset(root):
    data = make_imagefolder(root, per_class=4, val_per_class=2)
    os.symlink("..", data / "train" / "red" / "a")
    os.symlink("..", data / "train" / "red" / "b")
    os.symlink("..", data / "train" / "green" / "up")
    return data


def timed_submit(daemon, spec):
    started = time.monotonic()
    job = daemon.client.submit(spec)
    took = time.monotonic() - started
    daemon.client.cancel(job.id)  # the submit is what is tested; the job need not train
    return job, took


def test_looping_datasets_are_accepted_quickly_and_leave_the_daemon_free(tmp_path):
    looping = looping_dataset(tmp_path / "looping")
    valid = make_imagefolder(tmp_path / "valid", per_class=4, val_per_class=2)
    envs = tmp_path / "envs"
    envs.mkdir()
    daemon = start_daemon(tmp_path / "home", envs)
    try:
        for _ in range(LOOPING_SUBMITS):
            job, took = timed_submit(daemon, job_spec(looping))
            assert took < QUICK_SECONDS, f"a looping dataset's submit took {took:.1f} s"
            assert job.spec.num_classes == 3
        job, took = timed_submit(daemon, job_spec(valid))
        assert took < QUICK_SECONDS, f"a valid submit after the looping ones took {took:.1f} s"
        assert job.spec.num_classes == 3
        log = daemon.log_path.read_text()
        for link in ("train/red/a", "train/red/b", "train/green/up"):
            assert f"{link}: links to '..', a folder that holds the link itself (a loop); not followed" in log
    finally:
        daemon.stop()
