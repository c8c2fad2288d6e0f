"""Real daemon, real timm env, real child processes: what a user sees through gRPC."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from PIL import Image

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.client import ClientError
from runner.payload.supervisor import alive, descendants
from tests.fixtures import make_dice, make_imagefolder, save_image
from tests.helpers import job_spec, pid_of, states, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=12, val_per_class=4)


@pytest.fixture(scope="module")
def finished_job(daemon, dataset):
    job = daemon.client.submit(job_spec(dataset))
    events = list(daemon.client.watch(job.id, include_logs=True))
    return daemon.client.get(job.id), events


def test_job_succeeds_with_metrics_and_checkpoints(finished_job):
    job, events = finished_job
    assert job.state == pb.SUCCEEDED, job.error
    assert states(events) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    epochs = [e.metrics for e in events if e.WhichOneof("kind") == "metrics"]
    assert [m.step for m in epochs] == [1, 2]
    for m in epochs:
        assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(m.values)
        assert "val/top5" not in m.values  # three classes only
    assert job.epoch == 2 and job.total_epochs == 2
    assert Path(job.best_checkpoint).is_file() and Path(job.last_checkpoint).is_file()
    assert Path(job.job_dir, "output.log").stat().st_size > 0
    assert any(e.WhichOneof("kind") == "log" for e in events)
    assert any(e.WhichOneof("kind") == "progress" for e in events)
    assert job.exit_code == 0 and job.device == "cpu"


def test_metrics_are_in_mlflow(daemon, finished_job):
    from mlflow.tracking import MlflowClient

    job, _ = finished_job
    run_id = wait_for(lambda: daemon.client.get(job.id).mlflow_run_id)
    client = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")  # after the daemon created the store
    run = wait_for(lambda: (r := client.get_run(run_id)).info.status == "FINISHED" and r, timeout=60)
    assert run.data.tags["framework"] == "timm" and run.data.tags["model"] == "resnet18"
    assert run.data.tags["visionyard.job_id"] == job.id
    assert run.data.params["training.epochs"] == "2"
    assert run.data.params["advanced.optimizer.type"] == "adamw"
    history = client.get_metric_history(run_id, "val/accuracy")
    assert sorted(m.step for m in history) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"output.log", "best.pt"} <= artifacts


def test_predict_returns_top_k(daemon, finished_job, tmp_path):
    job, _ = finished_job
    response = daemon.client.predict(job.id, save_image(tmp_path / "red.png", "red", size=40), top_k=2,
                                     annotate=True)
    predictions = response.predictions
    assert len(predictions) == 2
    assert {p.label for p in predictions} <= {"red", "green", "blue"}
    assert predictions[0].score >= predictions[1].score
    assert not predictions[0].HasField("box") and not predictions[0].polygon
    assert response.task == "image_classification" and (response.width, response.height) == (40, 40)
    assert {"preprocess", "inference", "postprocess", "total", "load"} <= set(response.timings_ms)
    assert response.image_png == b"" and response.mask_png == b""  # classification draws nothing


def predict_workers(daemon) -> list[int]:
    """The daemon's live predict worker processes."""
    found = []
    for pid in descendants(daemon.proc.pid):
        try:
            if b"--serve" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def test_the_second_predict_is_served_warm_by_the_same_worker(daemon, finished_job, tmp_path):
    job, _ = finished_job
    image = save_image(tmp_path / "green.png", "green", size=40)
    daemon.client.predict(job.id, image)
    (worker,) = predict_workers(daemon)
    started = time.monotonic()
    response = daemon.client.predict(job.id, image, top_k=1)
    assert time.monotonic() - started < 1.0  # no imports, no load: the model is in memory
    assert response.predictions[0].label in {"red", "green", "blue"}
    assert predict_workers(daemon) == [worker]
    (info,) = daemon.client.workers(job.id)
    assert info.pid == worker and info.state == "ready" and info.served >= 2


@pytest.mark.parametrize("how", ["cancel", "deadline"])
def test_a_predict_whose_client_gives_up_leaves_only_the_warm_worker(daemon, finished_job, tmp_path, how):
    job, _ = finished_job
    daemon.client.stop_workers(job.id)
    image = Path(save_image(tmp_path / "red.png", "red", size=40)).read_bytes()
    stub = pb_grpc.RunnerStub(daemon.client.channel)
    call = stub.Predict.future(pb.PredictRequest(job_id=job.id, image=image), timeout=None if how == "cancel" else 0.5)
    (worker,) = wait_for(lambda: predict_workers(daemon), timeout=20, interval=0.02)
    if how == "cancel":
        call.cancel()
    with pytest.raises((grpc.FutureCancelledError, grpc.RpcError)):
        call.result()
    assert daemon.client.predict(job.id, image).predictions  # the worker loads on and serves the next
    assert predict_workers(daemon) == [worker]
    assert daemon.client.stop_workers(job.id) == 1
    wait_for(lambda: not alive(worker), timeout=5, interval=0.02)


def test_an_image_over_the_pixel_limit_is_refused_at_once(daemon, finished_job):
    job, _ = finished_job
    huge = io.BytesIO()
    Image.new("1", (12000, 12000)).save(huge, "PNG")  # 17 KB; 144 megapixels
    started = time.monotonic()
    with pytest.raises(ClientError) as refused:
        daemon.client.predict(job.id, huge.getvalue())
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "12000×12000 (144.0 megapixels)" in str(refused.value) and "at most 40.0 megapixels" in str(refused.value)
    assert time.monotonic() - started < 1.0  # no child was started to find that out


def test_second_job_reuses_the_env(daemon, dataset, finished_job):
    first, _ = finished_job
    job = daemon.client.submit(job_spec(dataset, name="again", training={"epochs": 1, "batch_size": 8, "device": "cpu"}))
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert final.env_name == first.env_name
    logs = [e.log.text for e in daemon.client.watch(job.id, logs_only=True)]
    assert any(f"env {first.env_name} reused" in line for line in logs)
    assert [e.name for e in daemon.client.envs() if e.spec_name == "timm"] == [first.env_name]


def test_watch_resumes_from_a_sequence_number(daemon, finished_job):
    job, events = finished_job
    resumed = list(daemon.client.watch(job.id, after_seq=3, include_logs=True))
    assert [e.seq for e in resumed] == [e.seq for e in events[3:]]


def test_dice_dataset_trains(daemon, tmp_path):
    root = make_dice(tmp_path / "dice", per_class=8)
    job = daemon.client.submit(job_spec(root, name="dice", dataset={"path": str(root), "format": "dice"},
                                        training={"epochs": 1, "batch_size": 8, "device": "cpu"}))
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert "val/accuracy" in final.metrics


def test_cancel_stops_every_process_of_the_job(daemon, dataset):
    spec = job_spec(dataset, name="long", training={"epochs": 500, "batch_size": 4, "device": "cpu"})
    job = daemon.client.submit(spec)
    wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=180)
    pid = pid_of(daemon, job.id)  # the job's supervisor
    processes = descendants(pid)
    assert processes, "the child should be running"
    daemon.client.cancel(job.id)
    final = daemon.client.wait(job.id)
    assert final.state == pb.CANCELLED
    assert wait_for(lambda: not [p for p in [pid, *processes] if alive(p)], timeout=15)


def test_a_crashed_child_fails_with_the_log_tail(daemon, dataset):
    job = daemon.client.submit(job_spec(dataset, name="crash", training={"epochs": 500, "batch_size": 4, "device": "cpu"}))
    wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=180)
    os.kill(pid_of(daemon, job.id), signal.SIGKILL)
    final = daemon.client.wait(job.id)
    assert final.state == pb.FAILED
    assert "killed by signal SIGKILL" in final.error
    assert "last log lines" in final.error
    assert final.exit_code == -signal.SIGKILL and final.cause == pb.CAUSE_KILLED


def test_a_child_error_fails_with_its_message(daemon, dataset, tmp_path):
    weights = tmp_path / "garbage-weights.pt"
    weights.write_bytes(b"this is not a checkpoint")  # exists, so it passes submit; the child can't load it
    job = daemon.client.submit(job_spec(dataset, name="broken", weights=str(weights),
                                        training={"epochs": 1, "batch_size": 2, "device": "cpu"}))
    final = daemon.client.wait(job.id)
    assert final.state == pb.FAILED
    assert final.exit_code == 1 and final.cause == pb.CAUSE_TRAINING
    assert "Traceback" in final.error or "Error" in final.error, final.error


def test_an_unreadable_image_is_refused_at_submit_naming_it(daemon, tmp_path):
    root = make_imagefolder(tmp_path / "broken", per_class=3, val_per_class=1)
    (root / "val" / "red" / "red_0.png").write_bytes(b"this is not a png")
    with pytest.raises(ClientError) as info:
        daemon.client.submit(job_spec(root, name="broken"))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "val/red/red_0.png: cannot decode the image" in str(info.value)


@pytest.mark.parametrize("override, field", [
    ({"framework": "yolo"}, "framework"),
    ({"model": "not_a_model"}, "model"),
    ({"training": {"epochs": -1}}, "training.epochs"),
    ({"advanced": {"optimizer": {"flavour": "x"}}}, "advanced.optimizer.flavour"),
    ({"dataset": {"path": "/no/such/dir", "format": "imagefolder"}}, "dataset.path"),
    ({"training": {"device": "cuda"}}, "training.device"),
])
def test_bad_specs_are_rejected_with_the_field_named(daemon, dataset, override, field):
    before = len(daemon.client.list())
    with pytest.raises(ClientError) as info:
        daemon.client.submit(job_spec(dataset, **override))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{field}:" in str(info.value)
    assert len(daemon.client.list()) == before  # nothing stored, nothing started


def test_unknown_job_is_not_found(daemon):
    with pytest.raises(ClientError) as info:
        daemon.client.get("doesnotexist")
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_pretrained_offline_fails_fast_with_advice(daemon, dataset):
    job = daemon.client.submit(job_spec(dataset, name="pretrained", pretrained=True,
                                        training={"epochs": 1, "batch_size": 8, "device": "cpu"}))
    started = time.monotonic()
    final = daemon.client.wait(job.id)
    assert final.state == pb.FAILED
    assert "pretrained: false" in final.error and "weights" in final.error
    assert time.monotonic() - started < 40


ONNX_CHECK = """
import json, sys
import numpy as np, onnxruntime as ort
session = ort.InferenceSession(sys.argv[1])
batch = np.random.default_rng(0).random((3, 3, 32, 32), dtype=np.float32)
[out] = session.run(None, {"pixel_values": batch})
print(json.dumps({"inputs": [[i.name, i.shape] for i in session.get_inputs()], "shape": list(out.shape)}))
"""


def test_an_onnx_export_is_validated_tracked_and_predicts_through_its_own_worker(daemon, finished_job, dataset,
                                                                               tmp_path):
    import json
    import subprocess

    from mlflow.tracking import MlflowClient

    job, _ = finished_job
    image = save_image(tmp_path / "blue.png", "blue", size=40)
    with pytest.raises(ClientError) as none_yet:  # nothing exported yet: says how to export
        daemon.client.predict(job.id, image, runtime="onnx")
    assert none_yet.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"visionyard export {job.id} --format onnx" in str(none_yet.value)
    with pytest.raises(ClientError) as bad:
        daemon.client.export(job.id, format="tflite")
    assert bad.value.code == grpc.StatusCode.INVALID_ARGUMENT and "valid: onnx" in str(bad.value)

    reply = daemon.client.export(job.id, count=6)
    check = reply.validation
    assert check.passed and check.images == 6 and check.agreement_kind == "top-1" and check.agreement == 1.0
    assert check.max_abs_diff <= check.tolerance and check.pytorch_images_per_s > 0 and check.onnx_images_per_s > 0
    model = Path(reply.path)
    assert model == Path(job.job_dir) / "exports" / "onnx-best" / "model.onnx" and model.stat().st_size == reply.size_bytes
    assert list(reply.inputs) == ["pixel_values"] and list(reply.outputs) == ["logits"]
    assert json.loads(Path(reply.report).read_text())["validation"]["image_files"][0].startswith(str(dataset / "val"))

    # Plain onnxruntime in the job's env reads it: any batch size, the classes as outputs.
    python = Path(next(e.path for e in daemon.client.envs() if e.name == job.env_name)) / "bin" / "python"
    done = subprocess.run([str(python), "-c", ONNX_CHECK, str(model)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["inputs"] == [["pixel_values", ["batch", 3, 32, 32]]] and seen["shape"] == [3, 3]

    torch_answer = daemon.client.predict(job.id, image, top_k=3)
    onnx_answer = daemon.client.predict(job.id, image, top_k=3, runtime="onnx")
    assert [p.label for p in onnx_answer.predictions] == [p.label for p in torch_answer.predictions]
    for a, b in zip(onnx_answer.predictions, torch_answer.predictions, strict=True):
        assert abs(a.score - b.score) < 1e-4
    runtimes = {w.runtime: w.checkpoint for w in daemon.client.workers(job.id)}
    assert runtimes == {"pytorch": job.best_checkpoint, "onnx": str(model)}

    run_id = job.mlflow_run_id or daemon.client.get(job.id).mlflow_run_id
    mlflow = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")
    exported = wait_for(lambda: {a.path for a in mlflow.list_artifacts(run_id, "exports/onnx-best")}, timeout=60)
    assert exported == {"exports/onnx-best/model.onnx", "exports/onnx-best/export.json"}
    assert mlflow.get_run(run_id).data.metrics["export/onnx-best/agreement"] == 1.0
    daemon.client.stop_workers(job.id)


def test_eval_through_the_daemon_scores_the_best_checkpoint_as_its_training_validation_did(daemon, finished_job):
    """The real eval child in the job's env: the best checkpoint on the job's own validation split
    gives the accuracy and confusion matrix its training recorded for that epoch, and `results` shows
    both the training records and the evaluation."""
    job, _ = finished_job
    recorded = daemon.client.results(job.id).result
    reply = daemon.client.evaluate(job.id)
    assert reply.result.source == "eval" and reply.result.evaluator == recorded.evaluator == "visionyard.classification"
    assert reply.result.metrics["val/accuracy"] == pytest.approx(recorded.metrics["val/accuracy"])
    assert list(reply.result.confusion_matrix.counts) == list(recorded.confusion_matrix.counts)
    assert reply.images == sum(recorded.confusion_matrix.counts) and reply.dataset_hash.startswith("blake2b:")
    assert [e.name for e in daemon.client.evaluations(job.id)] == [reply.name]
