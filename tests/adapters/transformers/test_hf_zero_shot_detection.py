"""Transformers open-vocabulary detection in the real env: a tiny Grounding DINO (a tiny Swin and a tiny BERT whose
word vocabulary is built in code) trained as a bare child on a COCO dataset whose category names are the text
queries, with its zero-shot evaluation at epoch 0; resumed; predicted with for labels given at predict time;
reloaded by plain transformers; the evaluation path checked with perfect predictions. A tiny OWL-ViT predicts
and evaluates zero-shot, and is refused training (no loss in Transformers), by the catalog and in the child.

Training runs the real entrypoint in a child of its own; the rest shares one child (``one_process``)."""

from __future__ import annotations

import json

import pytest

from adapters.evaluation.record import best_epoch
from adapters.transformers.catalog import check_model
from tests.adapters.transformers.common import assert_resumed_best
from tests.dataset_fixtures import make_coco_shapes
from tests.hf_models import ZERO_SHOT_DETECTION_MODELS

TASK = "zero_shot_detection"
REPORTED = {"val/loss", "val/precision", "val/recall", "val/mAP50", "val/mAP50-95", "val/mAP75"}


@pytest.fixture(scope="module")
def trained(hf_script, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfzsd")
    hf_script(ZERO_SHOT_DETECTION_MODELS, root / "models")
    dataset = make_coco_shapes(root / "data", train=6, val=3, size=64)
    job = hf_job.write(root / "job", TASK, root / "models" / "grounding_dino", dataset, "coco", epochs=2, image_size=64)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "job": job, "dataset": dataset}


#: ``ROUND_TRIP JOB``: the job's val images → encode → collate → targets as the Trainer hands them back →
#: compute_metrics with a query per object whose logits are high on exactly its class's phrase tokens and whose box
#: is the object's (mAP 1), and again with the classes swapped (mAP 0).
ROUND_TRIP = """
import json, sys
import torch
from transformers import EvalPrediction
from transformers.trainer_pt_utils import nested_numpify
from adapters.datasets import read_dataset
from adapters.job import Job
from adapters.transformers.tasks.zero_shot_detection import ZeroShotDetectionTask
job = Job.from_file(sys.argv[1])
spec = job.spec
dataset = read_dataset(spec.dataset.path, spec.dataset.format, spec.task)
task = ZeroShotDetectionTask(job)
task.class_names, task.dataset = list(dataset.class_names), dataset
model, task.processor = task.build(spec.model, True, dataset)
batch = task.collate([task.encode(r, train=False) for r in dataset.val])
targets = nested_numpify(batch["labels"])
text, weights = task.prompt(task.class_names)
out = {"prompt": task.processor.tokenizer.decode(text["input_ids"][0]), "weights": weights.tolist(),
       "batch": {k: list(v.shape) for k, v in batch.items() if hasattr(v, "shape")}}
for name, swap in (("perfect", False), ("swapped", True)):
    logits = torch.full((len(targets), 20, weights.shape[1]), -10.0)
    boxes = torch.full((len(targets), 20, 4), 0.5)
    for i, target in enumerate(batch["labels"]):
        for j, (c, box) in enumerate(zip(target["class_labels"].tolist(), target["boxes"])):
            logits[i, j, weights[1 - c if swap else c] > 0] = 10.0
            boxes[i, j] = box
    out[name] = task.compute_metrics(EvalPrediction(predictions=[(logits.numpy(), boxes.numpy())], label_ids=[targets]))
print(json.dumps(out))
"""

#: ``PLAIN_LOAD CHECKPOINT``: the checkpoint in plain transformers.
PLAIN_LOAD = """
import json, sys
from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
model = AutoModelForZeroShotObjectDetection.from_pretrained(sys.argv[1])
processor = AutoProcessor.from_pretrained(sys.argv[1])
print(json.dumps({"model": type(model).__name__, "processor": type(processor).__name__,
                  "labels": [model.config.id2label[i] for i in range(len(model.config.id2label))]}))
"""


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process):
    root, job, dataset = trained["root"], str(trained["job"]), trained["dataset"]
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")  # each test says what failed
    image = str(dataset / "val" / "0.png")
    owl = root / "models" / "owlvit"
    owl_job = str(hf_job.write(root / "owl", TASK, owl, dataset, "coco", epochs=1, image_size=64))
    resumed = str(hf_job.write(root / "resumed", TASK, root / "models" / "grounding_dino", dataset, "coco", epochs=3,
                               image_size=64, resume=last))
    with reporter_server() as server, reporter_server() as refused:
        def reporting(to):
            return {k: v for k, v in child_env(to.address).items() if k.startswith("VISIONYARD_")}
        steps = {
            "predict labels": {"argv": ["--spec", job, "--predict", image, "--checkpoint", last, "--labels",
                                        "dog, car", "--annotate"]},
            "predict classes": {"argv": ["--spec", job, "--predict", image, "--checkpoint", last]},
            "round trip": {"script": ROUND_TRIP, "argv": [job]},
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last]},
            "owl predict": {"argv": ["--spec", owl_job, "--predict", image, "--checkpoint", str(owl), "--labels",
                                     "bike,car,cat"]},
            "owl eval": {"argv": ["--spec", owl_job, "--eval", "--checkpoint", str(owl), "--out", str(root / "eval")]},
            "owl train": {"argv": ["--spec", owl_job], "env": reporting(refused)},
            "resume": {"argv": ["--spec", resumed], "env": reporting(server)},
        }
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "resumed": server, "refused": refused, "root": root}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_trains_with_the_zero_shot_baseline_as_epoch_0(trained):
    """Epoch 0 is the model as loaded, evaluated before the first step (its metrics and its validation record,
    no training loss); epochs 1 and 2 follow. The best checkpoint is a trained epoch's, never epoch 0."""
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [0, 1, 2]
    assert REPORTED <= set(metrics[0].values) and "train/loss" not in metrics[0].values
    for m in metrics[1:]:
        assert REPORTED | {"train/loss", "lr"} <= set(m.values)
    assert {c.epoch for c in server.of_kind("checkpoint")} <= {1, 2}
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-4")  # 6 images, 4 a batch
    results = trained["root"] / "job" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(0, 0), (1, 2), (2, 4)]
    assert best_epoch(index, TASK) in (1, 2)
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"]) == (TASK, "visionyard.coco", ["car", "bike"])
        assert record["confusion_labels"] == ["car", "bike", "background"]
        assert [row["support"] for row in record["per_class"]] == [3, 3]  # a car and a bike in each val image
        reported = {k: v for k, v in metrics[entry["epoch"]].values.items() if k.startswith("val/")}
        assert record["metrics"] == entry["metrics"] == pytest.approx(reported)
    saved = json.loads((trained["root"] / "job" / "checkpoints" / "checkpoint-4" / "config.json").read_text())
    assert saved["id2label"] == {"0": "car", "1": "bike"}  # predict's labels when none are given


def test_resume_continues_at_the_next_epoch_without_a_baseline(one_process):
    finished(one_process["out"]["resume"])
    assert [m.step for m in one_process["resumed"].of_kind("metrics")] == [3]
    index = json.loads((one_process["root"] / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(3, 6)]


def test_resume_ends_with_the_best_of_both_runs(trained, one_process):
    finished(one_process["out"]["resume"])
    checkpoints = one_process["root"] / "resumed" / "checkpoints"
    assert_resumed_best(TASK, trained["server"], one_process["resumed"], checkpoints, 2)  # 6 images, 4 a batch


def test_the_evaluation_scores_phrases_as_classes(one_process):
    out = finished(one_process["out"]["round trip"])["json"]
    assert out["prompt"] == "[CLS] car. bike. [SEP]"
    assert [[round(w, 3) for w in row[:6]] for row in out["weights"]] == [[0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]
    assert out["batch"]["input_ids"] == [3, 6] and out["batch"]["pixel_values"] == [3, 3, 64, 64]
    assert out["perfect"]["mAP50-95"] == pytest.approx(1.0) and out["perfect"]["mAP50"] == pytest.approx(1.0)
    assert out["swapped"]["mAP50"] == 0.0


def test_predict_gives_boxes_with_the_label_they_matched(one_process):
    given = finished(one_process["out"]["predict labels"])["json"]
    assert given["task"] == TASK and (given["width"], given["height"]) == (64, 64) and given["image_png_b64"]
    for p in given["predictions"]:
        assert (p["label"], p["index"]) in {("dog", 0), ("car", 1)} and len(p["box"]) == 4
        assert 0 <= p["box"][0] <= p["box"][2] <= 64 and 0 <= p["box"][1] <= p["box"][3] <= 64
        assert p["score"] >= 0.3  # detection.predict_threshold
    own = finished(one_process["out"]["predict classes"])["json"]
    assert {p["label"] for p in own["predictions"]} <= {"car", "bike"}
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded == {"model": "GroundingDinoForObjectDetection", "processor": "GroundingDinoProcessor",
                      "labels": ["car", "bike"]}


def test_owl_predicts_and_evaluates_zero_shot_but_does_not_train(one_process):
    found = finished(one_process["out"]["owl predict"])["json"]
    assert found["task"] == TASK and {p["label"] for p in found["predictions"]} <= {"bike", "car", "cat"}
    finished(one_process["out"]["owl eval"])
    record = json.loads((one_process["root"] / "eval" / "eval.json").read_text())
    assert (record["source"], record["classes"], record["images"]) == ("eval", ["car", "bike"], 3)
    assert {"val/mAP50-95", "val/mAP50"} <= set(record["metrics"])
    refused = one_process["out"]["owl train"]
    assert refused["code"] == 1
    [error] = one_process["refused"].of_kind("error")
    assert "no training loss" in error.message and "grounding-dino" in error.message


def test_the_catalog_refuses_training_a_predict_only_model(tmp_path):
    for name in ("google/owlvit-base-patch32", "google/owlv2-base-patch16-ensemble"):
        why = check_model(name, TASK)
        assert "predicts and evaluates only" in why and "IDEA-Research/grounding-dino-tiny" in why
    assert check_model("IDEA-Research/grounding-dino-base", TASK) is None
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "owlv2"}))
    assert "no training loss for OWLv2" in check_model(str(tmp_path), TASK)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "grounding-dino"}))
    assert check_model(str(tmp_path), TASK) is None


def test_epoch_0_is_never_the_best_epoch():
    index = [{"epoch": 0, "metrics": {"val/mAP50-95": 0.9}}, {"epoch": 1, "metrics": {"val/mAP50-95": 0.2}},
             {"epoch": 2, "metrics": {"val/mAP50-95": 0.3}}]
    assert best_epoch(index, TASK) == 2
    assert best_epoch(index[:1], TASK) is None
