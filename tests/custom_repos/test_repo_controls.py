"""The training controls of a custom repo: its spec maps them to the repo's own arguments; a job asking for one
the spec doesn't map is refused, naming it."""

from __future__ import annotations

import pytest

from custom_repos import RepoJobError, prepare_launch, resolve_job
from custom_repos.registry import shipped_specs
from custom_repos.spec import RepoSpecError, parse_repo_spec
from tests.custom_repos.test_repo_translate import PY, convnext_job, yolo_job


def pairs(argv: list[str]) -> dict[str, str]:
    return dict(zip(argv[2::2], argv[3::2], strict=True))


def test_convnext_takes_the_controls_as_its_own_arguments(tmp_path, imagefolder_dataset):
    training = {"epochs": 2, "batch_size": 4, "mixed_precision": "fp16", "gradient_accumulation": 4,
                "gradient_clip": 1.0, "warmup_epochs": 2.0, "ema": True}
    launch = prepare_launch(shipped_specs()["convnext"], convnext_job(imagefolder_dataset(), training=training),
                            tmp_path / "job", tmp_path, PY, "cuda:0")
    found = pairs(launch.argv)
    assert {k: found[k] for k in ("--use_amp", "--update_freq", "--clip_grad", "--model_ema", "--model_ema_eval")} \
        == {"--use_amp": "true", "--update_freq": "4", "--clip_grad": "1", "--model_ema": "true",
            "--model_ema_eval": "true"}
    # the spec's own --warmup_epochs (advanced.warmup_epochs, 0) is replaced, not repeated; a whole number
    assert found["--warmup_epochs"] == "2" and launch.argv.count("--warmup_epochs") == 1


def test_controls_left_at_their_defaults_add_nothing(tmp_path, imagefolder_dataset):
    plain = prepare_launch(shipped_specs()["convnext"], convnext_job(imagefolder_dataset()), tmp_path / "a", tmp_path,
                           PY, "cpu")
    defaults = {**convnext_job("")["training"], "mixed_precision": "auto", "gradient_accumulation": 1}
    same = prepare_launch(shipped_specs()["convnext"], convnext_job(imagefolder_dataset(), training=defaults),
                          tmp_path / "b", tmp_path, PY, "cpu")
    assert "--use_amp" not in plain.argv and same.argv == [a.replace("/a/", "/b/") for a in plain.argv]


@pytest.mark.parametrize("training, field, words", [
    ({"gradient_clip": 1.0}, "training.gradient_clip", "repo yolov7 does not take gradient_clip"),
    ({"early_stopping": {"patience": 3}}, "training.early_stopping", "maps no argument for it under `controls:`"),
])
def test_a_control_the_repo_does_not_map_is_refused(yolo_dataset, training, field, words):
    with pytest.raises(RepoJobError) as info:
        resolve_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset(), training={"epochs": 1, **training}))
    assert words in dict(info.value.problems)[field]


def test_a_value_the_mapping_lacks_and_fp16_on_a_cpu_are_refused(imagefolder_dataset):
    spec = shipped_specs()["convnext"]
    with pytest.raises(RepoJobError) as info:
        resolve_job(spec, convnext_job(imagefolder_dataset(), training={"mixed_precision": "bf16"}))
    assert "takes mixed_precision fp16, no, not bf16" in dict(info.value.problems)["training.mixed_precision"]
    with pytest.raises(RepoJobError) as info:
        resolve_job(spec, convnext_job(imagefolder_dataset(), training={"mixed_precision": "fp16", "device": "cpu"}))
    assert "needs a CUDA GPU" in dict(info.value.problems)["training.mixed_precision"]


def test_early_stopping_fills_its_placeholders(tmp_path, git_repo, spec_dict, yolo_dataset):
    spec = parse_repo_spec(spec_dict(controls={"early_stopping": ["--patience", "{patience}", "--delta={min_delta}"]}),
                           "x.yaml")
    job = yolo_job(yolo_dataset(), model="tiny", training={"epochs": 3, "early_stopping": {"patience": 4}})
    launch = prepare_launch(spec, job, tmp_path / "job", tmp_path, PY, "cpu")
    assert launch.argv[-3:] == ["--patience", "4", "--delta=0.0"]


@pytest.mark.parametrize("controls, field, words", [
    ({"amp": ["--amp"]}, "controls.amp", "not a training control"),
    ({"gradient_clip": {"1": ["--clip"]}}, "controls.gradient_clip", "only for mixed_precision and ema"),
    ({"mixed_precision": {"fp8": ["--fp8"]}}, "controls.mixed_precision.fp8", "not a value of mixed_precision"),
    ({"gradient_clip": ["--clip", "{clip}"]}, "controls.gradient_clip[1]", "unknown placeholder '{clip}'"),
])
def test_a_spec_with_a_bad_control_names_it(spec_dict, controls, field, words):
    with pytest.raises(RepoSpecError) as info:
        parse_repo_spec(spec_dict(controls=controls), "x.yaml")
    assert words in dict(info.value.problems)[field]


def test_resume_takes_the_repos_own_flag_or_is_refused_naming_what_the_spec_lacks(tmp_path, imagefolder_dataset,
                                                                                  yolo_dataset):
    checkpoint = tmp_path / "checkpoint-1.pth"
    checkpoint.write_text("weights")
    launch = prepare_launch(shipped_specs()["convnext"], convnext_job(imagefolder_dataset(), resume=str(checkpoint)),
                            tmp_path / "job", tmp_path, PY, "cpu")
    assert pairs(launch.argv)["--resume"] == str(checkpoint)
    with pytest.raises(RepoJobError) as info:
        resolve_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset(), resume=str(checkpoint)))
    assert "repo yolov7 has no `resume:` in its spec" in dict(info.value.problems)["resume"]
    with pytest.raises(RepoJobError) as info:
        resolve_job(shipped_specs()["convnext"], convnext_job(imagefolder_dataset(), resume=str(tmp_path / "gone.pth")))
    assert "is not a file on the runner's machine" in dict(info.value.problems)["resume"]
