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
    # Two jobs at a time: the module's jobs are submitted together, and one's imports overlap another's training
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs, ["--max-concurrent-jobs", "2"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def models(transformers_env, tmp_path_factory) -> Path:
    """The tiny models of every test here, saved by one child (transformers imported once): ``vit``,
    ``detection/dfine``, ``segmentation/segformer``, ``swin2sr``, ``trocr``."""
    from tests.hf_models import BUILD_EACH, DETECTION_MODELS, SEGMENTATION_MODELS, SWIN2SR, TINY_TROCR

    root = tmp_path_factory.mktemp("models")
    scripts = {"vit": VIT, "detection": DETECTION_MODELS, "segmentation": SEGMENTATION_MODELS, "swin2sr": SWIN2SR,
               "trocr": TINY_TROCR}
    subprocess.run([str(transformers_env.python), "-c", BUILD_EACH,
                    json.dumps([[textwrap.dedent(script), str(root / name)] for name, script in scripts.items()])],
                   check=True, capture_output=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return root


def _dfine_data(root: Path) -> tuple[Path, dict]:
    """A COCO dataset of drawn boxes with two flaws real exports have: a box half a pixel short of past
    the width (x + w = 64.4), and an exact duplicate; the first annotation."""
    from adapters.datasets import convert_dataset

    drawn = make_yolo_task(root / "drawn", "object_detection", train=4, val=2)  # coloured boxes, not blank
    data = root / "parts"
    convert_dataset(drawn, "yolo", "coco", "object_detection", data)
    train = data / "annotations" / "instances_train.json"
    doc = json.loads(train.read_text())
    first = doc["annotations"][0]
    first["bbox"] = [64 - first["bbox"][2] + 0.4, *first["bbox"][1:]]
    doc["annotations"].append({**first, "id": len(doc["annotations"]) + 1})
    train.write_text(json.dumps(doc))
    return data, first


@pytest.fixture(scope="module")
def jobs(daemon, models, tmp_path_factory) -> dict[str, tuple[str, Path, dict]]:
    """Every job of the module, submitted at once: name → (job id, its dataset, extras)."""
    from tests.dataset_fixtures import make_masks, make_ocr_dataset, make_sr_pairs

    root = tmp_path_factory.mktemp("data")
    submitted = {}

    def submit(name, model, data, fmt, extras=None, **spec):
        training = spec.pop("training", {"epochs": 1, "batch_size": 4, "learning_rate": 0.001, "device": "cpu"})
        job = daemon.client.submit({"name": name, "framework": "transformers", "task": spec.pop("task", name),
                                    "model": str(model), "pretrained": True, "image_size": 32,
                                    "dataset": {"path": str(data), "format": fmt}, "training": training, **spec})
        submitted[name] = (job.id, data, extras or {})

    submit("vit", models / "vit", make_imagefolder(root / "colours", per_class=8, val_per_class=3), "imagefolder",
           task="image_classification", preset="standard",
           training={"epochs": 2, "batch_size": 8, "learning_rate": 0.001, "device": "cpu"})
    data, first = _dfine_data(root / "coco")
    submit("dfine", models / "detection" / "dfine", data, "coco", {"first": first}, task="object_detection",
           image_size=64, advanced={"detection": {"predict_threshold": 0.0}},
           training={"epochs": 1, "batch_size": 2, "learning_rate": 0.0001, "device": "cpu"})
    submit("semantic_segmentation", models / "segmentation" / "segformer", make_masks(root / "masks"), "masks")
    submit("super_resolution", models / "swin2sr", make_sr_pairs(root / "sr"), "sr_pairs")
    submit("ocr", models / "trocr", make_ocr_dataset(root / "ocr"), "ocr")
    return submitted


def test_a_vit_job_trains_and_predicts_through_the_daemon(daemon, jobs, tmp_path):
    job_id, _, _ = jobs["vit"]
    events = list(daemon.client.watch(job_id))
    final = daemon.client.get(job_id)
    assert final.state == pb.SUCCEEDED, final.error
    epochs = [e.metrics for e in events if e.WhichOneof("kind") == "metrics"]
    assert [m.step for m in epochs] == [1, 2]
    assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(epochs[-1].values)
    assert Path(final.last_checkpoint, "config.json").is_file()  # a save_pretrained folder
    response = daemon.client.predict(job_id, save_image(tmp_path / "red.png", "red", size=32), top_k=2)
    assert response.task == "image_classification" and len(response.predictions) == 2


def test_the_best_checkpoint_folder_reaches_mlflow_without_training_state(daemon, jobs):
    from mlflow.tracking import MlflowClient

    from tests.helpers import wait_for

    job = daemon.client.wait(jobs["vit"][0])
    run_id = wait_for(lambda: daemon.client.get(job.id).mlflow_run_id)
    client = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")  # after the daemon created the store
    run = wait_for(lambda: (r := client.get_run(run_id)).info.status == "FINISHED" and r, timeout=60)
    folder = Path(job.best_checkpoint).name
    files = {a.path for a in client.list_artifacts(run.info.run_id, folder)}
    assert f"{folder}/config.json" in files and f"{folder}/model.safetensors" in files
    assert not any("optimizer" in f or "scheduler" in f for f in files)


def test_a_dfine_job_on_coco_reports_map_and_predicts_boxes(daemon, jobs):
    job_id, data, extras = jobs["dfine"]
    final = daemon.client.wait(job_id)
    assert final.state == pb.SUCCEEDED, final.error
    assert {"val/mAP50", "val/mAP50-95", "val/mAP75", "val/loss", "train/loss"} <= set(final.metrics)
    log = (Path(final.job_dir) / "output.log").read_text()
    assert "1 box clipped to the image by ≤ 0.4 px" in log
    assert f"duplicate of annotation id {extras['first']['id']} (same class and coordinates); dropped" in log
    response = daemon.client.predict(job_id, data / "images" / "val" / "0.png", annotate=True)
    assert response.task == "object_detection" and (response.width, response.height) == (64, 64)
    assert response.predictions and all(p.HasField("box") for p in response.predictions)
    assert response.image_png.startswith(b"\x89PNG")


@pytest.mark.parametrize("task", ["semantic_segmentation", "super_resolution", "ocr"])
def test_every_other_task_trains_and_predicts_through_the_daemon(daemon, jobs, task):
    job_id, data, _ = jobs[task]
    metrics = {"semantic_segmentation": {"val/mIoU", "val/pixel_accuracy"}, "super_resolution": {"val/psnr", "val/ssim"},
               "ocr": {"val/cer", "val/wer"}}[task]
    image = next((data / "val" / ("LR_x2" if task == "super_resolution" else "images")).iterdir())
    final = daemon.client.wait(job_id)
    assert final.state == pb.SUCCEEDED, final.error
    assert metrics | {"val/loss", "train/loss"} <= set(final.metrics)
    response = daemon.client.predict(job_id, image)
    assert response.task == task
    if task == "semantic_segmentation":
        assert response.mask_png.startswith(b"\x89PNG") and response.predictions
    elif task == "super_resolution":
        assert response.image_png.startswith(b"\x89PNG")
    else:
        assert isinstance(response.text, str)
