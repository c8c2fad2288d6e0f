"""``eval`` of depth estimation, image captioning, visual QA and open-vocabulary detection in the real env: a tiny
model of each (built from a config) trained one epoch as a bare child, then its checkpoint evaluated on the job's
own val split by the eval child (``--eval``: the predict path, scored by ``adapters.evaluation.scoring``). The
evaluation scores the very model and images the epoch's validation scored, so its metrics, and what it lists per
image, equal what training recorded for that epoch (``results/val/epoch-0001.json``). Zero-shot classification's
twin check is in ``test_hf_zero_shot.py``.

Everything runs in one child process (``in_one_process``), so torch and transformers are imported once."""

from __future__ import annotations

import json
import math

import pytest

from tests.dataset_fixtures import make_captions_dataset, make_coco_shapes, make_depth_dataset, make_vqa_dataset
from tests.hf_models import BUILD_EACH, DEPTH_MODELS, TINY_CAPTIONERS, TINY_VQA, ZERO_SHOT_DETECTION_MODELS

#: task → (its model folder under the built models, the dataset's format, optimizer steps of its epoch, spec extras)
JOBS = {
    "depth_estimation": ("depth/dpt", "depth", 2, {"image_size": None}),  # 8 images, 4 a batch
    "image_captioning": ("captions/git", "captions", 2, {"training": {"learning_rate": 3e-3}}),  # 8 images
    "visual_qa": ("vqa/blip", "vqa", 3, {}),  # 12 questions
    "zero_shot_detection": ("detection/grounding_dino", "coco", 2, {"image_size": 64}),  # 6 images
}
#: What each task's per-image rows say about a sample besides its scores: the same in training and eval.
SAMPLE_KEYS = {"depth_estimation": ("image", "pixels"), "image_captioning": ("image", "prediction", "references"),
               "visual_qa": ("image", "question", "prediction", "answers")}


@pytest.fixture(scope="module")
def evaluated(hf_python, hf_job, child_env, reporter_server, in_one_process, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-eval-tasks")
    models = root / "models"
    datasets = {"depth_estimation": make_depth_dataset(root / "depth-data"),
                "image_captioning": make_captions_dataset(root / "caption-data"),
                "visual_qa": make_vqa_dataset(root / "vqa-data"),
                "zero_shot_detection": make_coco_shapes(root / "coco-data", train=6, val=3, size=64)}
    jobs = {}
    for task, (model, fmt, _, over) in JOBS.items():
        training = {"batch_size": 4, "learning_rate": 1e-3, "device": "cpu", "num_workers": 0, "seed": 0, "epochs": 1,
                    **over.get("training", {})}
        extras = {key: value for key, value in over.items() if key != "training"}
        jobs[task] = hf_job.write(root / task, task, models / model, datasets[task], fmt, training=training, **extras)
    build = [[DEPTH_MODELS, str(models / "depth")], [TINY_CAPTIONERS, str(models / "captions")],
             [TINY_VQA, str(models / "vqa")], [ZERO_SHOT_DETECTION_MODELS, str(models / "detection")]]
    with reporter_server() as server:
        reporting = {k: v for k, v in child_env(server.address).items() if k.startswith("VISIONYARD_")}
        steps = {"build": {"script": BUILD_EACH, "argv": [json.dumps(build)]}}
        for task, job in jobs.items():
            checkpoint = root / task / "checkpoints" / f"checkpoint-{JOBS[task][2]}"
            steps[f"train {task}"] = {"argv": ["--spec", str(job)], "env": reporting}
            steps[f"eval {task}"] = {"argv": ["--spec", str(job), "--eval", "--checkpoint", str(checkpoint), "--out",
                                              str(root / task / "eval")]}
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "root": root}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def records(evaluated, task: str) -> tuple[dict, dict]:
    """(the training's validation record of epoch 1, the eval's record) of ``task``'s job."""
    finished(evaluated["out"]["build"])
    finished(evaluated["out"][f"train {task}"])
    finished(evaluated["out"][f"eval {task}"])
    folder = evaluated["root"] / task
    return (json.loads((folder / "results" / "val" / "epoch-0001.json").read_text()),
            json.loads((folder / "eval" / "eval.json").read_text()))


def same_metrics(trained: dict, evaluation: dict) -> None:
    """Every metric the eval reports is the epoch's (which also has ``val/loss``, which eval does not take)."""
    metrics = evaluation["metrics"]
    assert metrics and set(metrics) <= set(trained["metrics"]) and set(trained["metrics"]) - set(metrics) <= {
        "val/loss", "val/mAP75"}
    for name, value in metrics.items():
        expected = trained["metrics"][name]
        assert value is not None and math.isclose(value, expected, rel_tol=1e-5, abs_tol=1e-7), (name, value, expected)


@pytest.mark.parametrize("task", ["depth_estimation", "image_captioning", "visual_qa"])
def test_eval_of_the_checkpoint_equals_its_epochs_validation(evaluated, task):
    trained, evaluation = records(evaluated, task)
    assert (evaluation["source"], evaluation["task"], evaluation["evaluator"], evaluation["split"]) == (
        "eval", task, trained["evaluator"], "val")
    same_metrics(trained, evaluation)
    keys = SAMPLE_KEYS[task]

    def samples(record: dict) -> list:
        return sorted((json.dumps([row[k] for k in keys]) for row in record["per_image"]))
    assert len(evaluation["per_image"]) == evaluation["images"] and samples(evaluation) == samples(trained)
    scored = {"depth_estimation": "abs_rel", "image_captioning": "cider", "visual_qa": "score"}[task]
    by_sample = {json.dumps([row[k] for k in keys]): row[scored] for row in trained["per_image"]}
    for row in evaluation["per_image"]:
        assert row[scored] == pytest.approx(by_sample[json.dumps([row[k] for k in keys])], rel=1e-5, abs=1e-7)


def test_depth_eval_scores_metres_of_a_trained_model(evaluated):
    _, evaluation = records(evaluated, "depth_estimation")
    assert evaluation["metrics"]["val/abs_rel"] > 0 and 0 <= evaluation["metrics"]["val/delta1"] <= 1
    assert evaluation["images"] == 4 and all(row["pixels"] == 40 * 32 - 9 for row in evaluation["per_image"])


def test_open_vocabulary_detection_eval_looks_for_the_category_names_as_training_did(evaluated):
    trained, evaluation = records(evaluated, "zero_shot_detection")
    assert evaluation["classes"] == trained["classes"] == ["car", "bike"]
    same_metrics(trained, evaluation)
    assert evaluation["confusion_matrix"] == trained["confusion_matrix"]
    assert [(r["class"], r["support"]) for r in evaluation["per_class"]] == [
        (r["class"], r["support"]) for r in trained["per_class"]]
