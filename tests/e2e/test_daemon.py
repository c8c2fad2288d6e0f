"""Daemon-level behaviour: health and reflection, tokens, FIFO slots, restarts without orphans.

Real daemons (`visionyard serve`), supervisors, signals and children; the children are
`tests/fake_adapter.py` behind the timm env's name (`fake_timm_envs`): what is tested here is the
daemon, which sees the same reports, processes and exits as from a timm child, without a torch
import and a training per job (real timm jobs run in test_timm_jobs.py and test_restarts.py).
"""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.payload.supervisor import alive, descendants
from tests.helpers import discard_daemon, fake_timm_envs, job_spec, pid_of, start_daemon, wait_for
from tests.fixtures import make_imagefolder

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=2, val_per_class=1, size=8)


@pytest.fixture(scope="module")
def fake_envs(tmp_path_factory):
    return fake_timm_envs(tmp_path_factory.mktemp("fake-envs"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, fake_envs):
    """A real daemon (subprocess) in a temp home whose timm jobs run the fake adapter."""
    proc = start_daemon(tmp_path_factory.mktemp("home"), fake_envs)
    yield proc
    discard_daemon(proc)


def long_job(dataset, name="long"):
    """A job that runs until it is cancelled: it reports its first epoch, then waits for a `go-on`
    that nobody writes."""
    return job_spec(dataset, name=f"{name} hold", training={"epochs": 2, "batch_size": 4, "device": "cpu"})


def test_health_and_reflection(daemon):
    channel = daemon.client.channel
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "visionyard.v1.Runner", "visionyard.v1.Reporter"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for reply in replies for s in reply.list_services_response.service}
    assert {"visionyard.v1.Runner", "visionyard.v1.Reporter", "grpc.health.v1.Health"} <= names


def test_reports_with_a_wrong_token_are_refused(daemon, dataset):
    job = daemon.client.submit(long_job(dataset, "token"))
    try:
        wait_for(lambda: daemon.client.get(job.id).state == pb.RUNNING, timeout=120)
        reporter = pb_grpc.ReporterStub(daemon.client.channel)
        forged = pb.ReportBatch(job_id=job.id, token="guess", batch_seq=10_000, items=[
            pb.ReportItem(metrics=pb.MetricsEvent(step=99, values={"val/accuracy": 1.0}))])
        with pytest.raises(grpc.RpcError) as info:
            reporter.Report(forged, timeout=5)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert daemon.client.get(job.id).epoch != 99
    finally:
        daemon.client.cancel(job.id)
        daemon.client.wait(job.id)


def test_fifo_with_one_slot_and_cancel_while_queued(daemon, dataset):
    first = daemon.client.submit(long_job(dataset, "first"))
    second = daemon.client.submit(long_job(dataset, "second"))
    try:
        wait_for(lambda: daemon.client.get(first.id).state == pb.RUNNING, timeout=120)
        time.sleep(1)
        assert daemon.client.get(second.id).state == pb.QUEUED
        daemon.client.cancel(second.id)
        assert daemon.client.get(second.id).state == pb.CANCELLED
    finally:
        daemon.client.cancel(first.id)
    assert daemon.client.wait(first.id).state == pb.CANCELLED
    events = list(daemon.client.watch(second.id))
    assert [pb.JobState.Name(e.status.state) for e in events if e.HasField("status")] == ["QUEUED", "CANCELLED"]


def test_two_slots_run_two_jobs_at_once(tmp_path, fake_envs, dataset):
    daemon = start_daemon(tmp_path / "home", fake_envs, ["--max-concurrent-jobs", "2"])
    try:
        jobs = [daemon.client.submit(long_job(dataset, f"par-{i}")) for i in range(2)]
        wait_for(lambda: all(daemon.client.get(j.id).state == pb.RUNNING for j in jobs), timeout=120)
        for job in jobs:
            daemon.client.cancel(job.id)
        assert all(daemon.client.wait(j.id).state == pb.CANCELLED for j in jobs)
    finally:
        discard_daemon(daemon)


def test_stopping_the_daemon_with_cancel_jobs_on_stop_stops_its_children(tmp_path, fake_envs, dataset):
    daemon = start_daemon(tmp_path / "home", fake_envs, ["--cancel-jobs-on-stop"])  # explicitly
    job = daemon.client.submit(long_job(dataset))
    wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=120)  # its child is up: it reported
    pid = pid_of(daemon, job.id)
    processes = descendants(pid)
    assert processes
    assert daemon.stop() == 0
    assert not [p for p in [pid, *processes] if alive(p)]


def test_a_killed_daemons_job_is_adopted_and_cancelled_without_orphans(tmp_path, fake_envs, dataset):
    home = tmp_path / "home"
    daemon = start_daemon(home, fake_envs)
    job = daemon.client.submit(long_job(dataset))
    wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=120)  # running, its child up: it reported
    pid = pid_of(daemon, job.id)
    os.killpg(daemon.proc.pid, signal.SIGKILL)  # the daemon dies hard; the job lives on
    daemon.proc.wait()
    processes = descendants(pid)
    assert processes
    daemon.client.close()
    restarted = start_daemon(home, fake_envs)
    try:
        assert restarted.client.get(job.id).state == pb.RUNNING
        restarted.client.cancel(job.id)
        assert restarted.client.wait(job.id).state == pb.CANCELLED
        assert wait_for(lambda: not [p for p in [pid, *processes] if alive(p)],
                        timeout=15)
    finally:
        discard_daemon(restarted)




def test_a_second_daemon_on_the_same_home_refuses_to_start(daemon):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "runner.cli", "serve", "--home", str(daemon.home)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "already serving" in done.stderr
    assert daemon.client.list() is not None  # the first one still answers


def test_a_queued_gpu_job_the_runner_can_no_longer_serve_fails_instead_of_blocking(tmp_path, fake_envs, dataset):
    home = tmp_path / "home"
    with_gpu = start_daemon(home, fake_envs, ["--gpus", "0"])
    try:
        blocker = with_gpu.client.submit(long_job(dataset, "blocker"))
        gpu_job = with_gpu.client.submit(job_spec(dataset, name="gpu", training={"epochs": 1, "device": "cuda:0"}))
        wait_for(lambda: with_gpu.client.get(blocker.id).state == pb.RUNNING, timeout=120)
    finally:
        with_gpu.stop()
    cpu_only = start_daemon(home, fake_envs)  # restarted without GPUs
    try:
        if cpu_only.client.get(blocker.id).state == pb.RUNNING:  # a stop past its time leaves it to be adopted
            cpu_only.client.cancel(blocker.id)
        cpu_job = cpu_only.client.submit(job_spec(dataset, name="after", training={"epochs": 1, "device": "cpu"}))
        assert cpu_only.client.wait(cpu_job.id).state == pb.SUCCEEDED
        failed = cpu_only.client.get(gpu_job.id)
        assert failed.state == pb.FAILED and "training.device" in failed.error and "has none" in failed.error
        assert failed.cause == pb.CAUSE_DEVICE
    finally:
        discard_daemon(cpu_only)


def test_hundreds_of_open_watch_streams_starve_nothing(daemon, dataset):
    """Watch streams hold no thread: with 400 open on a running job, GetJob, ListJobs, a child's
    reports and cancel still answer, and every stream sees the job end."""
    job = daemon.client.submit(long_job(dataset, "watched"))
    channel = grpc.insecure_channel(daemon.address)
    runner = pb_grpc.RunnerStub(channel)
    streams = [runner.WatchJob(pb.WatchJobRequest(job_id=job.id, include_logs=i % 2 == 0), timeout=300)
               for i in range(400)]
    try:
        wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=180)  # reports applied meanwhile
        for _ in range(20):
            assert runner.GetJob(pb.GetJobRequest(job_id=job.id), timeout=10).id == job.id
        assert job.id in [j.id for j in runner.ListJobs(pb.ListJobsRequest(), timeout=10).jobs]
    finally:
        daemon.client.cancel(job.id)
    assert daemon.client.wait(job.id).state == pb.CANCELLED
    for stream in streams:
        last = None
        for event in stream:
            last = event
        assert last.status.state == pb.CANCELLED
    channel.close()
