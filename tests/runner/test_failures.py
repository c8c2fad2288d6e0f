"""Why a job failed, as data: judged from how it ended, kept on its record, filtered by, shown."""

from __future__ import annotations

import sqlite3

import pytest

import runner.cli.commands
from protos import visionyard_pb2 as pb
from runner.cli import main
from runner.core import failures
from runner.core.failures import Cause
from runner.core.jobs import end_tags
from runner.core.store import JobState, JobStore

TORCH_CUDA_OOM = ("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity; "
                  "77.3 GiB already allocated)")


@pytest.mark.parametrize("known, signal, error_report, tail, disk_full, expected", [
    (True, None, TORCH_CUDA_OOM, "", False, Cause.OUT_OF_MEMORY),
    (True, None, "MemoryError: ", "", False, Cause.OUT_OF_MEMORY),
    (True, None, "", "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes",
     False, Cause.OUT_OF_MEMORY),  # a repo's own traceback, no adapter report
    (True, None, "", "terminate called after throwing an instance of 'std::bad_alloc'", False, Cause.OUT_OF_MEMORY),
    (True, None, "DatasetError: train/0/a.png: cannot decode the image", "", False, Cause.DATASET),
    (True, None, "FloatingPointError: training diverged in epoch 3: loss became nan", "", False, Cause.DIVERGED),
    (True, None, "RuntimeError: [enforce fail at inline_container.cc:671] . unexpected pos", "", True,
     Cause.DISK_FULL),
    (True, None, "OSError: [Errno 28] No space left on device", "", True, Cause.DISK_FULL),
    (False, None, "", "", False, Cause.LOST),
    (True, 9, "", "epoch 3/10", False, Cause.KILLED),
    (True, None, "ValueError: checkpoint is not a torch file", "Traceback ...", False, Cause.TRAINING),
    (True, None, "", "toy trainer blew up", False, Cause.TRAINING),  # a repo's command exited 3
])
def test_the_cause_of_an_exit(known, signal, error_report, tail, disk_full, expected):
    assert failures.of_exit(known=known, signal=signal, error_report=error_report, log_tail=tail,
                            disk_full=disk_full) is expected


def test_every_cause_has_its_wire_number_and_back():
    assert {Cause.from_proto(c.to_proto()) for c in Cause} == set(Cause)
    assert [v.name for v in pb.FailureCause.DESCRIPTOR.values][1:] == [f"CAUSE_{c.name}" for c in Cause]
    assert failures.cause_to_proto("") == pb.CAUSE_UNSPECIFIED


def test_the_store_keeps_a_cause_filters_by_it_and_a_cancel_is_one(tmp_path):
    store = JobStore(tmp_path / "state.db")
    try:
        oom, data, cancelled, ok = (store.create_job({"framework": "timm"}, name, 1).id
                                    for name in ("oom", "data", "cancelled", "ok"))
        for job in (oom, data, ok):
            store.transition(job, JobState.PREPARING)
        store.transition(oom, JobState.FAILED, "child killed", cause=Cause.OUT_OF_MEMORY.value)
        store.transition(data, JobState.FAILED, "child exited", cause=Cause.DATASET.value)
        store.transition(cancelled, JobState.CANCELLED, "cancelled by user before it started")
        store.transition(ok, JobState.RUNNING)
        store.transition(ok, JobState.SUCCEEDED)
        assert store.get(cancelled).cause == "cancelled" and store.get(ok).cause == ""
        assert [r.id for r in store.list(causes=["out_of_memory"])] == [oom]
        assert [r.id for r in store.list([JobState.FAILED], causes=["dataset", "out_of_memory"])] == [data, oom]
        assert end_tags(store.get(oom)) == {"visionyard.state": "FAILED", "visionyard.failure_cause": "out_of_memory"}
        assert end_tags(store.get(ok)) == {"visionyard.state": "SUCCEEDED"}
    finally:
        store.close()


def test_a_store_of_an_older_version_gets_the_cause_column(tmp_path):
    path = tmp_path / "state.db"
    JobStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE jobs DROP COLUMN cause")
    store = JobStore(path)
    try:
        job = store.create_job({"framework": "timm"}, "j", 1)
        assert store.transition(job.id, JobState.CANCELLED) and store.get(job.id).cause == "cancelled"
    finally:
        store.close()


class ListingClient:
    """Stands in for runner.client.Client in `visionyard list`: records the filter, returns jobs."""

    asked: dict = {}

    def __init__(self, **options):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def list(self, states=None, limit=0, causes=None):
        ListingClient.asked = {"states": states, "causes": causes}
        return [pb.Job(id="a1", name="big", state=pb.FAILED, cause=pb.CAUSE_OUT_OF_MEMORY, epoch=2, total_epochs=9)]


def test_list_filters_by_cause_and_shows_it(monkeypatch, capsys):
    monkeypatch.setattr(runner.cli.commands, "Client", ListingClient)
    assert main(["list", "--failed", "--cause", "out_of_memory", "--cause", "disk_full"]) == 0
    assert ListingClient.asked == {"states": [pb.FAILED], "causes": [pb.CAUSE_OUT_OF_MEMORY, pb.CAUSE_DISK_FULL]}
    assert "FAILED (out_of_memory)" in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    assert '"cause": "CAUSE_OUT_OF_MEMORY"' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["list", "--cause", "bad_luck"])
