"""``predict_batch`` of every Transformers task against ``predict`` image by image, in the real env.

Tiny models built from configs (``tests/hf_models.py``, and a ConvNeXt here: a processor that resizes
the short side and crops) predict four images of three sizes. A processor that resizes every image to
one size makes one batch of them; DETR's (aspect ratio kept), a hub-like Mask2Former's (likewise, then
padded) and Swin2SR's (each image padded to its own size rounded up to the window) one batch per input
shape. Either way each image gets what ``predict`` gives it.
"""

from __future__ import annotations

import pytest

from tests.hf_models import DETECTION_MODELS, SEGMENTATION_MODELS, SWIN2SR, TINY_TROCR

CONVNEXT = """
import sys
from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor
config = ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
ConvNextForImageClassification(config).save_pretrained(sys.argv[1])
ConvNextImageProcessor(size={"shortest_edge": 32}).save_pretrained(sys.argv[1])
"""
#: Runs builder scripts in one process (one import of transformers): ``OUT SCRIPT [OUT SCRIPT ...]``.
BUILD_ALL = """
import sys
for out, script in list(zip(sys.argv[1::2], sys.argv[2::2])):
    sys.argv[1:] = [out]
    exec(script, {"__name__": "__main__"})
"""
#: (width, height): 40x30 and 80x60 share an aspect ratio; 38x29 pads to 40x32 with 40x30 (Swin2SR's window 4).
SIZES = [(40, 30), (30, 44), (80, 60), (38, 29)]
#: model folder -> (task, image_size, the batch sizes of its forward passes for SIZES).
MODELS = {
    "convnext": ("image_classification", 32, [4]),
    "dfine": ("object_detection", 64, [4]),
    "detr": ("object_detection", 64, [2, 1, 1]),
    "segformer": ("semantic_segmentation", 32, [4]),
    "mask2former": ("semantic_segmentation", 32, [2, 1, 1]),
    "eomt": ("semantic_segmentation", 32, [4]),
    "swin2sr": ("super_resolution", 16, [2, 1, 1]),
    "trocr": ("ocr", 32, [4]),
}
#: A checkpoint of ours has the EoMT processor training fitted (one square size); the raw folder has not.
FIT_EOMT = "adapter.task._fit_processor(adapter.processor, adapter.model)"


@pytest.fixture(scope="module")
def compared(hf_script, hf_python, hf_job, child_env, batch_vs_one, tmp_path_factory):
    from PIL import Image, ImageDraw

    root = tmp_path_factory.mktemp("hfbatch")
    builders = [(root, DETECTION_MODELS), (root, SEGMENTATION_MODELS), (root / "swin2sr", SWIN2SR),
                (root / "trocr", TINY_TROCR), (root / "convnext", CONVNEXT)]
    hf_script(BUILD_ALL, *[value for pair in builders for value in pair])
    images = []
    for i, (width, height) in enumerate(SIZES):
        image = Image.new("RGB", (width, height), (20 + 40 * i, 60, 200 - 40 * i))
        ImageDraw.Draw(image).rectangle([width // 4, height // 3, width // 2 + i, height - 3], fill=(230, 220, 20))
        images.append(root / f"{i}.png")
        image.save(images[-1])
    cases = {}
    for name, (task, size, _) in MODELS.items():
        job = hf_job.write(root / f"job-{name}", task, root / name, root, "imagefolder", image_size=size,
                           advanced={"detection": {"threshold": 0.0, "predict_threshold": 0.0}})
        cases[name] = {"job": str(job), "checkpoint": str(root / name),
                       "network": "model.encoder" if task == "ocr" else "model",
                       "setup": FIT_EOMT if name == "eomt" else ""}
    return batch_vs_one.run(hf_python, child_env(HF_HUB_OFFLINE="1"), cases, images)


@pytest.mark.parametrize("name", list(MODELS))
def test_predict_batch_gives_each_image_what_predict_gives(compared, batch_vs_one, name):
    task, _, batches = MODELS[name]
    out = compared[name]
    assert out["batches"] == batches
    batch_vs_one.assert_same(out["batch"], out["alone"], name)
    assert [(r["width"], r["height"]) for r in out["batch"]] == SIZES
    assert all(r["task"] == task for r in out["batch"])
    if task in ("image_classification", "object_detection", "semantic_segmentation"):
        assert all(r["predictions"] for r in out["batch"])
    if task == "super_resolution":
        assert all("image_png" in r for r in out["batch"])
