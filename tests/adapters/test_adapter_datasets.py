"""Dataset readers, the job.json parser and the hub probe (host env: no torch needed)."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from adapters import hub
from adapters.datasets import DatasetError, open_image, read_classification, stratified_split
from adapters.job import Job


def test_imagefolder_without_val_is_split_per_class(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path, per_class=10)
    data = read_classification(tmp_path, "imagefolder", val_split=0.2, seed=3)
    assert data.class_names == ("blue", "green", "red")
    assert Counter(s.label for s in data.val) == {0: 2, 1: 2, 2: 2}
    assert len(data.train) == 24
    assert not {s.source for s in data.train} & {s.source for s in data.val}
    again = read_classification(tmp_path, "imagefolder", val_split=0.2, seed=3)
    assert again == data  # the seed fixes the split


def test_imagefolder_with_val_uses_it(tmp_path, make_imagefolder):
    make_imagefolder(tmp_path, per_class=4, val_per_class=2)
    (tmp_path / "train" / "red" / "notes.txt").write_text("not an image")
    data = read_classification(tmp_path, "imagefolder", val_split=0.5, seed=0)
    assert len(data.train) == 12 and len(data.val) == 6
    assert all("/val/" in s.source for s in data.val)
    assert open_image(data.val[0]).mode == "RGB"


def test_split_keeps_a_training_sample_in_every_class():
    from adapters.datasets import Sample

    samples = [
        Sample("a0", 0),
        Sample("a1", 0),
        Sample("b0", 1),
        Sample("c0", 2),
        Sample("c1", 2),
        Sample("c2", 2),
    ]
    train, val = stratified_split(samples, val_split=0.9, seed=0)
    assert {s.label for s in train} == {0, 1, 2}
    assert Counter(s.label for s in val) == {0: 1, 2: 2}


def test_dice_labels_from_flags_or_shapes_and_embedded_images(tmp_path, make_dice):
    make_dice(tmp_path, per_class=6)
    data = read_classification(tmp_path, "dice", val_split=0.2, seed=0)
    assert data.class_names == ("blue", "green", "magenta", "red", "yellow")
    assert len(data.train) + len(data.val) == 30
    assert {s.label for s in data.val} == set(range(5))
    embedded = [s for s in data.train + data.val if s.embedded]
    assert embedded and all(s.source.endswith(".json") for s in embedded)
    assert open_image(embedded[0]).size == (24, 24)
    for sample in data.train + data.val:  # each file's class matches its name
        assert data.class_names[sample.label] in os.path.basename(sample.source)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"imagePath": "x.png", "imageData": None, "shapes": [], "flags": {}}, "no label"),
        (
            {"imagePath": "x.png", "imageData": None, "shapes": [], "flags": {"a": True, "b": True}},
            "more than one",
        ),
        (
            {"imagePath": "missing.png", "imageData": None, "shapes": [{"label": "a"}], "flags": {}},
            "not found",
        ),
        ({"hello": "world"}, "not a labelme file"),
    ],
)
def test_bad_dice_files_are_named(tmp_path, doc, message):
    (tmp_path / "broken.json").write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=message) as info:
        read_classification(tmp_path, "dice", 0.2, 0)
    assert "broken.json" in str(info.value)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "has no train/ folder"),
        ({"train/cat/a.png": None}, "needs at least 2 classes"),
        ({"train/cat/a.png": None, "train/dog/readme.txt": None}, "class folder .*dog has no images"),
        (
            {"train/cat/a.png": None, "train/dog/b.png": None, "val/cow/c.png": None},
            "classes that train/ lacks: cow",
        ),
    ],
)
def test_bad_imagefolders_say_what_is_wrong(tmp_path, layout, message):
    from PIL import Image

    for rel in layout:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / rel, format="PNG")
    with pytest.raises(DatasetError, match=message):
        read_classification(tmp_path, "imagefolder", 0.2, 0)


def test_missing_dataset_path_and_unknown_format(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_classification(tmp_path / "nope", "imagefolder", 0.2, 0)
    with pytest.raises(DatasetError, match="Unknown dataset format 'coco'. Valid: imagefolder, dice"):
        read_classification(tmp_path, "coco", 0.2, 0)


def test_job_json_fills_optional_fields_and_names_missing_ones(tmp_path):
    spec = {
        "framework": "timm",
        "task": "image_classification",
        "model": "resnet18",
        "dataset": {"path": "/data", "format": "imagefolder"},
        "training": {"epochs": 3.0, "batch_size": 8, "learning_rate": 0.01},
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"job_id": "j", "spec": spec}))
    job = Job.from_file(path)
    assert job.job_dir == tmp_path and job.checkpoint_dir == tmp_path / "checkpoints"
    assert job.device == "auto" and job.spec.training.epochs == 3 and job.spec.num_classes is None
    assert job.spec.setting("optimizer.type", "adamw") == "adamw"
    del spec["training"]["epochs"]
    with pytest.raises(ValueError, match="job spec is missing 'spec.training.epochs'"):
        Job.from_dict({"spec": spec})


def test_hub_probe_targets_the_proxy_or_endpoint():
    assert hub.hub_address({}) == ("huggingface.co", 443)
    assert hub.hub_address({"HF_ENDPOINT": "http://mirror.local:8080"}) == ("mirror.local", 8080)
    assert hub.hub_address({"HTTPS_PROXY": "http://proxy:3128", "HF_ENDPOINT": "x"}) == ("proxy", 3128)


def test_unreachable_hub_switches_to_offline_mode(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert hub.prepare_hub_access() is False
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub.prepare_hub_access() is False  # already set: no second probe
