"""Transformers zero-shot classification in the real env: a tiny CLIP (and a tiny SigLIP) built from configs with a
tokenizer made in code, trained 2 epochs as a bare child on five colour classes whose names become prompts; epoch 0
(the zero-shot baseline) reported and recorded before training and never the best; predict with any labels;
resume; the checkpoint in plain transformers.

Everything runs in one child process (``in_one_process``: each run through ``adapters.entrypoint.main``, what the
command line calls), so torch and transformers are imported once."""

from __future__ import annotations

import contextlib
import json
import math

import pytest

from adapters.evaluation.record import best_epoch
from tests.adapters.transformers.common import assert_resumed_best
from tests.hf_models import TINY_ZERO_SHOT

CLASSES = ["blue", "green", "magenta", "red", "yellow"]  # train/<colour>/: 2 images each, val/: 1 each
STEPS = 3  # optimizer steps per epoch: 10 images, 4 per batch

#: ``PLAIN_LOAD CHECKPOINT IMAGE``: the checkpoint in plain transformers: its classes, its processor, and the class
#: whose prompt scores the image highest.
PLAIN_LOAD = """
import json, sys
from PIL import Image
from transformers import AutoModelForZeroShotImageClassification, AutoProcessor
model = AutoModelForZeroShotImageClassification.from_pretrained(sys.argv[1])
processor = AutoProcessor.from_pretrained(sys.argv[1])
names = [model.config.id2label[i] for i in range(len(model.config.id2label))]
inputs = processor(images=Image.open(sys.argv[2]).convert("RGB"), text=[f"a photo of a {n}" for n in names],
                   padding=True, return_tensors="pt")
best = model(**inputs).logits_per_image[0].argmax().item()
print(json.dumps({"model": type(model).__name__, "processor": type(processor).__name__, "names": names,
                  "best": names[best]}))
"""

#: The two losses on known logits (2 images x 3 prompts).
LOSSES = """
import json, math
from types import SimpleNamespace
import torch
from adapters.transformers.tasks.zero_shot import ZeroShotClassificationTask
logits, labels = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1])
loss = ZeroShotClassificationTask.loss
print(json.dumps({"clip": loss(SimpleNamespace(sigmoid=False), logits, labels).item(),
                  "clip smoothed": loss(SimpleNamespace(sigmoid=False), logits, labels, 0.1).item(),
                  "siglip": loss(SimpleNamespace(sigmoid=True), logits, labels).item()}))
"""


#: ``WITHOUT_A_JOB JOB IMAGE...``: the job's ``model`` folder as a model without a job (``load_weights(None)``), its
#: top 2 for the images together with labels given, and its error without them.
WITHOUT_A_JOB = """
import json, sys
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
adapter = build_adapter(Job.from_file(sys.argv[1]), Reporter(None))
adapter.load_weights(None)
out = {"labels": [r["predictions"] for r in adapter.predict_batch(sys.argv[2:], 2, labels=["red", "green", "blue"])]}
try:
    adapter.predict(sys.argv[2])
except ValueError as exc:
    out["without labels"] = str(exc)
print(json.dumps(out))
"""

#: ``LAST_ONLY CHECKPOINT COPY``: the checkpoint copied to ``COPY`` (a new folder), its Trainer state naming a best
#: checkpoint that is gone (the old job's folder deleted, the last checkpoint kept).
LAST_ONLY = """
import json, shutil, sys
from pathlib import Path
copy = Path(sys.argv[2])
shutil.copytree(sys.argv[1], copy)
state = json.loads((copy / "trainer_state.json").read_text())
state["best_model_checkpoint"] = str(copy.parent / "deleted")
(copy / "trainer_state.json").write_text(json.dumps(state))
"""


def reporter_variables(child_env, address: str) -> dict[str, str]:
    return {k: v for k, v in child_env(address).items() if k.startswith("VISIONYARD_")}


@pytest.fixture(scope="module")
def run(hf_python, hf_job, child_env, reporter_server, make_imagefolder, in_one_process, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-zero-shot")
    models = root / "models"
    dataset = make_imagefolder(root / "data", classes=tuple(CLASSES), per_class=2, val_per_class=1)
    jobs = {name: hf_job.write(root / name, "zero_shot_classification", models / model, dataset, "imagefolder",
                               epochs=epochs, **over)
            for name, model, epochs, over in (
                ("clip", "clip", 2, {}), ("siglip", "siglip", 1, {}),
                ("resumed", "clip", 3, {"resume": str(root / "clip" / "checkpoints" / f"checkpoint-{2 * STEPS}")}),
                ("best gone", "clip", 3, {"resume": str(root / "kept" / f"checkpoint-{2 * STEPS}")}))}
    last = str(root / "clip" / "checkpoints" / f"checkpoint-{2 * STEPS}")
    red = str(dataset / "val" / "red" / "red_0.png")
    no_job = hf_job.write(root / "no-job", "zero_shot_classification", models / "clip", root / "no-data", "imagefolder")

    def predict(*more: str) -> dict:
        return {"argv": ["--spec", str(jobs["clip"]), "--predict", red, "--checkpoint", last, *more]}

    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(reporter_server()) for name in jobs}
        trains = {f"train {name}": {"argv": ["--spec", str(jobs[name])],
                                    "env": reporter_variables(child_env, servers[name].address)} for name in jobs}
        steps = {
            "build": {"script": TINY_ZERO_SHOT, "argv": [str(models)]},
            **{step: trains[step] for step in ("train clip", "train siglip", "train resumed")},
            "last only": {"script": LAST_ONLY, "argv": [last, str(root / "kept" / f"checkpoint-{2 * STEPS}")]},
            "train best gone": trains["train best gone"],
            "labels": predict("--labels", "red, blue,cat", "--top-k", "2"),
            "classes": predict(),
            "question": predict("--question", "what is it?"),
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last, red]},
            "losses": {"script": LOSSES},
            "eval": {"argv": ["--spec", str(jobs["clip"]), "--eval", "--checkpoint", last, "--out",
                              str(root / "eval")]},
            "without a job": {"script": WITHOUT_A_JOB, "argv": [str(no_job), red, str(dataset / "val" / "blue" /
                                                                                  "blue_0.png")]},
        }
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "servers": servers, "root": root}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_trains_reporting_the_zero_shot_baseline_as_epoch_0(run):
    finished(run["out"]["build"])
    finished(run["out"]["train clip"])
    server = run["servers"]["clip"]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [0, 1, 2]
    baseline = metrics[0].values
    assert {"val/loss", "val/accuracy", "val/top5", "val/f1"} <= set(baseline)  # top-5 from 5 classes on
    assert "train/loss" not in baseline and "lr" not in baseline and "val/model_preparation_time" not in baseline
    for m in metrics[1:]:
        assert {"train/loss", "val/loss", "val/accuracy", "val/top5", "val/f1", "lr"} <= set(m.values)
    assert metrics[-1].values["val/top5"] == 1.0  # 5 classes: the true one is always among them
    best = [c for c in server.of_kind("checkpoint") if c.kind == "best"]
    assert best and all(c.epoch >= 1 for c in best)  # epoch 0 has no checkpoint
    result = server.of_kind("result")[0]
    assert result.last_checkpoint.endswith(f"checkpoint-{2 * STEPS}")
    assert "\r" not in run["out"]["train clip"]["stderr"]


def test_epoch_0_has_its_validation_record_and_is_never_the_best(run):
    finished(run["out"]["train clip"])
    reported = {m.step: dict(m.values) for m in run["servers"]["clip"].of_kind("metrics")}
    results = run["root"] / "clip" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [
        (0, 0, "epoch-0000.json"), (1, STEPS, "epoch-0001.json"), (2, 2 * STEPS, "epoch-0002.json")]
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["epoch"]) == (
            "zero_shot_classification", "visionyard.classification", entry["epoch"])
        assert record["classes"] == record["confusion_labels"] == CLASSES
        matrix = record["confusion_matrix"]
        assert sum(map(sum, matrix)) == 5 and [sum(row) for row in matrix] == [1] * 5  # one val image per class
        assert sum(matrix[i][i] for i in range(5)) / 5 == reported[entry["epoch"]]["val/accuracy"]
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
    assert best_epoch(index, "zero_shot_classification") in (1, 2)
    # the baseline better than every trained epoch is still not the best epoch: no checkpoint holds it
    assert best_epoch([{"epoch": 0, "metrics": {"val/accuracy": 1.0}}, {"epoch": 1, "metrics": {"val/accuracy": 0.2}}],
                      "zero_shot_classification") == 1


def test_siglip_trains_with_its_sigmoid_loss(run):
    finished(run["out"]["train siglip"])
    metrics = run["servers"]["siglip"].of_kind("metrics")
    assert [m.step for m in metrics] == [0, 1]
    assert all(math.isfinite(m.values["val/loss"]) for m in metrics)
    losses = finished(run["out"]["losses"])["json"]
    logits, labels = [[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]], [0, 1]

    def softplus(x: float) -> float:  # -log sigmoid(-x)
        return math.log1p(math.exp(x))
    clip = [-(row[y] - math.log(sum(math.exp(v) for v in row))) for row, y in zip(logits, labels)]
    assert losses["clip"] == pytest.approx(sum(clip) / 2, rel=1e-5)
    smoothed = [0.9 * c + 0.1 * -sum(v - math.log(sum(math.exp(w) for w in row)) for v in row) / 3
                for c, row in zip(clip, logits)]
    assert losses["clip smoothed"] == pytest.approx(sum(smoothed) / 2, rel=1e-5)
    siglip = [sum(softplus(-v) if j == y else softplus(v) for j, v in enumerate(row)) for row, y in zip(logits, labels)]
    assert losses["siglip"] == pytest.approx(sum(siglip) / 2, rel=1e-5)  # summed over prompts, mean over images


def test_predict_chooses_among_the_labels_given(run):
    response = finished(run["out"]["labels"])["json"]
    assert response["task"] == "zero_shot_classification" and (response["width"], response["height"]) == (24, 24)
    assert len(response["predictions"]) == 2
    assert {p["label"] for p in response["predictions"]} <= {"red", "blue", "cat"}
    assert all(p["index"] == ["red", "blue", "cat"].index(p["label"]) for p in response["predictions"])
    assert response["predictions"][0]["score"] >= response["predictions"][1]["score"]


def test_predict_without_labels_uses_the_jobs_classes(run):
    response = finished(run["out"]["classes"])["json"]
    assert sorted(p["label"] for p in response["predictions"]) == CLASSES  # top-5 of 5
    assert sum(p["score"] for p in response["predictions"]) == pytest.approx(1.0, abs=1e-4)  # CLIP: a softmax


def test_a_question_is_refused_naming_it(run):
    done = run["out"]["question"]
    assert done["code"] == 1
    assert "zero_shot_classification takes no question at predict time" in done["stderr"]


def test_resume_continues_at_the_next_epoch_without_a_new_baseline(run):
    finished(run["out"]["train resumed"])
    server = run["servers"]["resumed"]
    assert [m.step for m in server.of_kind("metrics")] == [3]
    assert server.of_kind("result")[0].last_checkpoint.endswith(f"checkpoint-{3 * STEPS}")
    index = json.loads((run["root"] / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(3, 3 * STEPS)]


def test_resume_ends_with_the_best_of_both_runs(run):
    """The resumed run's best is the best trained epoch of the two runs: the one it resumed (its checkpoint copied into
    the resumed job's checkpoints) unless epoch 3 beats it."""
    finished(run["out"]["train clip"])
    finished(run["out"]["train resumed"])
    assert_resumed_best("zero_shot_classification", run["servers"]["clip"], run["servers"]["resumed"],
                        run["root"] / "resumed" / "checkpoints", STEPS)


def test_a_resumed_run_whose_best_is_gone_has_its_own_best(run):
    """Resumed from a last checkpoint whose run's best folder is gone, the run's best is its own first epoch, even
    when that scores below the old best: a best that no checkpoint holds is no best."""
    finished(run["out"]["last only"])
    finished(run["out"]["train best gone"])
    server = run["servers"]["best gone"]
    [best] = [c for c in server.of_kind("checkpoint") if c.kind == "best"]
    assert best.epoch == 3 and best.path == str(run["root"] / "best gone" / "checkpoints" / f"checkpoint-{3 * STEPS}")
    assert server.of_kind("result")[0].best_checkpoint == best.path


def test_the_checkpoint_loads_in_plain_transformers_with_the_jobs_classes(run):
    loaded = finished(run["out"]["plain transformers"])["json"]
    assert (loaded["model"], loaded["processor"]) == ("CLIPModel", "CLIPProcessor")
    assert loaded["names"] == CLASSES
    assert loaded["best"] in CLASSES


def test_a_model_without_a_job_chooses_among_the_labels_given(run):
    """A hub CLIP (here a raw folder) knows no classes: predict needs labels, which it ranks for each image."""
    found = finished(run["out"]["without a job"])["json"]
    assert [[p["label"] in ("red", "green", "blue") for p in predictions] for predictions in found["labels"]] == [
        [True, True], [True, True]]
    assert "needs labels to choose from" in found["without labels"]


def test_eval_scores_the_checkpoint_as_classification(run):
    finished(run["out"]["eval"])
    record = json.loads((run["root"] / "eval" / "eval.json").read_text())
    assert (record["source"], record["task"], record["classes"], record["images"]) == (
        "eval", "zero_shot_classification", CLASSES, 5)
    assert {"val/accuracy", "val/top5", "val/f1"} <= set(record["metrics"])
    reported = run["servers"]["clip"].of_kind("metrics")[-1].values  # the same model on the same val images
    assert record["metrics"]["val/accuracy"] == pytest.approx(reported["val/accuracy"])
