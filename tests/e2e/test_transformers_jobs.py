"""Real daemon, real Transformers env: a job with a local tiny model, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from protos import visionyard_pb2 as pb
from tests.helpers import start_daemon
from tests.dataset_fixtures import make_yolo_task
from tests.fixtures import make_imagefolder, save_image
from tests.hf_models import DETECTION_MODELS

pytestmark = pytest.mark.e2e

VIT = """
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_labels=2)
ViTForImageClassification(cfg).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(sys.argv[1])
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, transformers_env):
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tiny_vit(transformers_env, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models") / "tiny-vit"
    subprocess.run([str(transformers_env.python), "-c", textwrap.dedent(VIT), str(folder)], check=True,
                   capture_output=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return folder


def test_a_vit_job_trains_and_predicts_through_the_daemon(daemon, tiny_vit, tmp_path):
    data = make_imagefolder(tmp_path / "colours", per_class=8, val_per_class=3)
    job = daemon.client.submit({"name": "vit", "framework": "transformers", "task": "image_classification",
                                "model": str(tiny_vit), "pretrained": True, "image_size": 32,
                                "dataset": {"path": str(data), "format": "imagefolder"}, "preset": "standard",
                                "training": {"epochs": 2, "batch_size": 8, "learning_rate": 0.001, "device": "cpu"}})
    events = list(daemon.client.watch(job.id))
    final = daemon.client.get(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    epochs = [e.metrics for e in events if e.WhichOneof("kind") == "metrics"]
    assert [m.step for m in epochs] == [1, 2]
    assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(epochs[-1].values)
    assert Path(final.last_checkpoint, "config.json").is_file()  # a save_pretrained folder
    response = daemon.client.predict(job.id, save_image(tmp_path / "red.png", "red", size=32), top_k=2)
    assert response.task == "image_classification" and len(response.predictions) == 2


def test_the_best_checkpoint_folder_reaches_mlflow_without_training_state(daemon):
    from mlflow.tracking import MlflowClient

    from tests.helpers import wait_for

    [job] = [j for j in daemon.client.list() if j.name == "vit"]
    run_id = wait_for(lambda: daemon.client.get(job.id).mlflow_run_id)
    client = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")  # after the daemon created the store
    run = wait_for(lambda: (r := client.get_run(run_id)).info.status == "FINISHED" and r, timeout=60)
    folder = Path(job.best_checkpoint).name
    files = {a.path for a in client.list_artifacts(run.info.run_id, folder)}
    assert f"{folder}/config.json" in files and f"{folder}/model.safetensors" in files
    assert not any("optimizer" in f or "scheduler" in f for f in files)


def test_a_dfine_job_on_coco_reports_map_and_predicts_boxes(daemon, transformers_env, tmp_path):
    models = tmp_path / "models"
    subprocess.run([str(transformers_env.python), "-c", textwrap.dedent(DETECTION_MODELS), str(models)], check=True,
                   capture_output=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    from adapters.datasets import convert_dataset

    drawn = make_yolo_task(tmp_path / "drawn", "object_detection", train=4, val=2)  # coloured boxes, not blank
    data = tmp_path / "parts"
    convert_dataset(drawn, "yolo", "coco", "object_detection", data)
    # as real exports have them: a box half a pixel short of past the width (x + w = 64.4), an exact duplicate
    train = data / "annotations" / "instances_train.json"
    doc = json.loads(train.read_text())
    first = doc["annotations"][0]
    first["bbox"] = [64 - first["bbox"][2] + 0.4, *first["bbox"][1:]]
    doc["annotations"].append({**first, "id": len(doc["annotations"]) + 1})
    train.write_text(json.dumps(doc))
    job = daemon.client.submit({"name": "dfine", "framework": "transformers", "task": "object_detection",
                                "model": str(models / "dfine"), "image_size": 64,
                                "dataset": {"path": str(data), "format": "coco"},
                                "advanced": {"detection": {"predict_threshold": 0.0}},
                                "training": {"epochs": 1, "batch_size": 2, "learning_rate": 0.0001, "device": "cpu"}})
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert {"val/mAP50", "val/mAP50-95", "val/mAP75", "val/loss", "train/loss"} <= set(final.metrics)
    log = (Path(final.job_dir) / "output.log").read_text()
    assert "1 box clipped to the image by ≤ 0.4 px" in log
    assert f"duplicate of annotation id {first['id']} (same class and coordinates); dropped" in log
    response = daemon.client.predict(job.id, data / "images" / "val" / "0.png", annotate=True)
    assert response.task == "object_detection" and (response.width, response.height) == (64, 64)
    assert response.predictions and all(p.HasField("box") for p in response.predictions)
    assert response.image_png.startswith(b"\x89PNG")



def _build(python, script: str, out: Path) -> Path:
    subprocess.run([str(python), "-c", textwrap.dedent(script), str(out)], check=True, capture_output=True,
                   timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return out


@pytest.mark.parametrize("task", ["semantic_segmentation", "super_resolution", "ocr"])
def test_every_other_task_trains_and_predicts_through_the_daemon(daemon, transformers_env, tmp_path, task):
    from tests.dataset_fixtures import make_masks, make_ocr_dataset, make_sr_pairs
    from tests.hf_models import SEGMENTATION_MODELS, SWIN2SR, TINY_TROCR

    python = transformers_env.python
    if task == "semantic_segmentation":
        model = _build(python, SEGMENTATION_MODELS, tmp_path / "models") / "segformer"
        data, fmt, metrics = make_masks(tmp_path / "data"), "masks", {"val/mIoU", "val/pixel_accuracy"}
        image = next((data / "val" / "images").iterdir())
    elif task == "super_resolution":
        model = _build(python, SWIN2SR, tmp_path / "swin2sr")
        data, fmt, metrics = make_sr_pairs(tmp_path / "data"), "sr_pairs", {"val/psnr", "val/ssim"}
        image = next((data / "val" / "LR_x2").iterdir())
    else:
        model = _build(python, TINY_TROCR, tmp_path / "trocr")
        data, fmt, metrics = make_ocr_dataset(tmp_path / "data"), "ocr", {"val/cer", "val/wer"}
        image = next((data / "val" / "images").iterdir())
    job = daemon.client.submit({"name": task, "framework": "transformers", "task": task, "model": str(model),
                                "pretrained": True, "image_size": 32, "dataset": {"path": str(data), "format": fmt},
                                "training": {"epochs": 1, "batch_size": 4, "learning_rate": 0.001, "device": "cpu"}})
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert metrics | {"val/loss", "train/loss"} <= set(final.metrics)
    response = daemon.client.predict(job.id, image)
    assert response.task == task
    if task == "semantic_segmentation":
        assert response.mask_png.startswith(b"\x89PNG") and response.predictions
    elif task == "super_resolution":
        assert response.image_png.startswith(b"\x89PNG")
    else:
        assert isinstance(response.text, str)
