"""Transformers detection in the real env: a tiny D-FINE (YOLO dataset) and a tiny DETR (COCO
dataset with a crowd box and images of two shapes) saved to folders, trained, predicted with,
reloaded by plain transformers, each evaluation's validation record; the encode → targets →
compute_metrics path checked with perfect predictions; and the mAP function on hand-made cases (host)."""

from __future__ import annotations

import base64
import json

import pytest
from PIL import Image

from adapters.evaluation.detection import detection_results
from adapters.transformers.tasks.detection import detection_evaluation, detection_map
from tests.dataset_fixtures import add_edge_labels, ann, make_coco, make_yolo_task
from tests.hf_models import DETECTION_MODELS as TINY_MODELS

# The task's data and metric path without training: records → encode → collate → the targets as the
# Trainer hands them back (numpy) → compute_metrics with predictions equal to the targets.
ROUND_TRIP = """
import json, random, sys
import numpy as np, torch
from transformers import EvalPrediction
from transformers.trainer_pt_utils import nested_numpify
from adapters.datasets import read_dataset, to_pixels
from adapters.job import Job
from adapters.transformers.tasks.detection import DetectionTask, _ground_truth

job = Job.from_file(sys.argv[1])
spec = job.spec
dataset = read_dataset(spec.dataset.path, spec.dataset.format, spec.task)
task = DetectionTask(job)
task.class_names = list(dataset.class_names)
model, task.processor = task.build(spec.model, True, dataset)
model.eval()
out = {}

batch = task.collate([task.encode(r, train=False) for r in dataset.val])
targets = nested_numpify(batch["labels"])
out["sizes"] = [list(batch["pixel_values"].shape), list(batch["pixel_mask"].shape) if "pixel_mask" in batch else None,
                [int(m.sum()) for m in batch["pixel_mask"]] if "pixel_mask" in batch else None]
out["ground_truth"] = [
    [sorted([round(v, 2) for v in box] + [int(c), bool(k)] for box, c, k in
            zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist())),
     sorted([round(v, 2) for v in a.box] + [a.class_id, a.ignore] for a in to_pixels(r).annotations)]
    for r, t in ((r, _ground_truth(t, tuple(t["orig_size"]))) for r, t in zip(dataset.val, targets))]

with torch.no_grad():
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
logits, boxes = torch.full_like(outputs.logits, -10.0), torch.full_like(outputs.pred_boxes, 0.5)
if logits.shape[-1] > len(task.class_names):  # DETR: a "no object" class last
    logits[..., -1] = 10.0
for i, target in enumerate(batch["labels"]):
    n = len(target["class_labels"])
    for j, (c, box) in enumerate(zip(target["class_labels"], target["boxes"])):
        logits[i, j] = -10.0
        logits[i, j, c] = 10.0
        boxes[i, j] = box
    for j, (c, box) in enumerate(zip(target["crowd_class_labels"], target["crowd_boxes"]), start=n):
        logits[i, j] = -10.0
        logits[i, j, c] = 5.0  # a detection inside a crowd region: neither a hit nor a false positive
        boxes[i, j] = box * torch.tensor([1.0, 1.0, 0.5, 0.5])
out["perfect"] = task.compute_metrics(EvalPrediction(predictions=[(logits.numpy(), boxes.numpy())],
                                                     label_ids=[targets]))
out["perfect matrix"] = task.take_evaluation().confusion_matrix.tolist()
empty = torch.full_like(logits, -10.0)
if logits.shape[-1] > len(task.class_names):
    empty[..., -1] = 10.0
out["nothing"] = task.compute_metrics(EvalPrediction(predictions=[(empty.numpy(), boxes.numpy())],
                                                     label_ids=[targets]))

# Random flips: the box must follow the image (the colour at each box centre is its class's).
random.seed(0)
colours, flips = [], 0
for record in dataset.train:
    plain = task.encode(record, train=False)["labels"]["boxes"]
    for _ in range(4):
        item = task.encode(record, train=True)
        flips += not torch.allclose(item["labels"]["boxes"], plain)
        pixels, labels = item["pixel_values"], item["labels"]
        for c, (cx, cy, w, h) in zip(labels["class_labels"].tolist(), labels["boxes"].tolist()):
            x, y = int(cx * pixels.shape[2]), int(cy * pixels.shape[1])
            colours.append([c, *pixels[:, y, x].tolist()])
out["flips"], out["colours"] = flips, colours
print(json.dumps(out))
"""


#: What ``compute_metrics`` reports (each as ``val/<name>``).
REPORTED = ("precision", "recall", "mAP50", "mAP50-95", "mAP75")
PER_CLASS_KEYS = {"class", "AP50", "AP50-95", "precision", "recall", "support"}


@pytest.fixture(scope="module")
def tiny_models(hf_script, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfdet-models")
    hf_script(TINY_MODELS, root)
    return root


@pytest.fixture(scope="module")
def coco_dataset(tmp_path_factory):
    """Two 40x30 images and one 30x40 per split; a car, a bike, and a crowd of bikes."""
    root = tmp_path_factory.mktemp("hfdet-coco")
    anns = [ann(1, 1, 3, (10, 5, 20, 10)), ann(2, 1, 7, (2, 12, 8, 14)), ann(3, 2, 3, (20, 10, 15, 15)),
            ann(4, 2, 7, (0, 0, 12, 10), iscrowd=1), ann(5, 3, 7, (5, 20, 10, 12))]
    make_coco(root, {"train": anns, "val": anns},
              extra_images=[{"id": 3, "file_name": "tall.png", "width": 30, "height": 40}])
    for split in ("train", "val"):
        Image.new("RGB", (30, 40), (90, 90, 90)).save(root / split / "tall.png")
    return root


@pytest.fixture(scope="module")
def trained(tiny_models, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfdet")
    # with boxes rounded 5e-06 past each edge, a duplicate and a zero-area box: clipped and dropped
    dataset = add_edge_labels(make_yolo_task(root / "data", "object_detection", train=8, val=4, size=64),
                              "object_detection")
    job = hf_job.write(root / "job", "object_detection", tiny_models / "dfine", dataset, "yolo", epochs=2,
                       image_size=64)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset}


def _assert_epoch_metrics(server, epochs):
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == epochs
    for m in metrics:
        assert {"train/loss", "val/loss", "lr", *(f"val/{name}" for name in REPORTED)} <= set(m.values)
        assert all(0.0 <= m.values[f"val/{name}"] <= 1.0 for name in REPORTED)


def _assert_records(job_dir, server, steps: list[int], objects: dict[str, int]) -> None:
    """``results/val/``: a record per epoch with per-class COCO results for the dataset's classes and the
    matched confusion matrix, whose ground-truth rows count each val object (``objects``: per class, crowd
    regions not counted) once; its metrics are what the epoch reported."""
    reported = {m.step: dict(m.values) for m in server.of_kind("metrics")}
    results = job_dir / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(i + 1, step) for i, step in enumerate(steps)]
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["epoch"]) == ("object_detection", "visionyard.coco",
                                                                          entry["epoch"])
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        classes = record["classes"]
        assert sorted(classes) == sorted(objects) and record["confusion_labels"] == [*classes, "background"]
        rows = record["per_class"]
        assert [set(row) for row in rows] == [PER_CLASS_KEYS] * len(classes)
        assert [row["support"] for row in rows] == [objects[name] for name in classes]
        matrix = record["confusion_matrix"]
        assert len(matrix) == len(classes) + 1 and {len(row) for row in matrix} == {len(classes) + 1}
        assert [sum(row) for row in matrix[:-1]] == [objects[name] for name in classes]
        counted = [row["AP50-95"] for row in rows if row["support"]]
        assert record["metrics"]["val/mAP50-95"] == pytest.approx(sum(counted) / len(counted))


def _val_objects(dataset, fmt: str) -> dict[str, int]:
    """The val objects of each class that count (what the dataset layer reads, crowd regions not)."""
    from adapters.datasets import read_dataset

    data = read_dataset(dataset, fmt, "object_detection")
    counts = dict.fromkeys(data.class_names, 0)
    for record in data.val:
        for annotation in record.annotations:
            if annotation.box is not None and not annotation.ignore:
                counts[data.class_names[annotation.class_id]] += 1
    return counts


def test_dfine_trains_reports_map_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    assert "4 boxes clipped to the image" in done.stderr and "zero-area box" in done.stderr
    _assert_epoch_metrics(server, [1, 2])
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    result = server.of_kind("result")[0]
    assert result.last_checkpoint.endswith("checkpoint-4")  # 8 train images / 4 per batch, 2 epochs
    assert (trained["root"] / "job" / "checkpoints" / "checkpoint-4" / "preprocessor_config.json").is_file()


def test_each_dfine_evaluation_records_per_class_ap_and_the_matched_confusion_matrix(trained):
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    objects = _val_objects(trained["dataset"], "yolo")
    assert objects == {"red": 4, "blue": 4}  # 4 val images, a red and a blue rectangle each
    _assert_records(trained["root"] / "job", trained["server"], [2, 4], objects)


def test_the_checkpoint_loads_in_plain_transformers_and_predicts_boxes(trained, hf_script, hf_python, hf_job,
                                                                       child_env):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    out = hf_script("""
import sys
from transformers import AutoImageProcessor, AutoModelForObjectDetection
model = AutoModelForObjectDetection.from_pretrained(sys.argv[1])
AutoImageProcessor.from_pretrained(sys.argv[1])
print(type(model).__name__, sorted(model.config.id2label.values()))
""", last)
    assert out.strip() == "DFineForObjectDetection ['blue', 'red']"
    # A barely trained model scores low: threshold 0 so that there is something to look at.
    job = hf_job.write(trained["root"] / "predict", "object_detection", last, trained["dataset"], "yolo",
                       image_size=64, advanced={"detection": {"threshold": 0.0, "predict_threshold": 0.0}})
    image = trained["dataset"] / "images" / "val" / "0.png"
    done = hf_job.run(hf_python, child_env(), "--spec", job, "--predict", image, "--checkpoint", last, "--annotate")
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "object_detection" and (response["width"], response["height"]) == (64, 64)
    predictions = response["predictions"]
    assert 0 < len(predictions) <= 100
    assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)
    for p in predictions:
        assert p["label"] in ("red", "blue") and p["index"] in (0, 1) and len(p["box"]) == 4
        assert all(isinstance(v, float) for v in p["box"])
    assert base64.b64decode(response["image_png_b64"]).startswith(b"\x89PNG")


def test_detr_trains_on_coco_with_crowd_boxes_and_mixed_shapes(tiny_models, coco_dataset, hf_python, hf_job,
                                                               child_env, reporter_server, tmp_path):
    job = hf_job.write(tmp_path / "job", "object_detection", tiny_models / "detr", coco_dataset, "coco")
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    _assert_epoch_metrics(server, [1])
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-1")
    objects = _val_objects(coco_dataset, "coco")
    assert sum(objects.values()) == 4  # 5 boxes, one of them a crowd region
    _assert_records(tmp_path / "job", server, [1], objects)


def test_targets_round_trip_to_perfect_map(tiny_models, coco_dataset, hf_script, hf_job, tmp_path):
    """COCO + DETR: boxes back in pixels (non-square images, so height and width can't swap),
    crowd boxes as crowd, padding to the batch's largest image with a pixel mask."""
    job = hf_job.write(tmp_path / "coco", "object_detection", tiny_models / "detr", coco_dataset, "coco")
    out = json.loads(hf_script(ROUND_TRIP, job).strip().splitlines()[-1])
    for got, want in out["ground_truth"]:
        assert got == want
    assert any(k for image in out["ground_truth"] for *_, k in image[1])  # the crowd box is there
    assert out["sizes"] == [[3, 3, 64, 64], [3, 64, 64], [48 * 64, 48 * 64, 64 * 48]]
    assert out["perfect"] == pytest.approx(dict.fromkeys(REPORTED, 1.0))
    assert out["nothing"] == dict.fromkeys(REPORTED, 0.0)
    # the detection on the crowd region is no false positive in the matrix either; the background row and
    # column stay empty, and the objects (all but the crowd box) are on the diagonal
    matrix = out["perfect matrix"]
    assert sum(map(sum, matrix)) == sum(matrix[i][i] for i in range(len(matrix))) == 4


def test_flipped_boxes_follow_the_image(tiny_models, hf_script, hf_job, tmp_path):
    """YOLO + D-FINE: normalized labels, fixed-size processor; random flips move boxes with pixels."""
    dataset = make_yolo_task(tmp_path / "data", "object_detection", train=4, val=2, size=64)
    job = hf_job.write(tmp_path / "yolo", "object_detection", tiny_models / "dfine", dataset, "yolo",
                       image_size=64)
    out = json.loads(hf_script(ROUND_TRIP, job).strip().splitlines()[-1])
    assert out["sizes"][0] == [2, 3, 64, 64] and out["sizes"][1] is None
    assert out["perfect"] == pytest.approx(dict.fromkeys(REPORTED, 1.0))
    assert sum(map(sum, out["perfect matrix"])) == sum(out["perfect matrix"][i][i] for i in range(3)) == 4
    assert 0 < out["flips"] < 16  # some of the 4 x 4 encodings flipped, some not
    for class_id, r, g, b in out["colours"]:  # red (0) is drawn first, so only blue (1) is never covered
        if class_id == 1:
            assert b > 0.6 and r < 0.3
    assert any(class_id == 0 and r > 0.6 for class_id, r, g, b in out["colours"])


# ---------------------------------------------------------------- the mAP function (host)

TRUTH = [{"boxes": [[10, 10, 50, 50]], "labels": [0]}]


def _found(boxes, labels, scores=None):
    return [{"boxes": boxes, "labels": labels, "scores": scores or [0.9] * len(labels)}]


KNOWN_CASES = [
    pytest.param(TRUTH, _found([[10, 10, 50, 50]], [0]), {"mAP50": 1.0, "mAP50-95": 1.0, "mAP75": 1.0},
                 id="perfect"),
    pytest.param(TRUTH, _found([], []), {"mAP50": 0.0, "mAP50-95": 0.0, "mAP75": 0.0}, id="nothing-found"),
    # shifted 9 px: IoU 1240 / 1960 = 0.63 -> a hit at 0.50, 0.55, 0.60 of the ten thresholds
    pytest.param(TRUTH, _found([[19, 10, 59, 50]], [0]), {"mAP50": 1.0, "mAP50-95": 0.3, "mAP75": 0.0},
                 id="iou-0.63"),
    pytest.param(TRUTH, _found([[10, 10, 50, 50]], [1]), {"mAP50": 0.0, "mAP50-95": 0.0, "mAP75": 0.0},
                 id="wrong-class"),
    # a more confident false positive ranked first: precision 1/2 at the only recall level
    pytest.param(TRUTH, _found([[60, 60, 90, 90], [10, 10, 50, 50]], [0, 0], [0.95, 0.9]),
                 {"mAP50": pytest.approx(0.5, abs=0.01), "mAP50-95": pytest.approx(0.5, abs=0.01),
                  "mAP75": pytest.approx(0.5, abs=0.01)}, id="false-positive-first"),
    # the same box on a crowd region is ignored
    pytest.param([{"boxes": [[10, 10, 50, 50], [60, 60, 90, 90]], "labels": [0, 0], "iscrowd": [False, True]}],
                 _found([[61, 61, 89, 89], [10, 10, 50, 50]], [0, 0], [0.95, 0.9]),
                 {"mAP50": 1.0, "mAP50-95": 1.0, "mAP75": 1.0}, id="crowd-ignored"),
    pytest.param([{"boxes": [], "labels": []}], _found([[1, 1, 5, 5]], [0]),
                 {"mAP50": 0.0, "mAP50-95": 0.0, "mAP75": 0.0}, id="no-ground-truth"),
]


@pytest.mark.parametrize(("truth", "found", "expected"), KNOWN_CASES)
def test_detection_map_on_known_cases(truth, found, expected):
    got = detection_map(truth, found)
    assert got == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in expected.items()}


@pytest.mark.parametrize(("truth", "found", "expected"), KNOWN_CASES)
def test_the_evaluation_is_the_shared_coco_evaluators_plus_map75(truth, found, expected):
    """``compute_metrics``' one COCOeval gives what ``adapters.evaluation.detection`` gives every framework
    (metrics, per-class rows, matched matrix), and mAP75 as ``detection_map``."""
    names = ["a", "b"]
    ours, shared = detection_evaluation(truth, found, names), detection_results(truth, found, names)
    assert ours.metrics == {**shared.metrics, "val/mAP75": pytest.approx(expected["mAP75"])}
    assert (ours.per_class, ours.classes, ours.confusion_labels, ours.evaluator) == (
        shared.per_class, shared.classes, shared.confusion_labels, shared.evaluator)
    assert ours.confusion_matrix.tolist() == shared.confusion_matrix.tolist()
    assert ours.metrics["val/mAP50-95"] == pytest.approx(expected["mAP50-95"])


def test_detection_map_averages_over_images_and_classes():
    truth = [{"boxes": [[0, 0, 10, 10]], "labels": [0]}, {"boxes": [[0, 0, 10, 10]], "labels": [1]}]
    found = [{"boxes": [[0, 0, 10, 10]], "labels": [0], "scores": [0.8]}, {"boxes": [], "labels": [], "scores": []}]
    assert detection_map(truth, found)["mAP50"] == pytest.approx(0.5)  # class 0 found, class 1 missed
    with pytest.raises(ValueError, match="1 images of ground truth but 2"):
        detection_map(truth[:1], found)


def test_a_diverging_run_stops_with_the_reason(tiny_models, hf_python, hf_job, child_env, reporter_server, tmp_path):
    """Blank images give D-FINE NaN gradients: the job says so instead of failing later on NaN boxes."""
    anns = [ann(1, 1, 3, (10, 5, 20, 10)), ann(2, 2, 7, (2, 12, 8, 14))]
    data = make_coco(tmp_path / "blank", {"train": anns, "val": anns}, size=(64, 48))
    job = hf_job.write(tmp_path / "job", "object_detection", tiny_models / "dfine", data, "coco", image_size=64,
                       training={"epochs": 1, "batch_size": 2, "learning_rate": 1e-4, "device": "cpu",
                                 "num_workers": 0, "seed": 0})
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 1
    [error] = server.of_kind("error")
    assert error.type == "FloatingPointError" and "training diverged in epoch 1" in error.message
    assert "learning_rate" in error.message


def test_an_onnx_export_of_detr_takes_its_pixel_mask_and_matches_pytorch(tiny_models, coco_dataset, hf_python,
                                                                        hf_job, child_env, exports, tmp_path):
    """DETR keeps each image's aspect ratio and pads with a pixel mask: both inputs exported, boxes and logits
    within tolerance on images of two shapes, free height and width."""
    job = hf_job.write(tmp_path / "job", "object_detection", tiny_models / "detr", coco_dataset, "coco")
    found = exports(hf_python, child_env(HF_HUB_OFFLINE="1"),
                    {"detr": {"job": str(job), "checkpoint": str(tiny_models / "detr"), "out": str(tmp_path / "x"),
                              "dynamic": True}})["detr"]
    assert found["code"] == 0, found
    report = found["report"]
    check = report["validation"]
    assert check["passed"] and check["agreement_kind"] == "boxes" and check["images"] == 3
    assert sorted(report["inputs"]) == ["pixel_mask", "pixel_values"] and report["outputs"] == ["logits", "pred_boxes"]
    assert set(check["outputs"]) == {"logits", "pred_boxes"}
    assert all(v["max_abs_diff"] <= 1e-3 for v in check["outputs"].values())



#: Run in the transformers env: ``python -c EVAL_PARITY JOB BEST RELABELLED_JOB OUT``. ``--eval`` (through
#: ``adapters.entrypoint.main``) of the best checkpoint on the job's own split; then on a copy of the val images
#: labelled with the checkpoint's own 4 most confident boxes, moved right by 0, 1, 2 and 3 px (so that AP lies
#: between 0 and 1 whatever the training made of the model), next to what the training-time evaluation (the
#: task's Trainer ``evaluate`` with its ``compute_metrics``, as every epoch runs it) gives there. One process.
EVAL_PARITY = """
import contextlib, io, json, shutil, sys
from pathlib import Path
from adapters.entrypoint import build_adapter, main
from adapters.job import Job
from adapters.reporter import Reporter
from adapters.transformers.tasks.base import RecordDataset

job_path, best, relabelled_job, out = sys.argv[1:5]
found = {}


def run_eval(name, *argv):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["--eval", "--checkpoint", best, "--batch", "3", "--out", str(Path(out) / name), *argv])
    found[name] = {"code": code, "lines": [json.loads(line) for line in stdout.getvalue().splitlines()]}


run_eval("own", "--spec", job_path)

job = Job.from_file(relabelled_job)
source, target = Path(Job.from_file(job_path).spec.dataset.path), Path(job.spec.dataset.path)
for split in ("train", "val"):
    (target / "images" / split).mkdir(parents=True)
    (target / "labels" / split).mkdir(parents=True)
shutil.copy(source / "data.yaml", target / "data.yaml")
adapter = build_adapter(job, Reporter(None))
adapter.load_checkpoint(best)
adapter.prepare_evaluation()
images = sorted((source / "images" / "val").glob("*.png"))
for image, result in zip(images, adapter.predict_batch([str(p) for p in images], 5, False)):
    lines = []
    for shift, p in enumerate(result["predictions"][:4]):
        x1, y1, x2, y2 = p["box"]
        x1, y1, x2, y2 = max(0, x1 + shift), max(0, y1), min(64, x2 + shift), min(64, y2)
        if x2 - x1 >= 2 and y2 - y1 >= 2:
            lines.append(f"{p['index']} {(x1 + x2) / 128:.6f} {(y1 + y2) / 128:.6f} {(x2 - x1) / 64:.6f} "
                         f"{(y2 - y1) / 64:.6f}")
    for split in ("train", "val"):
        shutil.copy(image, target / "images" / split / image.name)
        (target / "labels" / split / f"{image.stem}.txt").write_text("\\n".join(lines) + "\\n")

training = build_adapter(job, Reporter(None))
training.prepare_dataset()
training.load_checkpoint(best)
trainer = training.task.trainer_class()(
    model=training.model, args=training.training_arguments(),
    eval_dataset=RecordDataset(training.dataset.val, training.task, train=False), data_collator=training.task.collate,
    compute_metrics=training.task.compute_metrics, processing_class=training.processor)
metrics = trainer.evaluate()
evaluation = training.task.take_evaluation()
found["training"] = {"metrics": {k: v for k, v in evaluation.metrics.items()}, "per_class": evaluation.per_class,
                     "confusion_matrix": evaluation.confusion_matrix.tolist()}
run_eval("relabelled", "--spec", relabelled_job, "--dataset", str(target), "--format", "yolo")
print(json.dumps(found))
"""


def _assert_same_evaluation(written: dict, recorded: dict) -> None:
    """The metrics ``eval`` gives (the box metrics and ``val/mAP75``; training adds ``val/loss``), the
    per-class rows and the matched confusion matrix equal the training-time evaluation's (to float rounding)."""
    assert set(written["metrics"]) == {"val/precision", "val/recall", "val/mAP50", "val/mAP50-95", "val/mAP75"}
    assert written["metrics"] == pytest.approx({k: recorded["metrics"][k] for k in written["metrics"]}, abs=1e-9)
    assert [row["class"] for row in written["per_class"]] == [row["class"] for row in recorded["per_class"]]
    for got, want in zip(written["per_class"], recorded["per_class"], strict=True):
        assert got == pytest.approx(want, abs=1e-9)
    assert written["confusion_matrix"] == recorded["confusion_matrix"]


def test_eval_gives_the_coco_results_of_the_training_time_evaluation(trained, hf_script, hf_job, tmp_path):
    """``--eval`` of the best D-FINE checkpoint goes through the predict path at the evaluation's threshold
    (``detection.threshold``, every box kept) and gives what the training-time evaluation gives: on the job's
    own split, what that epoch recorded; on boxes the model nearly finds, the same non-trivial AP."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    server, job_dir = trained["server"], trained["root"] / "job"
    best = server.of_kind("result")[0].best_checkpoint
    epoch = max(c.epoch for c in server.of_kind("checkpoint") if c.kind == "best" and c.path == best)
    relabelled = hf_job.write(tmp_path / "relabelled-job", "object_detection", best, tmp_path / "relabelled", "yolo",
                              image_size=64, advanced={"detection": {"threshold": 0.0}})
    found = json.loads(hf_script(EVAL_PARITY, job_dir / "job.json", best, relabelled, tmp_path / "out")
                       .strip().splitlines()[-1])

    own = found["own"]
    assert own["code"] == 0 and own["lines"][:-1] == [{"done": 3, "total": 4}, {"done": 4, "total": 4}]
    written = json.loads((tmp_path / "out" / "own" / "eval.json").read_text())
    assert own["lines"][-1] == {"eval": str(tmp_path / "out" / "own" / "eval.json"), "metrics": written["metrics"]}
    _assert_same_evaluation(written, json.loads((job_dir / "results" / "val" / f"epoch-{epoch:04d}.json").read_text()))
    assert (written["source"], written["evaluator"], written["split"], written["images"], written["checkpoint"]) == (
        "eval", "visionyard.coco", "val", 4, best)
    assert [set(row) for row in written["per_image"]] == [{"image", "predicted", "truth"}] * 4
    assert [len(row["truth"]) for row in written["per_image"]] == [2] * 4  # a red and a blue box per val image

    assert found["relabelled"]["code"] == 0
    relabelled_eval = json.loads((tmp_path / "out" / "relabelled" / "eval.json").read_text())
    assert 0 < found["training"]["metrics"]["val/mAP50-95"] < 1, found["training"]  # something to agree on
    _assert_same_evaluation(relabelled_eval, found["training"])
