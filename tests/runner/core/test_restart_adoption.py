"""Jobs outlive the daemon: what a daemon that starts on a home decides about the jobs the last one
left active (adopt, judge from `exit.json`, prepare again), and the reports it applies from their
journals, once each. Real daemons in this process, one after the other on the same home; real
supervisors and children (`tests/fake_adapter.py`), no env built."""

from __future__ import annotations

import json
import os
import signal

import pytest

from adapters.reporter import read_journal
from protos import visionyard_pb2 as pb
from runner.core.reports import apply_journal
from runner.launch.procs import alive
from tests.fake_adapter import CRASH_MESSAGE
from tests.helpers import states, wait_for
from tests.inprocess_daemon import (DIES_AT_LAUNCH, SLOW_ENV, events, fake_job, gone, job_pids, metric_steps,
                                    status_messages)


def running_after_its_first_epoch(daemon, data, name: str = "train hold") -> tuple[str, int]:
    """A job that reported its first epoch and waits for `go-on`; its id and its supervisor's pid."""
    job = daemon.client.submit(fake_job(data, name))
    running = daemon.wait_state(job.id, pb.RUNNING)
    wait_for(lambda: metric_steps(daemon.client, job.id) == [1], timeout=15, interval=0.02)
    return job.id, int(running.placement.split()[1])  # "pid N on HOST"


def test_a_job_still_running_at_a_restart_is_adopted_and_finishes_under_the_new_daemon(serve, data):
    first = serve()
    job_id, supervisor = running_after_its_first_epoch(first, data)
    first.stop()
    assert alive(supervisor)  # the job went on without a daemon
    second = serve()
    assert second.client.get(job_id).state == pb.RUNNING
    (second.job_dir(job_id) / "go-on").touch()
    final = second.wait_final(job_id)
    assert final.state == pb.SUCCEEDED, final.error
    assert states(events(second.client, job_id)) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    assert metric_steps(second.client, job_id) == [1, 2]
    logs = [e.log.text for e in events(second.client, job_id, include_logs=True) if e.WhichOneof("kind") == "log"]
    assert "[visionyard] the daemon restarted; the job went on and is watched again" in logs
    assert logs.count("fake epoch 1/2") == 1 and logs.count("fake epoch 2/2") == 1  # the log tailed on, not again
    assert second.tracker.ended_run(job_id)[0] == "SUCCEEDED"


def test_reports_made_while_the_daemon_was_down_are_applied_once_from_the_journal(serve, data):
    first = serve()
    job_id, supervisor = running_after_its_first_epoch(first, data)
    first.stop()
    job_dir = first.job_dir(job_id)
    (job_dir / "go-on").touch()  # epoch 2 and the result are reported to nobody: the journal keeps them
    assert gone([supervisor])
    journaled = [item.metrics.step for batch in read_journal(job_dir / "reports.journal") for item in batch.items
                 if item.WhichOneof("kind") == "metrics"]
    assert journaled == [1, 2]  # epoch 1's batch is there too: the store has it already
    second = serve()
    final = second.wait_final(job_id)
    assert final.state == pb.SUCCEEDED and final.exit_code == 0, final.error  # judged from exit.json + journal
    assert metric_steps(second.client, job_id) == [1, 2]  # each once
    assert round(final.metrics["val/accuracy"], 3) == 0.7 and final.epoch == 2
    assert (job_dir / "checkpoints" / "best.pt").read_text() == "weights of epoch 2"
    assert [step for step, _ in second.tracker.metrics[job_id]] == [2]  # the one MLflow had not heard of
    assert apply_journal(second.daemon.runtime, job_id, job_dir) == 0  # applying it again changes nothing
    assert metric_steps(second.client, job_id) == [1, 2]


@pytest.mark.parametrize("how", ["crashed", "cancelled", "killed"])
def test_a_job_that_ended_while_the_daemon_was_down_is_judged_by_its_exit_record(serve, data, how):
    """crashed: the command exited with code 3; cancelled: someone sent its supervisor SIGTERM
    (exit.json says cancelled); killed: its supervisor got SIGKILL (no exit.json at all)."""
    first = serve()
    job_id, supervisor = running_after_its_first_epoch(first, data, "train hold crash")
    first.stop()
    job_dir = first.job_dir(job_id)
    if how == "crashed":
        (job_dir / "go-on").touch()
    else:
        os.kill(supervisor, signal.SIGTERM if how == "cancelled" else signal.SIGKILL)
    assert gone([supervisor])
    second = serve()
    final = second.wait_final(job_id)
    message = status_messages(second.client, job_id)[-1][1]
    if how == "crashed":
        assert final.state == pb.FAILED and final.exit_code == 3 and final.cause == pb.CAUSE_TRAINING
        assert message == f"child exited with code 3: RuntimeError: {CRASH_MESSAGE}"  # its error, from the journal
        assert final.error.endswith(f"RuntimeError: {CRASH_MESSAGE}")  # the log's tail
    elif how == "cancelled":
        assert final.state == pb.CANCELLED and final.cause == pb.CAUSE_CANCELLED
        assert message == "cancelled while the daemon was down"
    else:
        assert final.state == pb.FAILED and not final.HasField("exit_code") and final.cause == pb.CAUSE_LOST
        assert message == "child ended while the daemon was down and left no exit record"
    assert metric_steps(second.client, job_id) == ([1, 2] if how == "crashed" else [1])


def test_a_job_left_preparing_is_prepared_again_from_the_start(serve, data):
    first = serve()
    job = first.client.submit(fake_job(data, f"train {SLOW_ENV}"))
    first.wait_state(job.id, pb.PREPARING)
    wait_for(lambda: job.id in first.launcher.prepared, timeout=15, interval=0.02)  # in its env build
    first.stop()  # the build stops; the job stays PREPARING for the next daemon
    second = serve()
    second.release_envs()
    final = second.wait_final(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert second.launcher.prepared == [job.id]  # prepared again, by the new daemon
    assert status_messages(second.client, job.id)[2] == (
        "QUEUED", "the daemon restarted while the job was preparing; preparing it again")
    assert states(events(second.client, job.id)) == ["QUEUED", "PREPARING", "QUEUED", "PREPARING", "RUNNING",
                                                     "SUCCEEDED"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the "death" at launch
@pytest.mark.parametrize("meanwhile", ["still running", "ended"])
def test_a_job_left_preparing_whose_supervisor_had_started_is_running(serve, data, meanwhile):
    """The daemon died between starting the job's supervisor and recording RUNNING."""
    first = serve()
    job = first.client.submit(fake_job(data, f"train hold {DIES_AT_LAUNCH}"))
    job_dir = first.job_dir(job.id)
    wait_for(lambda: (job_dir / "supervisor.json").exists(), timeout=15, interval=0.02)
    assert first.client.get(job.id).state == pb.PREPARING
    first.stop()
    if meanwhile == "ended":
        (job_dir / "go-on").touch()
        assert gone([json.loads((job_dir / "supervisor.json").read_text())["supervisor_pid"]])
        assert (job_dir / "exit.json").exists()
    second = serve()
    assert status_messages(second.client, job.id)[2] == ("RUNNING", "its command had started before the daemon "
                                                                    "stopped")
    assert job.id not in second.launcher.prepared  # not prepared (nor started) a second time
    (job_dir / "go-on").touch()
    final = second.wait_final(job.id)
    assert final.state == pb.SUCCEEDED and final.exit_code == 0, final.error
    assert metric_steps(second.client, job.id) == [1, 2]


def test_a_daemon_told_to_cancel_jobs_on_stop_leaves_none_running(serve, data):
    first = serve(cancel_jobs_on_stop=True)
    job_id, supervisor = running_after_its_first_epoch(first, data, "train hold spawn")
    pids = job_pids(first.job_dir(job_id))
    first.stop()
    assert gone([supervisor, *pids], timeout=5)
    second = serve()
    final = second.client.get(job_id)
    assert final.state == pb.CANCELLED and final.cause == pb.CAUSE_CANCELLED
    assert status_messages(second.client, job_id)[-1] == ("CANCELLED", "the daemon shut down")
