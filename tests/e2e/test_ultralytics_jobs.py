"""Real daemon, real Ultralytics env: a YOLO job as a user submits, watches and predicts with it."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.client import ClientError
from tests.helpers import start_daemon
from tests.dataset_fixtures import add_edge_labels, make_yolo_task

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, ultralytics_env):
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Drawn parts, and in one label file what export tools write: boxes at each edge rounded 5e-06 past
    it, an exact duplicate and a zero-area box."""
    return add_edge_labels(make_yolo_task(tmp_path_factory.mktemp("data") / "parts", "object_detection"),
                           "object_detection")


def job_spec(data: Path, **over) -> dict:
    spec = {"name": "parts", "framework": "ultralytics", "task": "object_detection", "model": "yolov8n",
            "pretrained": False, "image_size": 64, "dataset": {"path": str(data), "format": "yolo"},
            "training": {"epochs": 2, "batch_size": 4, "learning_rate": 0.01, "device": "cpu"},
            "preset": "standard", "advanced": {"optimizer": {"type": "SGD"}, "augmentation": {"mosaic": 1.0}}}
    spec.update(over)
    return spec


@pytest.fixture(scope="module")
def finished_job(daemon, dataset):
    job = daemon.client.submit(job_spec(dataset))
    events = list(daemon.client.watch(job.id))
    return daemon.client.get(job.id), events


def test_a_yolo_job_trains_with_the_shared_metric_names(finished_job, dataset):
    job, events = finished_job
    assert job.state == pb.SUCCEEDED, job.error
    epochs = [e.metrics for e in events if e.WhichOneof("kind") == "metrics"]
    assert [m.step for m in epochs] == [1, 2]
    for m in epochs:
        assert {"train/box_loss", "train/cls_loss", "train/dfl_loss", "train/loss", "val/precision", "val/recall",
                "val/mAP50", "val/mAP50-95", "lr"} <= set(m.values)
    assert {"val/mAP50-95", "train/loss"} <= set(job.metrics)
    progress = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
    assert progress and progress[-1].epoch == 2 and progress[-1].total_epochs == 2
    assert Path(job.best_checkpoint).name == "best.pt" and Path(job.last_checkpoint).is_file()
    assert Path(job.last_checkpoint).is_relative_to(job.job_dir)
    assert not any(dataset.rglob("*.cache"))  # the user's dataset is only read


def test_labels_rounded_past_the_edge_train_clipped_and_the_log_says_so(finished_job, dataset):
    job, _ = finished_job
    log = (Path(job.job_dir) / "output.log").read_text()
    assert "dataset: " in log and "4 boxes clipped to the image by ≤ 0.0005% of the image side" in log
    assert "zero-area box [0.5, 0.4, 0.5, 0.6] (no width or height on the image); dropped" in log
    assert "duplicate of line 3 (same class and coordinates); dropped" in log
    assert "ignoring corrupt" not in log and "duplicate labels removed" not in log  # Ultralytics kept every label
    staged = Path(job.job_dir) / "data" / "labels" / "train" / "0.txt"
    rows = [[float(v) for v in line.split()] for line in staged.read_text().splitlines()]
    assert len(rows) == 6 and all(0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
                                  for _, cx, cy, w, h in rows)


def test_predict_returns_boxes_and_an_annotated_image(daemon, finished_job, dataset):
    job, _ = finished_job
    response = daemon.client.predict(job.id, dataset / "images" / "val" / "0.png", annotate=True)
    assert response.task == "object_detection" and (response.width, response.height) == (64, 64)
    assert response.image_png.startswith(b"\x89PNG")
    assert all(p.HasField("box") and p.label in ("red", "blue") for p in response.predictions)
    assert {"inference", "total"} <= set(response.timings_ms)


def test_a_wrong_label_file_is_refused_at_submit_naming_it(daemon, tmp_path):
    data = make_yolo_task(tmp_path / "bad", "object_detection", train=2, val=1)
    bad = data / "labels" / "train" / "1.txt"
    bad.write_text("0 0.5 0.5 0.2 0.2 0.1\n")
    before = len(daemon.client.list())
    with pytest.raises(ClientError) as info:
        daemon.client.submit(job_spec(data))
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{bad}:line 1: 6 columns; detection needs 5" in str(info.value)
    assert len(daemon.client.list()) == before
