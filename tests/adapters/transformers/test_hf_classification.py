"""Transformers classification in the real env: a tiny ViT saved to a folder, trained, resumed,
predicted with, reloaded by plain transformers; and a hub id offline fails fast.

Training runs and one predict run the real entrypoint in a child of their own; the short runs share one child
(``one_process``), which calls what the command line calls, so torch and transformers are imported once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.transformers.tasks.classification import classification_evaluation, classification_metrics

#: What every adapter answers to ``device: cuda`` where the child sees no GPU.
NO_CUDA = ("training.device is 'cuda' but this machine has no CUDA device (torch sees none; "
           "CUDA_VISIBLE_DEVICES=''): use device: cpu or auto")


@pytest.fixture(scope="module")
def trained(tiny_hf_models, hf_python, hf_job, child_env, reporter_server, make_imagefolder, tmp_path_factory):
    """A tiny ViT (``tiny_hf_models["vit"]``, 3 labels) trained 2 epochs on 3 colour classes."""
    root = tmp_path_factory.mktemp("hfcls")
    dataset = make_imagefolder(root / "data", per_class=8, val_per_class=3)
    job = hf_job.write(root / "job", "image_classification", tiny_hf_models["vit"], dataset, "imagefolder", epochs=2)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset, "vit": tiny_hf_models["vit"]}


#: Run in the transformers env with a checkpoint folder: its labels, loaded by plain transformers.
PLAIN_LOAD = """
import sys
from transformers import AutoModelForImageClassification, AutoImageProcessor
model = AutoModelForImageClassification.from_pretrained(sys.argv[1])
AutoImageProcessor.from_pretrained(sys.argv[1])
print(sorted(model.config.id2label.values()))
"""


def reporter_variables(child_env, address: str) -> dict[str, str]:
    """What the daemon puts in a child's environment to report to ``address``."""
    return {k: v for k, v in child_env(address).items() if k.startswith("VISIONYARD_")}


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process, tmp_path_factory):
    """The short runs, in one child process (``in_one_process``), each through the function its command line
    calls (``adapters.entrypoint.main``) or a script: a model without a job, the runs that fail before training
    (a hub id offline, cuda without a GPU), the checkpoint in plain transformers. Every GPU is hidden and the hub
    unreachable; the model without a job goes first, so it meets the hub as a fresh child does.

    Meanwhile (a second core), ``cli``: the real command line the daemon runs, ``python -m adapters.entrypoint
    --predict`` with the top 2, on a red val image (24x24)."""
    root = tmp_path_factory.mktemp("one-process")
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")  # each test says what failed
    red = str(next((trained["dataset"] / "val" / "red").iterdir()))

    def no_job(name: str, model: str = "google/vit-base-patch16-224", task: str = "image_classification") -> str:
        return str(hf_job.write(root / name, task, model, root / "no-dataset", "imagefolder", image_size=224))

    without_a_job = {"folder": {"job": no_job("folder"), "weights": last, "images": [red]},
                     "model is a folder": {"job": no_job("raw", str(trained["vit"])), "weights": None,
                                           "images": [red]},
                     "not cached": {"job": no_job("hub"), "weights": None},
                     "another task": {"job": no_job("task", task="object_detection"), "weights": last}}
    hub_job = hf_job.write(root / "hub-job", "image_classification", "google/vit-base-patch16-224",
                           trained["dataset"], "imagefolder")
    cuda_job = hf_job.write(root / "cuda", "image_classification", root / "not-loaded", root / "not-read",
                            "imagefolder")
    data = json.loads(cuda_job.read_text())
    data["device"] = data["spec"]["training"]["device"] = "cuda"
    cuda_job.write_text(json.dumps(data))
    env = child_env(HF_HOME=str(root / "empty-hf-home"), HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="",
                    https_proxy="", CUDA_VISIBLE_DEVICES="")
    env.pop("HF_HUB_OFFLINE", None)  # never downloaded, whatever the environment says
    with reporter_server() as hub, reporter_server() as cuda:
        steps = {
            "without a job": {"script": in_one_process.WITHOUT_A_JOB, "argv": [json.dumps(without_a_job)]},
            "hub id offline": {"argv": ["--spec", str(hub_job)],
                               "env": {**reporter_variables(child_env, hub.address), "HF_HUB_OFFLINE": "1"}},
            "cuda": {"argv": ["--spec", str(cuda_job)], "env": reporter_variables(child_env, cuda.address)},
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last]},
        }
        with in_one_process.start(hf_python, env, steps) as running:
            cli = hf_job.run(hf_python, child_env(), "--spec", trained["root"] / "job" / "job.json", "--predict",
                             red, "--checkpoint", last, "--top-k", "2")
            out = running.result()
    return {"out": out, "cli": cli, "root": root, "last": last, "hub": hub, "cuda": cuda}


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


def test_each_validation_records_its_confusion_matrix_and_per_class_results(trained):
    """``results/val/``: an index entry and a record per epoch (as timm's), whose matrix counts every validation
    image once and gives the accuracy the epoch reported; its metrics are the epoch's ``val/*``."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    server = trained["server"]
    reported = {m.step: dict(m.values) for m in server.of_kind("metrics")}
    steps = server.of_kind("progress")[-1].total_steps
    results = trained["root"] / "job" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, steps, "epoch-0001.json"),
                                                                  (2, 2 * steps, "epoch-0002.json")]
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        values = reported[entry["epoch"]]
        assert (record["task"], record["source"], record["evaluator"], record["job"], record["epoch"]) == (
            "image_classification", "training", "visionyard.classification", "job-1", entry["epoch"])
        assert record["classes"] == record["confusion_labels"] == ["blue", "green", "red"]
        matrix = np.array(record["confusion_matrix"])
        assert matrix.sum() == 9  # 3 val images of each class
        assert np.trace(matrix) / matrix.sum() == values["val/accuracy"]
        assert [set(row) for row in record["per_class"]] == [{"class", "precision", "recall", "f1", "support"}] * 3
        assert [row["class"] for row in record["per_class"]] == record["classes"]
        assert [row["support"] for row in record["per_class"]] == matrix.sum(1).tolist() == [3, 3, 3]
        for k, row in enumerate(record["per_class"]):
            assert row["recall"] == pytest.approx(matrix[k, k] / 3)
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in values.items() if k.startswith("val/")}
        assert {"val/loss", "val/accuracy", "val/precision", "val/recall", "val/f1"} == set(record["metrics"])


def test_the_checkpoint_loads_in_plain_transformers(one_process):
    loaded = one_process["out"]["plain transformers"]
    assert loaded["code"] == 0, loaded["error"] or loaded["stderr"][-4000:]
    assert loaded["stdout"].strip() == "['blue', 'green', 'red']"


def test_predict_in_the_child_prints_the_top_k(one_process):
    done = one_process["cli"]  # the real command line
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "image_classification" and (response["width"], response["height"]) == (24, 24)
    assert len(response["predictions"]) == 2 and response["predictions"][0]["label"] in ("red", "green", "blue")


def test_resume_continues_at_the_next_epoch(trained, hf_python, hf_job, child_env, reporter_server):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    job = hf_job.write(trained["root"] / "resumed", "image_classification", trained["vit"],
                       trained["dataset"], "imagefolder", epochs=3, resume=last)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    assert [m.step for m in server.of_kind("metrics")] == [3]
    steps = trained["server"].of_kind("progress")[-1].total_steps
    assert server.of_kind("result")[0].last_checkpoint.endswith(f"checkpoint-{3 * steps}")
    index = json.loads((trained["root"] / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(3, 3 * steps)]  # the epoch it reported


def test_an_uncached_hub_id_offline_fails_fast_with_what_to_do(one_process):
    done, server = one_process["out"]["hub id offline"], one_process["hub"]
    assert done["code"] == 1, done["error"]
    [error] = server.of_kind("error")
    assert "not in the local Hugging Face cache" in error.message and "save_pretrained" in error.message
    assert done["seconds"] < 60  # no retry storm against the hub


def test_a_model_without_a_job_predicts_with_its_id2label(one_process):
    """``load_weights``, as a warm worker for a model without a job calls it: a save_pretrained folder (or
    ``model`` itself a folder) predicts with its ``config.id2label`` and its processor's own size (32 px, not
    the spec's 224, the catalog's for the hub id); a hub id comes from the local cache only (never downloaded:
    one not cached fails in seconds with what to do); a model of another task is refused, naming its task."""
    found, last, root = one_process["out"]["without a job"], one_process["last"], one_process["root"]
    assert found["code"] == 0, found["error"] or found["stderr"][-4000:]
    out = found["json"]
    assert out["folder"]["names"] == ["blue", "green", "red"]
    assert sorted(label for label, _ in out["folder"]["predictions"][0]) == ["blue", "green", "red"]
    assert out["model is a folder"]["names"] == ["LABEL_0", "LABEL_1", "LABEL_2"]  # what its config says
    assert out["not cached"]["error"] == (
        "ModelUnavailable: model 'google/vit-base-patch16-224' is not in the local Hugging Face cache "
        f"({root / 'empty-hf-home' / 'hub'}) and a model without a job is never downloaded; run once where "
        "huggingface.co is reachable to cache it (a job with `pretrained: true` does, or `hf download "
        "google/vit-base-patch16-224`), or pass --weights with a folder saved by save_pretrained")
    assert out["not cached"]["seconds"] < 10, out["not cached"]
    assert out["another task"]["error"] == (f"ValueError: '{last}' is a ViTForImageClassification "
                                            "(image_classification), not a model for object_detection; predict it "
                                            "with --task image_classification")


def test_cuda_without_a_gpu_fails_at_once_naming_the_setting(one_process):
    done, server = one_process["out"]["cuda"], one_process["cuda"]
    assert done["code"] == 1, done["error"]
    [error] = server.of_kind("error")
    assert (error.type, error.message) == ("DeviceUnavailable", NO_CUDA)  # not a silent run on the CPU
    assert server.kinds() == ["error"]  # before the dataset is read: nothing else reported


KNOWN_CASES = [
    # predicted 0, 1, 2, 0: class 0 precision 1/2, class 1 recall 1/2
    ([[2, 1, 0], [0, 2, 1], [1, 0, 2], [2, 0, 1]], [0, 1, 2, 1], {"accuracy": 0.75, "f1": pytest.approx(7 / 9)},
     {"precision": pytest.approx(5 / 6), "recall": pytest.approx(5 / 6)}, [[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
    # 6 classes: only 0 (true, found once) and 5 (predicted once) count in the macro means; top-5 with 5+
    ([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], [0, 0], {"accuracy": 0.5, "top5": 0.5, "f1": pytest.approx(1 / 3)},
     {"precision": 0.5, "recall": 0.25}, [[1, 0, 0, 0, 0, 1]] + [[0] * 6] * 5),
]


@pytest.mark.parametrize(("logits", "labels", "expected"), [case[:3] for case in KNOWN_CASES])
def test_classification_metrics_on_known_cases(logits, labels, expected):
    assert classification_metrics(np.array(logits, dtype=float), np.array(labels)) == expected


@pytest.mark.parametrize(("logits", "labels", "expected", "macro", "matrix"), KNOWN_CASES)
def test_the_evaluation_of_known_cases_adds_the_matrix_and_macro_precision_and_recall(logits, labels, expected,
                                                                                      macro, matrix):
    """What ``compute_metrics`` reports and records: ``classification_metrics``' numbers (the bare Trainer's in
    ``bench/``) plus macro precision and recall, from the confusion matrix."""
    names = [f"c{i}" for i in range(len(logits[0]))]
    evaluation = classification_evaluation(np.array(logits, dtype=float), np.array(labels), names)
    assert evaluation.metrics == {f"val/{k}": v for k, v in {**expected, **macro}.items()}
    assert evaluation.confusion_matrix.tolist() == matrix and evaluation.classes == names


#: Run in the transformers env with a checkpoint folder: the TrainingArguments the run trained with.
TRAINED_WITH = """
import json, sys, torch
args = torch.load(sys.argv[1] + "/training_args.bin", weights_only=False)
print(json.dumps({k: getattr(args, k) for k in ("bf16", "fp16", "gradient_accumulation_steps", "max_grad_norm",
                                                 "warmup_steps")}))
"""


def test_training_controls_and_the_models_own_image_size(tiny_hf_models, hf_python, hf_job, hf_script, child_env,
                                                        reporter_server, make_imagefolder, tmp_path):
    """The 32 px ViT with no image_size asked (the daemon's default, 224) trains at its own size; bf16 on the CPU,
    accumulation, clipping and warmup become TrainingArguments; early stopping (min_delta 1: epoch 2 can't
    improve) ends a 3-epoch run after epoch 2, saying so."""
    dataset = make_imagefolder(tmp_path / "data", per_class=4, val_per_class=2)
    job = hf_job.write(tmp_path / "job", "image_classification", tiny_hf_models["vit"], dataset, "imagefolder",
                       epochs=3, image_size=224)
    data = json.loads(job.read_text())
    data["spec"]["training"].update(mixed_precision="bf16", gradient_accumulation=2, gradient_clip=0.5,
                                    warmup_epochs=1, early_stopping={"patience": 1, "min_delta": 1.0})
    job.write_text(json.dumps(data))
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    assert [m.step for m in server.of_kind("metrics")] == [1, 2]
    result = server.of_kind("result")[0]
    assert result.note == "stopped early at epoch 2 (no improvement of val/accuracy by more than 1 for 1 epochs)"
    args = json.loads(hf_script(TRAINED_WITH, result.last_checkpoint).strip().splitlines()[-1])
    # 12 images, batches of 4, 2 per step: 2 optimizer steps an epoch, so one warmup epoch is 2 steps
    assert args == {"bf16": True, "fp16": False, "gradient_accumulation_steps": 2, "max_grad_norm": 0.5,
                    "warmup_steps": 2}
