"""The training controls in a job spec: one meaning for every framework, the old `advanced` spellings
moved to them, and every control a framework can't honour refused with its reason."""

from pathlib import Path

import pytest

from runner.spec.validate import validate_job_spec
from runner.spec.wire import SpecError, spec_from_proto, spec_to_proto
from tests.dataset_fixtures import make_yolo_task
from tests.fixtures import make_imagefolder


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("controls")
    return {"imagefolder": make_imagefolder(root / "cls", per_class=2, val_per_class=1),
            "yolo": make_yolo_task(root / "det", "object_detection", train=2, val=1)}


def spec(folders, framework="timm", training=None, advanced=None, **over):
    if framework == "ultralytics":
        base = {"framework": "ultralytics", "task": "object_detection", "model": "yolov8n",
                "dataset": {"path": str(folders["yolo"]), "format": "yolo"}}
    else:
        base = {"framework": framework, "task": "image_classification",
                "model": "resnet18" if framework == "timm" else "google/vit-base-patch16-224",
                "dataset": {"path": str(folders["imagefolder"]), "format": "imagefolder"}}
    base["training"] = {"epochs": 3, "batch_size": 4, **(training or {})}
    if advanced is not None:
        base["advanced"] = advanced
    base.update(over)
    return base


def problems(raw) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        validate_job_spec(raw)
    return dict(info.value.problems)


def test_controls_left_out_mean_the_same_everywhere(folders):
    for framework in ("timm", "ultralytics", "transformers"):
        training = validate_job_spec(spec(folders, framework)).training
        assert (training.mixed_precision, training.gradient_accumulation, training.gradient_clip,
                training.early_stopping, training.warmup_epochs, training.ema) == ("auto", 1, None, None, None, None)


def test_every_control_travels_the_wire_and_is_kept(folders):
    controls = {"mixed_precision": "bf16", "gradient_accumulation": 4, "gradient_clip": 1.5,
                "early_stopping": {"patience": 5, "min_delta": 0.01}, "warmup_epochs": 1.0, "ema": True}
    raw = spec_from_proto(spec_to_proto(spec(folders, "timm", controls)))
    training = validate_job_spec(raw).training.model_dump()
    assert {k: training[k] for k in controls} == controls


@pytest.mark.parametrize("framework, training, field, words", [
    ("transformers", {"ema": True}, "training.ema", "keeps no EMA"),
    ("ultralytics", {"ema": False}, "training.ema", "always keeps an EMA"),
    ("timm", {"warmup_epochs": 0.5}, "training.warmup_epochs", "whole epochs"),
    ("ultralytics", {"mixed_precision": "bf16", "device": "cpu"}, "training.mixed_precision", "CUDA GPU only"),
    ("timm", {"mixed_precision": "fp16", "device": "cpu"}, "training.mixed_precision", "needs a CUDA GPU"),
    ("timm", {"mixed_precision": "fp8"}, "training.mixed_precision", "bf16"),
    ("timm", {"gradient_accumulation": 0}, "training.gradient_accumulation", "greater than or equal to 1"),
    ("timm", {"early_stopping": {"patience": 0}}, "training.early_stopping.patience", "greater than or equal to 1"),
    ("timm", {"early_stopping": {"patience": 2, "delta": 1}}, "training.early_stopping.delta", ""),
])
def test_a_control_that_cannot_be_honoured_is_refused_naming_it(folders, framework, training, field, words):
    found = problems(spec(folders, framework, training))
    assert field in found and words in found[field], found


def test_bf16_on_the_cpu_and_fp16_on_auto_pass_the_spec(folders):
    """bf16 runs on a CPU; fp16 with device auto is judged where the job runs (a GPU may be there)."""
    assert validate_job_spec(spec(folders, "timm", {"mixed_precision": "bf16", "device": "cpu"}))
    assert validate_job_spec(spec(folders, "timm", {"mixed_precision": "fp16"})).training.mixed_precision == "fp16"


@pytest.mark.parametrize("framework, advanced, expected", [
    ("timm", {"early_stopping": {"patience": 3}}, {"early_stopping": {"patience": 3, "min_delta": 0.0}}),
    ("timm", {"scheduler": {"warmup_epochs": 2}}, {"warmup_epochs": 2.0}),
    ("ultralytics", {"amp": False, "patience": 7, "warmup_epochs": 0.5},
     {"mixed_precision": "no", "early_stopping": {"patience": 7, "min_delta": 0.0}, "warmup_epochs": 0.5}),
    ("transformers", {"mixed_precision": "bf16", "gradient_accumulation_steps": 2, "max_grad_norm": 0.0},
     {"mixed_precision": "bf16", "gradient_accumulation": 2, "gradient_clip": 0.0}),
])
def test_old_advanced_spellings_move_to_the_controls(folders, framework, advanced, expected):
    result = validate_job_spec(spec(folders, framework, advanced=advanced))
    training = result.training.model_dump()
    assert {k: training[k] for k in expected} == expected
    flat = repr(result.advanced)
    for old in ("patience", "'amp'", "max_grad_norm", "gradient_accumulation_steps", "mixed_precision", "warmup_epochs"):
        assert old not in flat, (old, result.advanced)


def test_a_preset_early_stopping_becomes_the_control(folders):
    result = validate_job_spec(spec(folders, "ultralytics", preset="basic"))
    assert result.training.early_stopping.patience == 30


def test_an_old_spelling_that_contradicts_the_control_is_refused(folders):
    found = problems(spec(folders, "transformers", {"gradient_clip": 2.0}, advanced={"max_grad_norm": 1.0}))
    assert "training.gradient_clip" in found["advanced.max_grad_norm"]
    # the same value twice is no contradiction
    assert validate_job_spec(spec(folders, "transformers", {"gradient_clip": 1.0}, advanced={"max_grad_norm": 1.0}))
