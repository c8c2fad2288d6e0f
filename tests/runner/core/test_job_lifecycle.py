"""A job's life through the real daemon (servers, servicers, scheduler, job execution, store,
supervisor, watch streams) with no env built: the child is `tests/fake_adapter.py`, which reports
through the real SDK. What a user sees through the client: states, metrics, checkpoints, errors,
cancels, and the concurrency limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from protos import visionyard_pb2 as pb
from runner.launch.procs import alive
from tests.fake_adapter import CRASH_MESSAGE, STOP_NOTE
from tests.helpers import states, wait_for
from tests.inprocess_daemon import (BROKEN_ENV, BROKEN_ENV_ERROR, SLOW_ENV, events, fake_job, gone, job_pids,
                                    status_messages)


def test_a_job_runs_to_success_and_a_watcher_sees_its_states_metrics_and_checkpoints(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train", epochs=2))
    assert job.state == pb.QUEUED
    watched = list(daemon.client.watch(job.id, include_logs=True))  # live, from submit to the end
    final = daemon.client.get(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert states(watched) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    assert [e.seq for e in watched] == list(range(1, len(watched) + 1))
    metrics = [e.metrics for e in watched if e.WhichOneof("kind") == "metrics"]
    assert [(m.step, round(m.values["val/accuracy"], 3)) for m in metrics] == [(1, 0.6), (2, 0.7)]
    checkpoints = [(e.checkpoint.kind, e.checkpoint.epoch) for e in watched if e.WhichOneof("kind") == "checkpoint"]
    assert checkpoints == [("best", 1), ("last", 1), ("best", 2), ("last", 2)]
    job_dir = daemon.job_dir(job.id)
    assert final.best_checkpoint == str(job_dir / "checkpoints" / "best.pt")
    assert Path(final.best_checkpoint).read_text() == "weights of epoch 2"
    assert final.exit_code == 0 and final.epoch == 2 and final.total_epochs == 2
    assert round(final.metrics["val/accuracy"], 3) == 0.7
    lines = [e.log.text for e in watched if e.WhichOneof("kind") == "log"]
    assert "fake epoch 2/2" in lines  # the child's output, tailed from its log file
    # what went to tracking: each epoch's metrics once, then the end with the log and the best checkpoint
    assert [step for step, _ in daemon.tracker.metrics[job.id]] == [1, 2]
    state, artifacts, _ = daemon.tracker.ended_run(job.id)
    assert state == "SUCCEEDED" and artifacts[:2] == [job_dir / "output.log", job_dir / "checkpoints" / "best.pt"]
    # a watcher that comes back later resumes after the last event it saw
    resumed = list(daemon.client.watch(job.id, after_seq=watched[-3].seq, include_logs=True))
    assert resumed == watched[-2:]


def test_a_run_that_stopped_early_succeeds_with_the_reason_as_its_message(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train stops", epochs=2))
    watched = list(daemon.client.watch(job.id))
    final = daemon.client.get(job.id)
    assert final.state == pb.SUCCEEDED and watched[-1].status.message == STOP_NOTE
    plain = daemon.client.submit(fake_job(data, "train", epochs=1))
    assert list(daemon.client.watch(plain.id))[-1].status.message == "finished"


def test_a_failing_child_fails_the_job_with_its_exit_code_its_error_and_its_log_tail(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train crash", epochs=1))
    watched = list(daemon.client.watch(job.id))
    final = daemon.client.get(job.id)
    assert states(watched) == ["QUEUED", "PREPARING", "RUNNING", "FAILED"]
    assert final.state == pb.FAILED and final.exit_code == 3 and final.cause == pb.CAUSE_TRAINING
    assert final.error.startswith(f"child exited with code 3: RuntimeError: {CRASH_MESSAGE}")
    tail = final.error.split("last log lines:\n", 1)[1]
    assert "fake epoch 1/1" in tail and tail.endswith(f"RuntimeError: {CRASH_MESSAGE}")
    assert watched[-1].status.message == f"child exited with code 3: RuntimeError: {CRASH_MESSAGE}"
    assert [e.metrics.step for e in watched if e.WhichOneof("kind") == "metrics"] == [1]  # what it did report
    assert daemon.tracker.ended_run(job.id)[0] == "FAILED"


def test_an_env_that_cannot_be_built_fails_the_job_before_anything_starts(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, f"train {BROKEN_ENV}"))
    final = daemon.wait_final(job.id)
    assert final.state == pb.FAILED and final.cause == pb.CAUSE_ENV_BUILD and not final.HasField("exit_code")
    assert final.error.startswith(f"environment 'timm' could not be built: {BROKEN_ENV_ERROR}\nlast log lines:\n")
    assert "No solution found when resolving dependencies" in final.error  # the build's output, from the job log
    assert states(events(daemon.client, job.id)) == ["QUEUED", "PREPARING", "FAILED"]
    assert not (daemon.job_dir(job.id) / "supervisor.json").exists()
    assert daemon.tracker.ended_run(job.id)[0] == "FAILED"


def test_a_job_cancelled_while_queued_never_starts(serve, data):
    daemon = serve(max_concurrent_jobs=1)
    first = daemon.client.submit(fake_job(data, "train hold"))
    daemon.wait_state(first.id, pb.RUNNING)
    queued = daemon.client.submit(fake_job(data, "train"))
    assert daemon.client.get(queued.id).state == pb.QUEUED  # the one slot is taken
    assert daemon.client.cancel(queued.id).state == pb.CANCELLED
    (daemon.job_dir(first.id) / "go-on").touch()
    assert daemon.wait_final(first.id).state == pb.SUCCEEDED
    assert status_messages(daemon.client, queued.id)[1:] == [("CANCELLED", "cancelled by user before it started")]
    assert daemon.client.get(queued.id).cause == pb.CAUSE_CANCELLED
    assert queued.id not in daemon.launcher.prepared and not daemon.job_dir(queued.id).exists()


def test_a_job_cancelled_while_preparing_stops_preparing_and_frees_its_slot(serve, data):
    daemon = serve(max_concurrent_jobs=1)
    job = daemon.client.submit(fake_job(data, f"train {SLOW_ENV}"))
    daemon.wait_state(job.id, pb.PREPARING)
    wait_for(lambda: job.id in daemon.launcher.prepared, timeout=15, interval=0.02)  # in its env build
    after = daemon.client.submit(fake_job(data, "train", epochs=1))
    daemon.client.cancel(job.id)
    final = daemon.wait_final(job.id)
    assert final.state == pb.CANCELLED and states(events(daemon.client, job.id)) == ["QUEUED", "PREPARING",
                                                                                    "CANCELLED"]
    assert not (daemon.job_dir(job.id) / "supervisor.json").exists()  # nothing was started
    assert daemon.wait_final(after.id).state == pb.SUCCEEDED  # the slot went to the next job


def test_a_job_cancelled_while_running_leaves_no_process_even_ones_that_tried_to_escape(serve, data):
    daemon = serve()
    job = daemon.client.submit(fake_job(data, "train hold spawn"))
    running = daemon.wait_state(job.id, pb.RUNNING)
    pids = job_pids(daemon.job_dir(job.id))  # the child, one in a session of its own, one orphaned
    supervisor = int(running.placement.split()[1])  # "pid N on HOST"
    assert all(alive(pid) for pid in [supervisor, *pids])
    daemon.client.cancel(job.id)
    final = daemon.wait_final(job.id)
    assert final.state == pb.CANCELLED and final.cause == pb.CAUSE_CANCELLED
    assert status_messages(daemon.client, job.id)[-1] == ("CANCELLED", "cancelled by user")
    assert gone([supervisor, *pids], timeout=5)
    log = (daemon.job_dir(job.id) / "output.log").read_text()
    assert "stopping the job: SIGTERM to 3 process(es)" in log  # the child and both that tried to escape
    assert "sending SIGKILL" not in log  # SIGTERM sufficed: nothing waited out the grace period


def test_no_more_jobs_run_at_once_than_the_limit(serve, data):
    daemon = serve(max_concurrent_jobs=2)
    jobs = [daemon.client.submit(fake_job(data, f"train hold {i}")).id for i in range(3)]
    for job_id in jobs[:2]:
        daemon.wait_state(job_id, pb.RUNNING)
    assert daemon.client.get(jobs[2]).state == pb.QUEUED
    (daemon.job_dir(jobs[0]) / "go-on").touch()
    daemon.wait_state(jobs[2], pb.RUNNING)  # started once a slot was free
    for job_id in jobs[1:]:
        (daemon.job_dir(job_id) / "go-on").touch()
    finals = [daemon.wait_final(job_id) for job_id in jobs]
    assert [f.state for f in finals] == [pb.SUCCEEDED] * 3
    # never three at once: the third started only after the first had ended
    assert finals[2].started_at >= finals[0].finished_at


@pytest.mark.parametrize("limit", [1, 2])
def test_queued_jobs_start_in_submission_order(serve, data, limit):
    daemon = serve(max_concurrent_jobs=limit)
    jobs = [daemon.client.submit(fake_job(data, "train", epochs=1)).id for _ in range(3)]
    finals = [daemon.wait_final(job_id) for job_id in jobs]
    assert [f.state for f in finals] == [pb.SUCCEEDED] * 3
    starts = [f.started_at for f in finals]
    assert starts == sorted(starts)
