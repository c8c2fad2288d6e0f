"""Transformers semantic segmentation in the real env: tiny SegFormer, Mask2Former and EoMT saved to
folders, trained on drawn rectangles, predicted with, reloaded by plain transformers, each evaluation's
validation record; and the metric functions on hand-made cases."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from pathlib import Path
from PIL import Image

from adapters.evaluation.confusion import confusion_matrix
from adapters.evaluation.segmentation import segmentation_metrics
from tests.dataset_fixtures import MASK_CLASSES as CLASSES
from tests.dataset_fixtures import MASK_SIZE, make_masks
from tests.hf_models import SEGMENTATION_MODELS as MODELS

WIDTH, HEIGHT = MASK_SIZE  # not square: the predicted mask must come back at the image's own size


def _decode_png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


@pytest.fixture(scope="module")
def setup(hf_script, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfseg")
    hf_script(MODELS, root)
    return {"root": root, "dataset": make_masks(root / "data")}


@pytest.fixture(scope="module")
def trained(setup, hf_python, hf_job, child_env, reporter_server):
    root = setup["root"]
    job = hf_job.write(root / "job", "semantic_segmentation", root / "segformer", setup["dataset"], "masks", epochs=2)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {**setup, "done": done, "server": server}


def test_segformer_trains_reports_miou_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m.values) - {"model/parameters"} == {"train/loss", "val/loss", "val/mIoU", "val/pixel_accuracy",
                                                        "lr", "train/images_per_s"}
        assert 0.0 <= m.values["val/mIoU"] <= 1.0 and 0.0 <= m.values["val/pixel_accuracy"] <= 1.0
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    last = server.of_kind("result")[0].last_checkpoint
    assert last.endswith("checkpoint-6")  # 12 train images / 4 per batch, 2 epochs
    assert (trained["root"] / "job" / "checkpoints" / "checkpoint-6" / "preprocessor_config.json").is_file()
    assert "\r" not in done.stdout + done.stderr


def _records(job_dir, server) -> list[dict]:
    """Each validation's record, checked against what its epoch reported: the ``val/*`` metrics, mIoU the
    mean of the classes' IoUs (those that have one), a per-class row for each class."""
    reported = {m.step: dict(m.values) for m in server.of_kind("metrics")}
    results = job_dir / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [e["epoch"] for e in index] == sorted(reported)
    records = []
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["epoch"]) == ("semantic_segmentation",
                                                                          "visionyard.segmentation", entry["epoch"])
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        assert record["classes"] == record["confusion_labels"] == CLASSES
        rows = record["per_class"]
        assert [row["class"] for row in rows] == CLASSES
        assert [set(row) for row in rows] == [{"class", "iou", "accuracy", "support"}] * len(CLASSES)
        assert [row["support"] for row in rows] == [sum(row) for row in record["confusion_matrix"]]
        present = [row["iou"] for row in rows if row["iou"] is not None]
        assert record["metrics"]["val/mIoU"] == pytest.approx(sum(present) / len(present))
        records.append({**record, "step": entry["step"]})
    return records


def test_each_evaluation_records_per_class_iou_and_the_pixel_confusion_matrix(trained):
    """``results/val/``: a record per epoch whose pixel matrix counts every val pixel but the ignored ones."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    records = _records(trained["root"] / "job", trained["server"])
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 3), (2, 6)]
    for record in records:
        matrix = np.array(record["confusion_matrix"])
        # 4 val masks at 32 x 32 (the labels' size), less each one's ignored corner: 2 x 2 px of 48 x 40, 2 px
        # after the processor's nearest-neighbour resize
        assert matrix.sum() == 4 * (32 * 32 - 2)
        assert np.trace(matrix) / matrix.sum() == pytest.approx(record["metrics"]["val/pixel_accuracy"])
    assert not (trained["root"] / "job" / "results" / "per_class_iou.json").exists()


def test_predict_gives_a_class_mask_of_the_image_size_and_class_shares(trained, hf_python, hf_job, child_env):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    image = trained["dataset"] / "val" / "images" / "0.png"
    done = hf_job.run(hf_python, child_env(), "--spec", trained["root"] / "job" / "job.json", "--predict", image,
                      "--checkpoint", last, "--annotate")
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "semantic_segmentation" and (response["width"], response["height"]) == (WIDTH, HEIGHT)
    mask = _decode_png(response["mask_png_b64"])
    assert mask.mode == "L" and mask.size == (WIDTH, HEIGHT)
    ids, counts = np.unique(np.asarray(mask), return_counts=True)
    assert set(ids.tolist()) <= {0, 1, 2}
    predictions = response["predictions"]
    assert [p["index"] for p in predictions] == [int(i) for i in ids[np.argsort(-counts, kind="stable")]]
    assert {p["label"] for p in predictions} <= set(CLASSES)
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0)
    assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)
    overlay = _decode_png(response["image_png_b64"])
    assert overlay.mode == "RGB" and overlay.size == (WIDTH, HEIGHT)


def test_the_checkpoint_loads_in_plain_transformers(trained, hf_script):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    out = hf_script("""
import sys, torch
from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
model = AutoModelForSemanticSegmentation.from_pretrained(sys.argv[1])
processor = AutoImageProcessor.from_pretrained(sys.argv[1])
logits = model(pixel_values=torch.zeros(1, 3, 32, 32)).logits
print([model.config.id2label[i] for i in range(3)], processor.size["height"], processor.do_reduce_labels,
      tuple(logits.shape))
""", last)
    assert out.strip() == "['background', 'square', 'bar'] 32 False (1, 3, 8, 8)"


@pytest.mark.parametrize("architecture", ["mask2former", "eomt"])
def test_universal_models_train_from_masks_and_predict(architecture, setup, hf_python, hf_job, child_env,
                                                       reporter_server):
    root = setup["root"]
    job = hf_job.write(root / f"job-{architecture}", "semantic_segmentation", root / architecture, setup["dataset"],
                       "masks", epochs=1, image_size=64)  # EoMT keeps its own 32 px (its position embeddings)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    [metrics] = server.of_kind("metrics")
    assert {"train/loss", "val/loss", "val/mIoU", "val/pixel_accuracy"} <= set(metrics.values)
    assert 0.0 <= metrics.values["val/mIoU"] <= 1.0
    [record] = _records(root / f"job-{architecture}", server)
    assert record["epoch"] == 1 and sum(map(sum, record["confusion_matrix"])) > 0
    last = server.of_kind("result")[0].last_checkpoint
    done = hf_job.run(hf_python, child_env(), "--spec", job, "--predict", setup["dataset"] / "val" / "images" / "1.png",
                      "--checkpoint", last)
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    mask = _decode_png(response["mask_png_b64"])
    assert mask.size == (WIDTH, HEIGHT) and set(np.unique(np.asarray(mask)).tolist()) <= {0, 1, 2}
    assert "image_png_b64" not in response  # only with --annotate


def test_universal_targets_are_painted_back_with_ignored_pixels(hf_script):
    """The mIoU of Mask2Former/EoMT compares against the class map rebuilt from mask_labels/class_labels."""
    out = hf_script("""
import torch, types
from adapters.transformers.tasks.segmentation import SegmentationTask
task = SegmentationTask(types.SimpleNamespace(spec=None))
masks = torch.zeros(2, 2, 3)
masks[0, 0, :2] = 1; masks[1, 1, :] = 1   # class 2 on the top-left two pixels, class 0 on the bottom row
target = task.target_map({"pixel_values": torch.zeros(1, 3, 2, 3), "mask_labels": [masks],
                          "class_labels": [torch.tensor([2, 0])]})
print(target.tolist())
""")
    assert out.strip() == "[[[2, 2, 255], [0, 0, 0]]]"


# ---------------------------------------------------------------- metric functions (host, numpy)


def test_confusion_matrix_counts_true_by_predicted_and_skips_ignored_pixels():
    target = np.array([[0, 0, 1, 1], [255, 2, 2, 2]])
    predicted = np.array([[0, 1, 1, 1], [0, 2, 2, 0]])
    assert confusion_matrix(predicted, target, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]


@pytest.mark.parametrize(("predicted", "target", "classes", "expected", "iou"), [
    # IoU 1/3, 2/3, 2/3; 5 of 7 counted pixels right (the 255 one is not counted)
    ([[0, 1, 1, 1], [0, 2, 2, 0]], [[0, 0, 1, 1], [255, 2, 2, 2]], 3,
     {"mIoU": pytest.approx(5 / 9), "pixel_accuracy": pytest.approx(5 / 7)}, [1 / 3, 2 / 3, 2 / 3]),
    # a 4th class neither present nor predicted has no IoU and stays out of the mean
    ([[0, 1, 1, 1], [0, 2, 2, 0]], [[0, 0, 1, 1], [255, 2, 2, 2]], 4,
     {"mIoU": pytest.approx(5 / 9), "pixel_accuracy": pytest.approx(5 / 7)}, [1 / 3, 2 / 3, 2 / 3, None]),
    # a class only predicted counts as IoU 0
    ([[0, 0, 1, 1]], [[0, 0, 0, 0]], 2, {"mIoU": 0.25, "pixel_accuracy": 0.5}, [0.5, 0.0]),
    ([[1, 0], [1, 1]], [[1, 0], [1, 1]], 2, {"mIoU": 1.0, "pixel_accuracy": 1.0}, [1.0, 1.0]),
    # nothing to score
    ([[0, 1]], [[255, 255]], 2, {"mIoU": 0.0, "pixel_accuracy": 0.0}, [None, None]),
])
def test_segmentation_metrics_on_known_cases(predicted, target, classes, expected, iou):
    metrics, per_class = segmentation_metrics(confusion_matrix(np.array(predicted), np.array(target), classes))
    assert metrics == expected
    assert [None if np.isnan(v) else pytest.approx(v) for v in per_class] == iou


def test_confusion_matrices_of_batches_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    target, predicted = rng.integers(0, 3, (4, 8, 8)), rng.integers(0, 3, (4, 8, 8))
    target[0, :2] = 255
    whole = confusion_matrix(predicted, target, 3)
    assert (confusion_matrix(predicted[:2], target[:2], 3) + confusion_matrix(predicted[2:], target[2:], 3)
            == whole).all()
    assert whole.sum() == 4 * 64 - 16


def test_onnx_exports_of_semantic_and_universal_models_match_pytorch(trained, setup, hf_python, hf_job, child_env,
                                                                     exports, tmp_path):
    """SegFormer (logits, the job's validation images) and EoMT (mask queries, images given: squares, as its
    untuned processor needs): each export's class maps agree with PyTorch's pixel for pixel."""
    assert trained["done"].returncode == 0
    root = setup["root"]
    eomt = hf_job.write(tmp_path / "eomt", "semantic_segmentation", root / "eomt", setup["dataset"], "masks")
    squares = tmp_path / "squares"
    squares.mkdir()
    for i, colour in enumerate(((200, 30, 30), (30, 200, 30), (40, 40, 220), (90, 90, 90))):
        Image.new("RGB", (32, 32), colour).save(squares / f"{i}.png")
    cases = {"segformer": {"job": str(root / "job" / "job.json"),
                           "checkpoint": str(root / "job" / "checkpoints" / "checkpoint-6"), "out": str(tmp_path / "s")},
             "eomt": {"job": str(eomt), "checkpoint": str(root / "eomt"), "out": str(tmp_path / "e"), "count": 3,
                      "images": [str(squares)]}}
    found = exports(hf_python, child_env(HF_HUB_OFFLINE="1"), cases)
    for name, outputs in (("segformer", ["logits"]), ("eomt", ["class_queries_logits", "masks_queries_logits"])):
        assert found[name]["code"] == 0, found[name]
        report = found[name]["report"]
        check = report["validation"]
        assert check["passed"] and check["agreement_kind"] == "pixels" and check["agreement"] == 1.0
        assert report["inputs"] == ["pixel_values"] and report["outputs"] == outputs
        assert Path(report["file"]).stat().st_size == report["size_bytes"]
    assert found["segformer"]["report"]["class_names"] == CLASSES  # the trained checkpoint's
    assert all("/val/images/" in f for f in found["segformer"]["report"]["validation"]["image_files"])
    assert found["eomt"]["report"]["validation"]["image_files"] == [str(squares / f"{i}.png") for i in range(3)]
