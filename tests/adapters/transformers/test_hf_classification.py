"""Transformers classification in the real env: a tiny ViT saved to a folder, trained, resumed,
predicted with, reloaded by plain transformers; and a hub id offline fails fast."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from adapters.transformers.tasks.classification import classification_metrics

VIT = """
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_labels=3)
ViTForImageClassification(cfg).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(sys.argv[1])
"""
#: What every adapter answers to ``device: cuda`` where the child sees no GPU.
NO_CUDA = ("training.device is 'cuda' but this machine has no CUDA device (torch sees none; "
           "CUDA_VISIBLE_DEVICES=''): use device: cpu or auto")


@pytest.fixture(scope="module")
def trained(hf_script, hf_python, hf_job, child_env, reporter_server, make_imagefolder, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfcls")
    hf_script(VIT, root / "vit")
    dataset = make_imagefolder(root / "data", per_class=8, val_per_class=3)
    job = hf_job.write(root / "job", "image_classification", root / "vit", dataset, "imagefolder", epochs=2)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset}


def test_trains_reports_accuracy_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(m.values)
    checkpoints = server.of_kind("checkpoint")
    assert {c.kind for c in checkpoints} == {"last", "best"}
    steps = server.of_kind("progress")[-1].total_steps  # optimizer steps per epoch
    result = server.of_kind("result")[0]
    assert result.last_checkpoint == str(trained["root"] / "job" / "checkpoints" / f"checkpoint-{2 * steps}")
    assert (trained["root"] / "job" / "checkpoints" / f"checkpoint-{2 * steps}" / "preprocessor_config.json").is_file()
    assert "\r" not in done.stdout + done.stderr


def test_the_checkpoint_loads_in_plain_transformers_and_predicts(trained, hf_script, hf_python, hf_job, child_env):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    out = hf_script("""
import sys
from transformers import AutoModelForImageClassification, AutoImageProcessor
model = AutoModelForImageClassification.from_pretrained(sys.argv[1])
AutoImageProcessor.from_pretrained(sys.argv[1])
print(sorted(model.config.id2label.values()))
""", last)
    assert out.strip() == "['blue', 'green', 'red']"
    image = next((trained["dataset"] / "val" / "red").iterdir())
    done = hf_job.run(hf_python, child_env(), "--spec", trained["root"] / "job" / "job.json", "--predict", image,
                      "--checkpoint", last, "--top-k", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "image_classification" and (response["width"], response["height"]) == (24, 24)
    assert len(response["predictions"]) == 2 and response["predictions"][0]["label"] in ("red", "green", "blue")


def test_resume_continues_at_the_next_epoch(trained, hf_python, hf_job, child_env, reporter_server):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    job = hf_job.write(trained["root"] / "resumed", "image_classification", trained["root"] / "vit",
                       trained["dataset"], "imagefolder", epochs=3, resume=last)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    assert [m.step for m in server.of_kind("metrics")] == [3]
    steps = trained["server"].of_kind("progress")[-1].total_steps
    assert server.of_kind("result")[0].last_checkpoint.endswith(f"checkpoint-{3 * steps}")


def test_an_uncached_hub_id_offline_fails_fast_with_what_to_do(trained, hf_python, hf_job, child_env,
                                                               reporter_server):
    job = hf_job.write(trained["root"] / "hub", "image_classification", "google/vit-base-patch16-224",
                       trained["dataset"], "imagefolder")
    env = child_env()
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(trained["root"] / "empty-hf-home"))
    with reporter_server() as server:
        started = time.monotonic()
        done = hf_job.run(hf_python, child_env(server.address, HF_HUB_OFFLINE="1",
                                              HF_HOME=str(trained["root"] / "empty-hf-home")), "--spec", job)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    [error] = server.of_kind("error")
    assert "not in the local Hugging Face cache" in error.message and "save_pretrained" in error.message
    assert elapsed < 60  # seconds of imports, no retry storm


def test_a_model_without_a_job_predicts_with_its_id2label(trained, hf_python, hf_job, child_env, without_a_job,
                                                          tmp_path):
    """``load_weights``, as a warm worker for a model without a job calls it: a save_pretrained folder (or
    ``model`` itself a folder) predicts with its ``config.id2label`` and its processor's own size (32 px, not
    the spec's 224, the catalog's for the hub id); a hub id comes from the local cache only (never downloaded:
    one not cached fails in seconds with what to do); a model of another task is refused, naming its task."""
    last = trained["server"].of_kind("result")[0].last_checkpoint
    red = str(next((trained["dataset"] / "val" / "red").iterdir()))

    def job(name: str, model: str = "google/vit-base-patch16-224", task: str = "image_classification") -> str:
        return str(hf_job.write(tmp_path / name, task, model, tmp_path / "no-dataset", "imagefolder", image_size=224))

    cases = {"folder": {"job": job("folder"), "weights": last, "images": [red]},
             "model is a folder": {"job": job("raw", str(trained["root"] / "vit")), "weights": None, "images": [red]},
             "not cached": {"job": job("hub"), "weights": None},
             "another task": {"job": job("task", task="object_detection"), "weights": last}}
    env = child_env(HF_HOME=str(tmp_path / "empty-hf-home"), HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="",
                    https_proxy="")
    env.pop("HF_HUB_OFFLINE", None)  # never downloaded, whatever the environment says
    out = without_a_job(hf_python, env, cases)
    assert out["folder"]["names"] == ["blue", "green", "red"]
    assert sorted(label for label, _ in out["folder"]["predictions"][0]) == ["blue", "green", "red"]
    assert out["model is a folder"]["names"] == ["LABEL_0", "LABEL_1", "LABEL_2"]  # what its config says
    assert out["not cached"]["error"] == (
        "ModelUnavailable: model 'google/vit-base-patch16-224' is not in the local Hugging Face cache "
        f"({tmp_path / 'empty-hf-home' / 'hub'}) and a model without a job is never downloaded; run once where "
        "huggingface.co is reachable to cache it (a job with `pretrained: true` does, or `hf download "
        "google/vit-base-patch16-224`), or pass --weights with a folder saved by save_pretrained")
    assert out["not cached"]["seconds"] < 10, out["not cached"]
    assert out["another task"]["error"] == (f"ValueError: '{last}' is a ViTForImageClassification "
                                            "(image_classification), not a model for object_detection; predict it "
                                            "with --task image_classification")


def test_cuda_without_a_gpu_fails_at_once_naming_the_setting(hf_python, hf_job, child_env, reporter_server, tmp_path):
    job = hf_job.write(tmp_path / "job", "image_classification", tmp_path / "not-loaded", tmp_path / "not-read",
                       "imagefolder")
    data = json.loads(job.read_text())
    data["device"] = data["spec"]["training"]["device"] = "cuda"
    job.write_text(json.dumps(data))
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address, CUDA_VISIBLE_DEVICES=""), "--spec", job)
    assert done.returncode == 1
    [error] = server.of_kind("error")
    assert (error.type, error.message) == ("DeviceUnavailable", NO_CUDA)  # not a silent run on the CPU
    assert server.kinds() == ["error"]  # before the dataset is read: nothing else reported


@pytest.mark.parametrize(("logits", "labels", "expected"), [
    ([[2, 1, 0], [0, 2, 1], [1, 0, 2], [2, 0, 1]], [0, 1, 2, 1], {"accuracy": 0.75, "f1": pytest.approx(7 / 9)}),
    ([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], [0, 0], {"accuracy": 0.5, "top5": 0.5, "f1": pytest.approx(1 / 3)}),
])
def test_classification_metrics_on_known_cases(logits, labels, expected):
    assert classification_metrics(np.array(logits, dtype=float), np.array(labels)) == expected
