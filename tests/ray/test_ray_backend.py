"""`visionyard serve --backend ray` against a real local head: the same specs, watch, metrics,
checkpoints and MLflow runs as locally; cancel, restart adoption, admission and a lost head."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.launch.ray.api import RayJobsClient
from tests.fixtures import make_imagefolder
from tests.helpers import free_port, job_spec, kill_daemon, self_signed, start_daemon, states, wait_for
from tests.repo_fixtures import toy_repo, toy_spec

pytestmark = pytest.mark.slow
RAY_FINAL = ("SUCCEEDED", "FAILED", "STOPPED")  # Ray's terminal job statuses


def ray_args(address: str, port: int, node_home: Path | None = None) -> list[str]:
    """A daemon on the head; `node_home`: what the node keeps, apart from the daemon's home (the
    node shares nothing with the daemon), else the nodes see the daemon's home."""
    placement = ["--ray-node-home", str(node_home)] if node_home else ["--ray-shared-home"]
    return ["--backend", "ray", "--ray-address", address, "--listen", f"127.0.0.1:{port}", "--ray-lost-after", "5",
            *placement]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=6, val_per_class=2)


@pytest.fixture(scope="module")
def ray_daemon(tmp_path_factory, shared_envs, timm_env, ray_head):
    """A daemon whose jobs run on the session's head; its listener (where children report) is TLS.
    The node's home is a folder of its own: nothing of the daemon's home is seen there."""
    home = tmp_path_factory.mktemp("rayhome")
    node_home = tmp_path_factory.mktemp("rayhome-node")
    cert, key = self_signed(tmp_path_factory.mktemp("tls"), "localhost")
    args = [*ray_args(ray_head, free_port(), node_home), "--tls-cert", str(cert), "--tls-key", str(key)]
    proc = start_daemon(home, shared_envs, args)
    proc.ray_args, proc.node_home = args, node_home
    url, sha = toy_repo(tmp_path_factory.mktemp("toy") / "toy")
    spec = home.parent / "toy.yaml"
    spec.write_text(toy_spec(f"file://{url}", sha))
    proc.client.add_repo(spec)
    yield proc
    proc.stop()


def toy_job(data: Path, epochs: int = 3, epoch_seconds: float = 0.0, device: str = "cpu", hold_file: str = "") -> dict:
    """The toy repo's job; with `hold_file` it waits after its first epoch until that file exists."""
    return {"name": "toy-on-ray", "framework": "custom", "repo": "toyrepo", "model": "anything",
            "task": "image_classification", "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": 2, "device": device},
            "advanced": {"epoch_seconds": epoch_seconds, "hold_file": hold_file}}


def described(client, job_id: str):
    """What a failed wait reports: the job's state, epoch, message and the end of its log."""
    def why() -> str:
        job = client.get(job_id)
        tail = "\n  ".join(logs(client, job_id)[-25:])
        return f"job {job_id} {pb.JobState.Name(job.state)} epoch {job.epoch} ({job.error or job.placement})\n  {tail}"
    return why


def reached_epoch(client, job_id: str, epoch: int = 1, timeout: float = 120) -> pb.Job:
    """The job once it reported `epoch`; a job that ends before that fails the test at once."""
    final = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)
    wait_for(lambda: (j := client.get(job_id)).epoch >= epoch or j.state in final, timeout=timeout, interval=0.2,
             why=described(client, job_id))
    job = client.get(job_id)
    assert job.epoch >= epoch and job.state not in final, described(client, job_id)()
    return job


def finished(client, job_id: str, timeout: float) -> pb.Job:
    final = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)
    return wait_for(lambda: (job := client.get(job_id)).state in final and job, timeout=timeout, interval=0.5,
                    why=described(client, job_id))


def accuracy_steps(client, job_id) -> Counter:
    return Counter(e.metrics.step for e in client.watch(job_id)
                   if e.WhichOneof("kind") == "metrics" and "val/accuracy" in e.metrics.values)


def logs(client, job_id) -> list[str]:
    """The job's log lines so far."""
    return [e.log.text for e in client.watch(job_id, logs_only=True, snapshot=True)]


def processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def test_a_timm_job_trains_on_the_cluster_with_its_metrics_checkpoints_and_mlflow_run(ray_daemon, ray_head, data):
    from mlflow.tracking import MlflowClient

    client = ray_daemon.client
    job = client.submit(job_spec(data, name="timm-on-ray", training={"epochs": 2, "batch_size": 4, "device": "cpu"}))
    final = finished(client, job.id, 600)
    assert final.state == pb.SUCCEEDED, final.error
    events = list(client.watch(job.id, include_logs=True))
    assert states(events) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    running = [e.status.message for e in events if e.WhichOneof("kind") == "status" and e.status.state == pb.RUNNING]
    assert running[0].startswith(f"Ray submission {job.id} at {ray_head}")
    assert final.placement.startswith(f"Ray submission {job.id} on node ")  # what `status` shows
    texts = [e.log.text for e in events if e.WhichOneof("kind") == "log"]
    assert any(t.startswith(f"[visionyard] Ray runs submission {job.id} on node ") for t in texts)
    assert any("epoch" in t.lower() for t in texts)  # the child's output, through Ray's log stream
    # the child reported over TLS with its token: every epoch's metrics once, a result, checkpoints
    steps = Counter(e.metrics.step for e in events if e.WhichOneof("kind") == "metrics")
    assert steps == {1: 1, 2: 1} and "val/accuracy" in final.metrics
    # the checkpoints the child wrote on the node came back into the daemon's job dir
    assert Path(final.best_checkpoint).is_file() and Path(final.last_checkpoint).is_file()
    assert Path(final.best_checkpoint).is_relative_to(final.job_dir)
    assert (ray_daemon.node_home / "jobs" / job.id / "checkpoints").is_dir()
    assert any(t.startswith("[visionyard] env timm-") and f"on this node at {ray_daemon.node_home}/envs/" in t
               for t in texts)
    # the command ran the env where it is (not through the job dir's link): the node's bytecode of
    # torch and timm is kept per source path, and serves the node's next jobs
    pycache = ray_daemon.node_home / "pycache"
    assert (pycache / str(ray_daemon.node_home / "envs").lstrip("/")).is_dir()
    assert not (pycache / str(ray_daemon.node_home / "jobs").lstrip("/")).exists()
    output = (Path(final.job_dir) / "output.log").read_text()
    assert "report batch" not in output and "not delivered" not in output  # live, not from the journal
    # ours ends on the exit record the node uploads; Ray's own status follows once its driver is reaped
    ray_job = wait_for(lambda: (j := RayJobsClient(ray_head).job(job.id)).status in RAY_FINAL and j, timeout=60,
                       interval=0.5)
    assert ray_job.status == "SUCCEEDED" and ray_job.metadata["visionyard_job_id"] == job.id
    run_id = wait_for(lambda: client.get(job.id).mlflow_run_id, timeout=60)
    mlflow = MlflowClient(f"sqlite:///{ray_daemon.home / 'mlflow.db'}")
    run = wait_for(lambda: (r := mlflow.get_run(run_id)).info.status == "FINISHED" and r, timeout=60)
    assert [m.step for m in mlflow.get_metric_history(run.info.run_id, "val/accuracy")] == [1, 2]
    assert any(a.path.endswith(".pt") or a.is_dir for a in mlflow.list_artifacts(run.info.run_id))
    # its checkpoint predicts here, with the framework's env of this machine (the node built its own)
    image = next((data / "val").rglob("*.png"))
    assert client.predict(job.id, image, top_k=2).predictions[0].label
    # a job resuming from that checkpoint takes it along: the node's copy of the first job is gone
    shutil.rmtree(ray_daemon.node_home / "jobs" / job.id)
    resumed = client.submit(job_spec(data, name="resumed-on-ray", resume=final.last_checkpoint,
                                     training={"epochs": 3, "batch_size": 4, "device": "cpu"}))
    again = finished(client, resumed.id, 600)
    assert again.state == pb.SUCCEEDED, again.error
    assert Counter(e.metrics.step for e in client.watch(resumed.id) if e.WhichOneof("kind") == "metrics") == {3: 1}


def test_a_custom_repo_job_is_parsed_from_the_ray_log(ray_daemon, data):
    client = ray_daemon.client
    job = client.submit(toy_job(data, epochs=3))
    final = finished(client, job.id, 300)
    assert final.state == pb.SUCCEEDED, final.error
    history = {(e.metrics.step, round(e.metrics.values["val/accuracy"], 3)) for e in client.watch(job.id)
               if e.WhichOneof("kind") == "metrics" and "val/accuracy" in e.metrics.values}
    assert history == {(1, 0.5), (2, 0.6), (3, 0.7)}
    assert final.epoch == 3 and final.last_checkpoint.endswith("model_3.bin")
    lines = logs(client, job.id)
    assert lines.count("toy trainer: 3 classes, 3 epochs") == 1  # each line once, from Ray's stream
    # the repo's env was built by the node, in the node's home; its outputs came back to the daemon
    built = [t for t in lines if t.startswith("[visionyard] env repo-toyrepo-") and "on this node at" in t]
    assert built and f"{ray_daemon.node_home}/envs/repo-toyrepo-" in built[0]
    assert Path(final.last_checkpoint).is_file() and Path(final.last_checkpoint).is_relative_to(final.job_dir)
    assert (ray_daemon.node_home / "jobs" / job.id / "output").is_dir()  # where it ran


def test_cancel_stops_the_ray_job_and_leaves_nothing_on_the_node(ray_daemon, ray_head, data):
    client = ray_daemon.client
    job = client.submit(toy_job(data, epochs=50, epoch_seconds=2.0))
    reached_epoch(client, job.id)
    job_dir = str(ray_daemon.node_home / "jobs" / job.id)  # where it runs on the node
    assert processes_mentioning(job_dir)  # its supervisor and the trainer
    _only_the_jobs_token_fetches_and_uploads(client, ray_head, job.id, job_dir)
    client.cancel(job.id)
    final = finished(client, job.id, 120)
    assert final.state == pb.CANCELLED
    assert RayJobsClient(ray_head).job(job.id).status == "STOPPED"
    assert processes_mentioning(job_dir) == []


def _only_the_jobs_token_fetches_and_uploads(client, ray_head: str, job_id: str, node_job_dir: str) -> None:
    reporter = pb_grpc.ReporterStub(client.channel)
    for call in (lambda token: list(reporter.Fetch(pb.FetchRequest(job_id=job_id, token=token, what="plan"),
                                                   timeout=10)),
                 lambda token: reporter.Upload(iter([pb.FileChunk(job_id=job_id, token=token, path="x", data=b"1",
                                                                  last=True)]), timeout=10)):
        with pytest.raises(grpc.RpcError) as info:
            call("guess")
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    token = RayJobsClient(ray_head)._json("GET", f"/api/jobs/{job_id}")["runtime_env"]["env_vars"][
        "VISIONYARD_JOB_TOKEN"]  # the job's own (Ray shows it to whoever reaches the dashboard)
    plan = json.loads(b"".join(c.data for c in reporter.Fetch(pb.FetchRequest(job_id=job_id, token=token,
                                                                              what="plan"), timeout=10)))
    assert plan["job_dir"] == node_job_dir
    with pytest.raises(grpc.RpcError) as info:
        reporter.Upload(iter([pb.FileChunk(job_id=job_id, token=token, path="../../escape", data=b"1", last=True)]),
                        timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_with_a_shared_home_the_daemon_builds_and_the_node_runs_in_place(tmp_path, shared_envs, ray_head, data):
    daemon = start_daemon(tmp_path / "home", shared_envs, ray_args(ray_head, free_port()))  # loopback: plain TCP
    try:
        url, sha = toy_repo(tmp_path / "toy")
        (tmp_path / "toy.yaml").write_text(toy_spec(f"file://{url}", sha))
        daemon.client.add_repo(tmp_path / "toy.yaml")
        job = daemon.client.submit(toy_job(data, epochs=1))
        final = finished(daemon.client, job.id, 300)
        assert final.state == pb.SUCCEEDED, final.error
        lines = logs(daemon.client, job.id)
        assert any(t.startswith("[visionyard] env repo-toyrepo-") and f" at {tmp_path}/home/envs/" in t for t in lines)
        assert not any("on this node" in t for t in lines)
        assert (Path(final.job_dir) / "exit.json").is_file()  # the supervisor wrote it there itself
    finally:
        daemon.stop()


def test_a_gpu_job_waits_in_our_queue_and_is_cancelled_there(ray_daemon, data):
    client = ray_daemon.client
    gpu_job = client.submit(toy_job(data, device="cuda"))
    cpu_job = client.submit(toy_job(data, epochs=1))
    wait_for(lambda: any("queued: waiting for 1 GPU (0 of 0 free) on the Ray cluster" in t
                         for t in logs(client, gpu_job.id)), timeout=60)
    assert client.get(gpu_job.id).state == pb.QUEUED
    assert client.get(cpu_job.id).state == pb.QUEUED  # first in, first out: it waits behind the GPU job
    client.cancel(gpu_job.id)
    assert finished(client, gpu_job.id, 30).state == pb.CANCELLED
    assert finished(client, cpu_job.id, 300).state == pb.SUCCEEDED


def test_a_daemon_killed_while_a_ray_job_runs_adopts_it(ray_daemon, ray_head, data, shared_envs, tmp_path):
    daemon = ray_daemon
    hold = tmp_path / "go-on"  # the job waits after its first epoch until this exists: it outlasts the restart
    job = daemon.client.submit(toy_job(data, epochs=4, hold_file=str(hold)))
    reached_epoch(daemon.client, job.id)
    kill_daemon(daemon)
    daemon = start_daemon(daemon.home, shared_envs, ray_daemon.ray_args)
    try:
        assert daemon.client.get(job.id).state == pb.RUNNING
        hold.touch()
        final = finished(daemon.client, job.id, 300)
        assert final.state == pb.SUCCEEDED, final.error
        assert accuracy_steps(daemon.client, job.id) == {1: 1, 2: 1, 3: 1, 4: 1}
        assert logs(daemon.client, job.id).count("toy trainer: 3 classes, 4 epochs") == 1
    finally:
        ray_daemon.proc, ray_daemon.client, ray_daemon._log = daemon.proc, daemon.client, daemon._log


def test_a_stopped_head_fails_its_job_clearly(ray_daemon, ray_cluster, data):
    client = ray_daemon.client
    job = client.submit(toy_job(data, epochs=50, epoch_seconds=2.0))
    reached_epoch(client, job.id)
    job_dir = str(ray_daemon.node_home / "jobs" / job.id)
    assert processes_mentioning(job_dir)
    ray_cluster.stop()
    try:
        final = finished(client, job.id, 180)
        assert final.state == pb.FAILED
        assert "was lost" in final.error and any(why in final.error for why in (
            "can't be reached", "no longer knows", "Ray ended the process"))
        assert final.cause == pb.CAUSE_LOST
        # the node's processes end once the head is gone; on a loaded box that can lag the job's end
        wait_for(lambda: processes_mentioning(job_dir) == [], timeout=30, interval=0.5,
                 why=lambda: "still running:\n" + subprocess.run(
                     ["ps", "-o", "pid,ppid,pgid,sid,stat,etimes,args", "-p",
                      ",".join(map(str, processes_mentioning(job_dir))) or "1"],
                     capture_output=True, text=True).stdout)
    finally:
        ray_cluster.start()
