"""`WatchJob` (and the calls around it) on the daemon's asyncio client server, through the public
client: what a watcher is sent, and what it is told when it asks wrongly. Real in-process daemons
(`tests/inprocess_daemon.py`); the jobs are fake adapters, no env built."""

from __future__ import annotations

import threading

import pytest

from protos import visionyard_pb2 as pb
from runner.client import Client, ClientError
from tests.helpers import states, wait_for
from tests.inprocess_daemon import fake_job, metric_steps


@pytest.mark.parametrize("job_id, code", [("no-such-job", "NOT_FOUND"), ("x" * 65, "INVALID_ARGUMENT"),
                                          ("bad\nid", "INVALID_ARGUMENT")])
def test_a_job_id_that_names_no_job_is_answered_with_a_code_and_the_id(serve, job_id, code):
    client = serve().client
    for call in (lambda: list(client.watch(job_id)), lambda: client.get(job_id), lambda: client.cancel(job_id)):
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.code.name == code and "visionyard list" in str(info.value)


def test_every_watcher_of_a_job_gets_every_event_once_in_order(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train hold", epochs=3))
    seen: dict[int, list[pb.JobEvent]] = {}

    def watch(i: int) -> None:
        seen[i] = list(daemon.client.watch(job.id, include_logs=True))

    watchers = [threading.Thread(target=watch, args=(i,)) for i in range(20)]
    for thread in watchers:
        thread.start()
    daemon.wait_state(job.id, pb.RUNNING)
    (daemon.job_dir(job.id) / "go-on").touch()
    for thread in watchers:
        thread.join(30)
    assert len(seen) == 20
    first = seen[0]
    assert states(first) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    assert [e.seq for e in first] == list(range(1, len(first) + 1))
    assert all(events == first for events in seen.values())


def test_logs_only_and_snapshot_watches(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train hold"))
    wait_for(lambda: metric_steps(daemon.client, job.id) == [1], timeout=15, interval=0.02)
    wait_for(lambda: "fake epoch 1/2" in [e.log.text for e in daemon.client.watch(job.id, logs_only=True, snapshot=True)],
             timeout=15, interval=0.02)  # its last line until `go-on`: tailed from its log file
    snapshot = list(daemon.client.watch(job.id, snapshot=True, include_logs=True))  # returns though it runs
    assert states(snapshot) == ["QUEUED", "PREPARING", "RUNNING"]
    logs = list(daemon.client.watch(job.id, logs_only=True, snapshot=True))
    assert logs and {e.WhichOneof("kind") for e in logs} == {"log"}
    assert [e for e in snapshot if e.WhichOneof("kind") == "log"] == logs
    (daemon.job_dir(job.id) / "go-on").touch()
    rest = list(daemon.client.watch(job.id, after_seq=snapshot[-1].seq))  # on from there, to the end
    assert states(rest) == ["SUCCEEDED"] and rest[0].seq > snapshot[-1].seq
    assert [e.metrics.step for e in rest if e.WhichOneof("kind") == "metrics"] == [2]


def test_a_watch_goes_on_across_a_daemon_restart(serve, data):
    first = serve()
    job = first.client.submit(fake_job(data, "train hold"))
    first.wait_state(job.id, pb.RUNNING)
    watched: list[pb.JobEvent] = []
    watcher = Client(address=f"unix://{first.home / 'daemon.sock'}")
    thread = threading.Thread(target=lambda: watched.extend(watcher.watch(job.id)))
    thread.start()
    wait_for(lambda: len(states(watched)) == 3, timeout=15, interval=0.02)
    first.stop()
    second = serve()
    (second.job_dir(job.id) / "go-on").touch()
    thread.join(30)
    watcher.close()
    assert watched == list(second.client.watch(job.id))  # every event but the logs: none missed, none twice
    assert states(watched) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    assert [e.metrics.step for e in watched if e.WhichOneof("kind") == "metrics"] == [1, 2]
