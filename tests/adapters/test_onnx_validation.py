"""How an ONNX export is judged against PyTorch (adapters.onnx_export), on known cases: no framework."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from PIL import Image

from adapters.job import DatasetSpec
from adapters.onnx_export import ExportError, agreement, find_images, worst_output


def cls(*pairs):
    return {"predictions": [{"label": str(i), "index": i, "score": s} for i, s in pairs]}


def boxes(*items):
    return {"predictions": [{"label": str(c), "index": c, "score": s, "box": list(b)} for c, s, b in items]}


def mask(values) -> dict:
    data = io.BytesIO()
    Image.frombytes("L", (len(values), 1), bytes(values)).save(data, "PNG")
    return {"mask_png": data.getvalue(), "predictions": []}


def test_top1_agrees_on_the_same_class_or_on_a_near_tie_in_pytorchs_scores():
    torch_side = [cls((0, 0.9), (1, 0.1)), cls((2, 0.5005), (1, 0.4995)), cls((0, 0.6), (1, 0.4))]
    onnx_side = [cls((0, 0.9), (1, 0.1)), cls((1, 0.5001), (2, 0.4999)), cls((1, 0.6), (0, 0.4))]
    kind, share = agreement("image_classification", torch_side, onnx_side, tie=1e-3)
    assert kind == "top-1" and share == pytest.approx(2 / 3)  # the tie agrees, the flip of 0.2 does not


def test_boxes_agree_by_class_and_overlap_as_an_f1_over_both_sets():
    torch_side = [boxes((0, 0.9, (0, 0, 10, 10)), (1, 0.8, (20, 20, 30, 30))), boxes(), boxes((0, 0.5, (0, 0, 4, 4)))]
    onnx_side = [boxes((0, 0.9, (1, 1, 10, 10)), (0, 0.8, (20, 20, 30, 30))), boxes(), boxes()]
    kind, share = agreement("object_detection", torch_side, onnx_side, tie=1e-3)
    # image 1: one of two boxes matches (the other changed class): 2*1/4; image 2: both empty; image 3: nothing kept
    assert kind == "boxes" and share == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_pixels_agree_by_the_share_of_equal_class_ids():
    kind, share = agreement("semantic_segmentation", [mask([0, 1, 2, 2])], [mask([0, 1, 1, 2])], tie=0)
    assert kind == "pixels" and share == 0.75


def test_the_worst_output_is_the_one_furthest_past_its_own_tolerance():
    # logits of scale 10 may differ by 1e-3 + 1e-2; boxes of scale 1 by 2e-3: 0.0025 is past it, 0.005 is not
    name, diff, tolerance = worst_output({"logits": (0.005, 10.0), "pred_boxes": (0.0025, 1.0)}, half=False)
    assert (name, diff) == ("pred_boxes", 0.0025) and tolerance == pytest.approx(2e-3)
    assert worst_output({"logits": (0.03, 1.0)}, half=True)[2] == pytest.approx(0.04)


def test_validation_images_are_the_jobs_val_split_or_those_given(tmp_path):
    for split, name in (("train", "red"), ("train", "blue"), ("val", "red"), ("val", "blue")):
        folder = tmp_path / "data" / split / name
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (200, 0, 0)).save(folder / f"{i}.png")
    job = SimpleNamespace(spec=SimpleNamespace(
        dataset=DatasetSpec(path=str(tmp_path / "data"), format="imagefolder"), task="image_classification",
        training=SimpleNamespace(seed=0)))
    found = find_images([], job, 4)
    assert len(found) == 4 and all("/data/val/" in f for f in found) and found == sorted(found)
    assert find_images([str(tmp_path / "data" / "train" / "red")], job, 2) == [
        str(tmp_path / "data" / "train" / "red" / f"{i}.png") for i in range(2)]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(ExportError, match="no image in .*notes"):
        find_images([str(tmp_path / "notes")], job, 2)
    job.spec.dataset = DatasetSpec(path=str(tmp_path / "gone"), format="imagefolder")
    with pytest.raises(ExportError, match=r"is not there to validate the export with: pass images \(export --images"):
        find_images([], job, 2)
