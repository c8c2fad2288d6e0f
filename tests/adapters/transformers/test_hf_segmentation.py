"""Transformers semantic segmentation in the real env: tiny SegFormer, Mask2Former and EoMT saved to
folders, trained on drawn rectangles, predicted with, reloaded by plain transformers; and the metric
functions on hand-made cases."""

from __future__ import annotations

import base64
import io
import json
import random

import numpy as np
import pytest
from PIL import Image

from adapters.transformers.tasks.segmentation import confusion_matrix, segmentation_metrics

CLASSES = ["background", "square", "bar"]
COLOURS = {0: (200, 40, 40), 1: (40, 200, 40), 2: (40, 40, 200), 255: (0, 0, 0)}
WIDTH, HEIGHT = 48, 40  # not square: the predicted mask must come back at the image's own size

MODELS = """
import sys
from pathlib import Path
from transformers import (EomtConfig, EomtForUniversalSegmentation, EomtImageProcessor, Mask2FormerConfig,
                          Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor, SegformerConfig,
                          SegformerForSemanticSegmentation, SegformerImageProcessor, SwinConfig)
root = Path(sys.argv[1])
segformer = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 32, 64], decoder_hidden_size=32,
                            num_attention_heads=[1, 1, 2, 2], sr_ratios=[4, 2, 1, 1], mlp_ratios=[2, 2, 2, 2],
                            num_labels=3)
SegformerForSemanticSegmentation(segformer).save_pretrained(root / "segformer")
SegformerImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "segformer")
swin = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                  window_size=2, out_features=["stage1", "stage2", "stage3", "stage4"])
mask2former = Mask2FormerConfig(backbone_config=swin, num_labels=3, num_queries=8, hidden_dim=32, feature_size=32,
                                mask_feature_size=32, encoder_layers=1, decoder_layers=2, num_attention_heads=2,
                                dim_feedforward=64, encoder_feedforward_dim=64, train_num_points=64)
Mask2FormerForUniversalSegmentation(mask2former).save_pretrained(root / "mask2former")
Mask2FormerImageProcessor().save_pretrained(root / "mask2former")  # hub-like defaults: the task sets size etc.
eomt = EomtConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                  patch_size=8, num_queries=8, num_blocks=1, num_labels=3, num_register_tokens=0, train_num_points=64)
EomtForUniversalSegmentation(eomt).save_pretrained(root / "eomt")
EomtImageProcessor(size={"shortest_edge": 32, "longest_edge": 32}).save_pretrained(root / "eomt")
"""


def make_masks(root, train: int = 12, val: int = 4):
    """``masks`` layout: a square (1) somewhere, a bar (2) at the bottom, a 2x2 ignored corner (255)."""
    rng = random.Random(0)
    for split, count in (("train", train), ("val", val)):
        for folder in ("images", "masks"):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            mask = np.zeros((HEIGHT, WIDTH), np.uint8)
            x, y = rng.randint(0, WIDTH // 2), rng.randint(0, HEIGHT // 2)
            mask[y:y + HEIGHT // 3, x:x + WIDTH // 3] = 1
            mask[HEIGHT - 8:, :] = 2
            mask[:2, :2] = 255
            colours = np.array([COLOURS[int(v)] for v in mask.ravel()], np.int32).reshape(HEIGHT, WIDTH, 3)
            noise = np.random.default_rng(rng.randint(0, 10**6)).integers(-30, 30, colours.shape)
            image = Image.fromarray(np.clip(colours + noise, 0, 255).astype(np.uint8))
            image.save(root / split / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


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
        assert set(m.values) == {"train/loss", "val/loss", "val/mIoU", "val/pixel_accuracy", "lr"}
        assert 0.0 <= m.values["val/mIoU"] <= 1.0 and 0.0 <= m.values["val/pixel_accuracy"] <= 1.0
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    last = server.of_kind("result")[0].last_checkpoint
    assert last.endswith("checkpoint-6")  # 12 train images / 4 per batch, 2 epochs
    assert (trained["root"] / "job" / "checkpoints" / "checkpoint-6" / "preprocessor_config.json").is_file()
    assert "\r" not in done.stdout + done.stderr


def test_per_class_iou_of_each_evaluation_is_kept_in_the_results(trained):
    kept = json.loads((trained["root"] / "job" / "results" / "per_class_iou.json").read_text())
    assert kept["classes"] == CLASSES
    evaluations = kept["evaluations"]
    assert [e["epoch"] for e in evaluations] == [1, 2] and [e["step"] for e in evaluations] == [3, 6]
    reported = [m.values["val/mIoU"] for m in trained["server"].of_kind("metrics")]
    for evaluation, miou in zip(evaluations, reported, strict=True):
        assert set(evaluation["iou"]) == set(CLASSES)
        assert evaluation["mIoU"] == pytest.approx(miou, rel=1e-5)
        present = [v for v in evaluation["iou"].values() if v is not None]
        assert evaluation["mIoU"] == pytest.approx(sum(present) / len(present))


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
