"""Job specs: what passes, and that every kind of bad input names its field and the fix."""

from pathlib import Path

import pytest

from runner.spec.validate import validate_job_spec
from runner.spec.wire import SpecError, spec_from_proto, spec_to_proto
from tests.fixtures import make_dice, make_imagefolder


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_imagefolder(tmp_path / "data", per_class=2, val_per_class=1)


def spec(data: Path, **over):
    base = {"framework": "timm", "task": "image_classification", "model": "resnet18", "pretrained": False,
            "image_size": 32, "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": 2, "batch_size": 8}}
    base.update(over)
    return base


def problems(raw) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_job_spec(raw)
    return dict(info.value.problems)


def test_valid_spec_fills_defaults_and_infers_classes(dataset):
    result = validate_job_spec(spec(dataset))
    assert result.num_classes == 3
    assert result.training.device == "auto"
    assert result.advanced["optimizer"]["type"] == "adamw"
    assert result.advanced["scheduler"]["type"] == "cosine"
    assert result.display_name == "timm-resnet18"


def test_image_size_defaults_to_the_models_input_size(dataset):
    raw = spec(dataset)
    del raw["image_size"]
    assert validate_job_spec(raw).image_size == 224


def test_preset_then_user_values(dataset):
    result = validate_job_spec(spec(dataset, preset="aggressive", advanced={"loss": {"label_smoothing": 0.2}}))
    assert result.advanced["loss"]["label_smoothing"] == 0.2
    assert result.advanced["model"]["drop_rate"] == 0.2


@pytest.mark.parametrize("override, field, words", [
    ({"framework": "yolo"}, "framework", "Unknown framework 'yolo'. Valid: custom, timm"),
    ({"task": "object_detection"}, "task", "Valid: image_classification"),
    ({"model": "resnt18"}, "model", "Did you mean resnet18"),
    ({"training": {"epochs": -3}}, "training.epochs", "greater than or equal to 1"),
    ({"training": {"device": "gpu"}}, "training.device", "auto, cpu, cuda or cuda:N"),
    ({"advanced": {"optimizer": {"kind": "sgd"}}}, "advanced.optimizer.kind", "Valid: optimizer.type"),
    ({"advanced": {"optimizer": {"type": "lion"}}}, "advanced.optimizer.type", "adam, adamw, sgd"),
    ({"advanced": {"scheduler": {"step_size": 2.5}}}, "advanced.scheduler.step_size", "integer"),
    ({"preset": "turbo"}, "preset", "Valid: basic, standard, aggressive"),
    ({"num_classes": 7}, "num_classes", "dataset at"),
    ({"weights": "/no/such/weights.pth"}, "weights", "does not exist"),
    ({"epochs": 3}, "epochs", "unknown field. Valid: name, framework"),
    ({"dataset": {"format": "imagefolder"}}, "dataset.path", "is required"),
    ({"dataset": {"path": "/no/such/folder", "format": "imagefolder"}}, "dataset.path", "does not exist"),
    ({"dataset": {"path": "/tmp", "format": "coco"}}, "dataset.format", "Valid: imagefolder, dice"),
])
def test_bad_specs_name_the_field(dataset, override, field, words):
    found = problems(spec(dataset, **override))
    assert field in found, found
    assert words in found[field]


def test_dataset_layout_errors_name_the_missing_folder(tmp_path):
    (tmp_path / "val" / "a").mkdir(parents=True)
    found = problems(spec(tmp_path))
    assert "has no train/ folder" in found["dataset.path"]
    assert "train/<class>/<image>" in found["dataset.path"]


def test_dice_dataset(tmp_path):
    root = make_dice(tmp_path / "dice", per_class=3)
    result = validate_job_spec(spec(root, dataset={"path": str(root), "format": "dice"}))
    assert result.num_classes == 3


def test_dice_file_without_label(tmp_path):
    root = make_dice(tmp_path / "dice", per_class=2)
    (root / "broken.json").write_text('{"imagePath": "red_0.png", "shapes": [], "flags": {}}')
    found = problems(spec(root, dataset={"path": str(root), "format": "dice"}))
    assert "broken.json: no label" in found["dataset.path"]


def test_wire_round_trip_keeps_only_what_was_set(dataset):
    raw = spec(dataset, advanced={"scheduler": {"type": "step", "step_size": 3}})
    back = spec_from_proto(spec_to_proto(raw))
    assert back["training"] == {"epochs": 2, "batch_size": 8}
    assert validate_job_spec(back).advanced["scheduler"]["step_size"] == 3


def test_unknown_yaml_key_is_caught_before_the_wire(dataset):
    with pytest.raises(SpecError, match=r"training.epoch: unknown field. Valid: epochs, batch_size"):
        spec_to_proto(spec(dataset, training={"epoch": 3}))


def test_paths_become_absolute_so_the_child_opens_what_was_checked(dataset, monkeypatch):
    monkeypatch.chdir(dataset.parent)
    result = validate_job_spec(spec(Path(dataset.name)))
    assert result.dataset.path == str(dataset.resolve())
    monkeypatch.setenv("HOME", str(dataset.parent))
    assert validate_job_spec(spec(Path("~") / dataset.name)).dataset.path == str(dataset.resolve())


def test_spec_files_resolve_relative_paths_from_their_folder(dataset, tmp_path, monkeypatch):
    import yaml

    from runner.client import _as_spec

    folder = dataset.parent
    (folder / "job.yaml").write_text(yaml.safe_dump(spec(Path(dataset.name))))
    monkeypatch.chdir(tmp_path.parent)
    assert _as_spec(folder / "job.yaml").dataset.path == str(folder / dataset.name)


def test_unreadable_labelme_flags_name_the_file(tmp_path):
    root = make_dice(tmp_path / "dice", per_class=2)
    (root / "odd.json").write_text('{"imagePath": "red_0.png", "flags": ["red"]}')
    found = problems(spec(root, dataset={"path": str(root), "format": "dice"}))
    assert "odd.json: 'flags' must be a mapping" in found["dataset.path"]


def test_split_settings_are_checked_and_reach_the_wire(tmp_path):
    root = make_imagefolder(tmp_path / "d", per_class=4, val_per_class=0)
    (root / "train.txt").write_text("train/red/red_0.png\ntrain/green/green_0.png\ntrain/blue/blue_0.png\n")
    dataset = {"path": str(root), "format": "imagefolder", "split": "file", "split_file": "train.txt"}
    result = validate_job_spec(spec_from_proto(spec_to_proto(spec(root, dataset=dataset))))
    assert result.dataset.split == "file" and result.dataset.split_file == str(root / "train.txt")
    assert result.num_classes == 3

    found = problems(spec(root, dataset={**dataset, "split": "alphabetical"}))
    assert "is not a split strategy. Valid: stratified, random, sequential, file" in found["dataset.split"]
    found = problems(spec(root, dataset={**dataset, "split": None, "val_ratio": 1.5}))
    assert "dataset.val_ratio" in found
    (root / "train.txt").write_text("train/red/nope.png\n")
    found = problems(spec(root, dataset=dataset))
    assert f"{root / 'train.txt'}:line 1: " in found["dataset.path"]


def test_a_format_the_framework_cannot_read_names_what_it_can(dataset):
    found = problems(spec(dataset, dataset={"path": str(dataset), "format": "coco"}))
    assert "'coco' is not supported by timm. Valid: imagefolder, dice" in found["dataset.format"]
    found = problems(spec(dataset, dataset={"path": str(dataset), "format": "tfrecord"}))
    assert "Unknown dataset format 'tfrecord'. Valid: captions, coco, depth, dice, imagefolder" in found["dataset.format"]


def _ultralytics(data: Path, task: str = "object_detection", **over):
    fields = {"framework": "ultralytics", "task": task, "model": "yolov8n", "image_size": 64,
              "dataset": {"path": str(data), "format": "yolo"}}
    return spec(data, **{**fields, **over})


def test_ultralytics_jobs_are_checked_against_its_catalog_and_dataset(tmp_path):
    from tests.dataset_fixtures import make_yolo_task

    data = make_yolo_task(tmp_path / "det", "object_detection", train=2, val=1)
    result = validate_job_spec(_ultralytics(data))
    assert result.num_classes == 2 and result.advanced["optimizer"]["type"] == "SGD"
    assert validate_job_spec(_ultralytics(data, preset="aggressive")).advanced["augmentation"]["mixup"] == 0.15

    found = problems(_ultralytics(data, model="yolov9t", task="pose_estimation"))
    assert "'yolov9t' does not do pose_estimation" in found["model"] and "yolov8n" in found["model"]
    found = problems(_ultralytics(data, advanced={"augmentation": {"mosiac": 1.0}}))
    assert "unknown setting for ultralytics. Valid: optimizer.type" in found["advanced.augmentation.mosiac"]

    (data / "labels" / "train" / "1.txt").write_text("0 0.5 0.5 0.2\n")
    found = problems(_ultralytics(data))
    assert f"{data / 'labels' / 'train' / '1.txt'}:line 1: 4 columns; detection needs 5" in found["dataset.path"]


def test_transformers_models_hub_ids_aliases_and_local_folders(tmp_path, dataset):
    def hf(model, task="image_classification"):
        raw = spec(dataset, framework="transformers", task=task, model=str(model))
        del raw["image_size"]  # the model's own input size
        return raw

    assert validate_job_spec(hf("google/vit-base-patch16-224")).image_size == 224
    assert validate_job_spec(hf("someone/any-vit-finetune")).model == "someone/any-vit-finetune"
    resolved = validate_job_spec({**hf("ustc-community/dfine_x_coco", "object_detection"),
                                  "dataset": {"path": str(dataset), "format": "imagefolder"}}, check_paths=False)
    assert resolved.model == "ustc-community/dfine-xlarge-coco" and resolved.image_size == 640

    assert "is a model for image_classification, not object_detection" in \
        problems(hf("google/vit-base-patch16-224", "object_detection"))["model"]
    folder = tmp_path / "tiny-segformer"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "segformer"}')
    assert "is a 'segformer' model; object_detection trains d_fine, detr" in problems(hf(folder, "object_detection"))["model"]
    assert "cannot read" in problems(hf(tmp_path / "nothing-here"))["model"]
    assert "neither a hub id" in problems(hf("not a model"))["model"]


@pytest.mark.parametrize("raw, field, words", [
    ({"advanced": {"lr0": float("nan")}}, "advanced.lr0", "not a finite number"),
    ({"advanced": {"x": {"y": 1e300}}}, "advanced.x.y", "out of range"),
    ({"name": "bad\x00name"}, "name", "NUL or control character"),
    ({"name": "tab\there"}, "name", "NUL or control character"),
    ({"dataset": {"path": "/data\x00/x", "format": "imagefolder"}}, "dataset.path", "NUL"),
    ({"dataset": {"path": "x" * 5000, "format": "imagefolder"}}, "dataset.path", "5000 characters"),
    ({"dataset": {"path": "/", "format": "dice"}}, "dataset.path", "system folder"),
    ({"dataset": {"path": "/proc/1/root", "format": "dice"}}, "dataset.path", "system folder"),
    ({"dataset": {"path": "/proc/self/fd", "format": "dice"}}, "dataset.path", "system folder"),
    ({"dataset": {"path": "~nosuchuser-xyz/data", "format": "imagefolder"}}, "dataset.path", "can't be resolved"),
    ({"dataset": {"path": "/tmp/" + "n" * 300, "format": "imagefolder"}}, "dataset.path", "longer than 255 bytes"),
    ({"training": {"learning_rate": 1e-300}}, "training.learning_rate", "greater than or equal"),
])
def test_hostile_values_are_refused_naming_the_field(raw, field, words):
    base = {"framework": "timm", "task": "image_classification", "model": "resnet18",
            "dataset": {"path": "/nonexistent/data", "format": "imagefolder"}}
    with pytest.raises(SpecError) as info:
        validate_job_spec({**base, **raw})
    message = str(info.value)
    assert f"{field}:" in message and words in message, message
    assert len(message) < 2000


def test_missing_and_unreadable_files_get_the_same_answer(tmp_path):
    base = {"framework": "timm", "task": "image_classification", "model": "resnet18",
            "dataset": {"path": str(tmp_path), "format": "imagefolder"}}
    with pytest.raises(SpecError) as missing:
        validate_job_spec({**base, "weights": str(tmp_path / "nope.pt")})
    assert "does not exist on the runner's machine, or the runner can't read it" in str(missing.value)
