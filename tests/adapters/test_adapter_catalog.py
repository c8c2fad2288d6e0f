"""Catalogs are plain data the host can use without torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from adapters.catalog import FrameworkCatalog, UnknownNameError, defaults, find_model, resolve_advanced
from adapters.frameworks import all_catalogs, get_catalog

#: The old spellings of training controls (scheduler.warmup_epochs, early_stopping.patience) get no default:
#: they are moved to `training:` when given (`move_replaced`).
EXPECTED_DEFAULTS = {
    "optimizer": {"type": "adamw", "weight_decay": 0.01, "momentum": 0.9},
    "scheduler": {"type": "cosine", "step_size": 10, "gamma": 0.1},
    "augmentation": {"random_flip": True, "random_crop": False},
    "data": {"val_split": 0.2},
    "model": {"drop_rate": 0.0},
    "loss": {"label_smoothing": 0.0},
}


def test_host_imports_catalogs_without_any_framework():
    script = textwrap.dedent(
        """
        import sys
        import adapters, adapters.catalog, adapters.frameworks, adapters.metrics, adapters.job
        import adapters.timm, adapters.timm.catalog, adapters.ultralytics.catalog, adapters.datasets
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in
                       ("torch", "timm", "grpc", "torchvision", "ultralytics", "PIL", "numpy", "yaml", "pycocotools"))
        assert not heavy, heavy
        assert 'torch' not in sys.modules
        print(adapters.frameworks.get_catalog("timm").adapter)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "adapters.timm.trainer:TimmAdapter"


def test_unknown_framework_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        get_catalog("yolo")
    assert str(info.value) == "Unknown framework 'yolo'. Valid: timm, transformers, ultralytics"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_registry_holds_one_record_per_framework():
    catalogs = all_catalogs()
    assert [c.name for c in catalogs] == ["timm", "transformers", "ultralytics"]
    assert all(isinstance(c, FrameworkCatalog) for c in catalogs)
    assert get_catalog("timm") is catalogs[0]


def test_timm_catalog_contents():
    catalog = get_catalog("timm")
    assert catalog.env == "timm"
    assert catalog.tasks == ("image_classification",)
    assert catalog.dataset_formats == ("imagefolder", "dice")
    names = {m.name for m in catalog.models}
    assert {
        "resnet18",
        "resnet50",
        "efficientnet_b0",
        "vit_base_patch16_224",
        "mobilenetv3_small_100",
        "vgg19",
    } <= names
    assert names <= catalog.known_models and len(catalog.known_models) > 1000
    assert catalog.accepts_model("resnet10t") and catalog.accepts_model("resnet18.a1_in1k")
    assert not catalog.accepts_model("resnet9000")
    resnet = find_model(catalog, "resnet18")
    assert resnet.display_name == "ResNet-18" and resnet.params_millions == pytest.approx(11.69)
    assert "lightweight" in find_model(catalog, "mobilenetv3_small_100").tags
    assert "transformer" in find_model(catalog, "vit_small_patch16_224").tags
    assert find_model(catalog, "resnet10t") is None
    for model in catalog.models:
        assert model.params_millions > 0 and model.recommended_batch_size > 0
        assert 0 < model.recommended_learning_rate < 1 and model.input_size >= 224


def test_schema_defaults():
    assert defaults(get_catalog("timm")) == EXPECTED_DEFAULTS


def test_presets_are_valid_and_differ_as_documented():
    catalog = get_catalog("timm")
    basic = resolve_advanced(catalog, {}, "basic")
    standard = resolve_advanced(catalog, {}, "standard")
    aggressive = resolve_advanced(catalog, {}, "aggressive")
    assert basic["optimizer"]["type"] == "adam" and basic["scheduler"]["type"] == "none"
    assert basic["augmentation"] == {"random_flip": False, "random_crop": False}
    assert standard == EXPECTED_DEFAULTS
    assert aggressive["optimizer"] == {"type": "adamw", "weight_decay": 0.05, "momentum": 0.9}
    assert aggressive["scheduler"]["warmup_epochs"] == 1
    assert aggressive["augmentation"] == {"random_flip": True, "random_crop": True}
    assert aggressive["loss"]["label_smoothing"] == 0.1 and aggressive["model"]["drop_rate"] == 0.2
    # user values win over the preset
    mixed = resolve_advanced(catalog, {"loss": {"label_smoothing": 0.0}}, "aggressive")
    assert mixed["loss"]["label_smoothing"] == 0.0


def test_resolve_advanced_coerces_struct_numbers():
    catalog = get_catalog("timm")
    # protobuf Struct carries every number as a double
    out = resolve_advanced(catalog, {"scheduler": {"step_size": 5.0}, "optimizer": {"weight_decay": 0}})
    assert out["scheduler"]["step_size"] == 5 and isinstance(out["scheduler"]["step_size"], int)
    assert isinstance(out["optimizer"]["weight_decay"], float)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"optimizer": {"type": "lion"}}, "advanced.optimizer.type: 'lion' is not one of adam, adamw, sgd"),
        (
            {"optimizer": {"weight_decay": -1}},
            "advanced.optimizer.weight_decay: -1.0 is below the minimum 0.0",
        ),
        ({"scheduler": {"step_size": 2.5}}, "advanced.scheduler.step_size: expected an integer"),
        ({"data": {"val_split": 0.95}}, "advanced.data.val_split: 0.95 is above the maximum 0.9"),
        ({"augmentation": {"random_flip": 1}}, "advanced.augmentation.random_flip: expected true or false"),
        ({"early_stopping": {"patience": True}}, "advanced.early_stopping.patience: expected a number"),
        ({"optimiser": {"type": "adam"}}, "advanced.optimiser.type: unknown setting for timm"),
    ],
)
def test_resolve_advanced_names_the_bad_field(values, message):
    with pytest.raises(ValueError) as info:
        resolve_advanced(get_catalog("timm"), values)
    assert str(info.value).startswith(message)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="Unknown preset 'turbo' for timm. Valid: basic, standard, aggressive"
    ):
        resolve_advanced(get_catalog("timm"), {}, "turbo")


def test_ultralytics_catalog_contents():
    catalog = get_catalog("ultralytics")
    assert catalog.env == "ultralytics" and catalog.adapter == "adapters.ultralytics.trainer:UltralyticsAdapter"
    assert catalog.tasks == ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection",
                             "image_classification")
    names = [m.name for m in catalog.models]
    assert names == ["yolov8n", "yolov8s", "yolov8m", "yolov8l", "yolov8x", "yolov9t", "yolov9s", "yolov9m",
                     "yolov9c", "yolov9e", "yolo11n", "yolo11s", "yolo11m", "yolo11l", "yolo11x"]
    assert catalog.accepts_model("yolo11n-obb") and catalog.accepts_model("yolov9c-seg")
    assert not catalog.accepts_model("yolov9t-pose")  # YOLOv9 has no pose models
    assert find_model(catalog, "yolov8n").params_millions == 3.2
    assert {p.name for p in catalog.presets} == {"basic", "standard", "aggressive"}
    filled = resolve_advanced(catalog, {"augmentation": {"fliplr": 0.0}}, "basic")
    assert filled["augmentation"]["fliplr"] == 0.0 and filled["augmentation"]["mosaic"] == 0.5
    with pytest.raises(ValueError, match="advanced.augmentation.mosaic: 2.0 is above the maximum 1.0"):
        resolve_advanced(catalog, {"augmentation": {"mosaic": 2}})


def test_ultralytics_metric_names_map_to_the_shared_vocabulary():
    from adapters.ultralytics.metrics import epoch_metrics

    val = {"metrics/precision(B)": 0.5, "metrics/recall(B)": 0.4, "metrics/mAP50(B)": 0.3,
           "metrics/mAP50-95(B)": 0.2, "metrics/mAP50-95(M)": 0.1, "metrics/mAP50(P)": 0.05,
           "val/box_loss": 1.0, "val/seg_loss": 2.0, "fitness": 0.9}
    out = epoch_metrics(val, {"train/box_loss": 0.5, "train/seg_loss": 0.25}, {"lr/pg0": 0.01, "lr/pg1": 0.02})
    assert out == {"val/precision": 0.5, "val/recall": 0.4, "val/mAP50": 0.3, "val/mAP50-95": 0.2,
                   "val/mask_mAP50-95": 0.1, "val/pose_mAP50": 0.05, "val/box_loss": 1.0, "val/seg_loss": 2.0,
                   "val/loss": 3.0, "train/box_loss": 0.5, "train/seg_loss": 0.25, "train/loss": 0.75, "lr": 0.01}
    classify = epoch_metrics({"metrics/accuracy_top1": 0.75, "metrics/accuracy_top5": 1.0, "val/loss": 0.6},
                             {"train/loss": 0.7}, {})
    assert classify == {"val/accuracy": 0.75, "val/top5": 1.0, "val/loss": 0.6, "train/loss": 0.7}


def test_registering_a_catalog_again_is_a_no_op_and_a_different_one_is_refused():
    import dataclasses

    from adapters.catalog import register_catalog
    from adapters.registry import AlreadyRegisteredError

    timm = get_catalog("timm")
    assert register_catalog(dataclasses.replace(timm)) == timm  # an equal record: kept as it was
    assert get_catalog("timm") is timm
    with pytest.raises(AlreadyRegisteredError, match=r"^framework 'timm' is already registered as "
                                                     r"FrameworkCatalog\(name='timm'.*\(they differ in: tasks\)$"):
        register_catalog(dataclasses.replace(timm, tasks=("object_detection",)))
    assert get_catalog("timm") is timm
    assert [c.name for c in all_catalogs()] == ["timm", "transformers", "ultralytics"]
