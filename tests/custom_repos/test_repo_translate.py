"""Job → env spec, config files and command line, for the shipped specs and a tiny local repo."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from custom_repos import (
    RepoCache,
    RepoError,
    RepoJobError,
    env_spec,
    find_artifacts,
    prepare_launch,
    resolve_job,
    validate_job,
)
from custom_repos.registry import shipped_specs
from custom_repos.spec import parse_repo_spec
from custom_repos.translate import SHIM_DIR

PY = Path("/envs/repo-x/bin/python")


def yolo_job(path, **changes):
    job = {"task": "object_detection", "model": "yolov7-tiny", "dataset": {"path": str(path), "format": "yolo"},
           "training": {"epochs": 3, "batch_size": 2, "image_size": 64}}
    job.update(changes)
    return job


def convnext_job(path, **changes):
    job = {"task": "image_classification", "model": "convnext_tiny",
           "dataset": {"path": str(path), "format": "imagefolder"},
           "training": {"epochs": 2, "batch_size": 4, "learning_rate": 0.004, "num_workers": 1, "seed": 7}}
    job.update(changes)
    return job


def snapshot(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")} | {str(folder): folder.stat().st_mtime_ns}


def test_yolov7_launch(tmp_path, yolo_dataset):
    spec = shipped_specs()["yolov7"]
    dataset = yolo_dataset(names_file="data.yaml")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    before = snapshot(checkout), snapshot(dataset)
    job_dir = tmp_path / "jobs" / "7"
    launch = prepare_launch(spec, yolo_job(dataset), job_dir, checkout, PY, "cpu")

    data_yaml = job_dir / "data.yaml"
    assert launch.argv == [
        str(PY), "train.py", "--weights", "", "--cfg", "cfg/training/yolov7-tiny.yaml", "--data", str(data_yaml),
        "--hyp", "data/hyp.scratch.tiny.yaml", "--epochs", "3", "--batch-size", "2", "--img-size", "64", "64",
        "--device", "cpu", "--project", str(job_dir / "output"), "--name", "run", "--exist-ok", "--workers", "0"]
    assert yaml.safe_load(data_yaml.read_text()) == {
        "train": str(job_dir / "data" / "images" / "train"), "val": str(job_dir / "data" / "images" / "val"),
        "nc": 2, "names": ["red", "green"]}  # the user's `download:` is never copied
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            staged = job_dir / "data" / kind / split
            assert staged.is_dir() and not staged.is_symlink()  # YOLO label caches land here
            files = sorted(staged.iterdir())
            assert files and all(f.is_symlink() and f.resolve().parent == (dataset / kind / split).resolve()
                                 for f in files)
    assert launch.env == {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1", "PYTHONPYCACHEPREFIX": str(job_dir / "pycache")}
    assert launch.pythonpath == [] and launch.output_dir == job_dir / "output"
    assert launch.cwd == launch.work_tree == job_dir / "repo"  # the job's own working tree, never the checkout
    assert launch.output_dir.is_dir() and "RANK" in launch.unset_env
    assert (snapshot(checkout), snapshot(dataset)) == before  # nothing written into either

    # Idempotent (a restarted daemon prepares again); the user's hyp and GPU device win.
    again = prepare_launch(spec, yolo_job(dataset, advanced={"hyp": "/abs/hyp.yaml"}), job_dir, checkout, PY,
                           "cuda:0")
    assert again.argv[again.argv.index("--hyp") + 1] == "/abs/hyp.yaml"
    assert again.argv[again.argv.index("--device") + 1] == "0"


def test_a_yolo_dataset_with_rounded_labels_is_staged_as_a_clipped_copy(tmp_path, yolo_dataset):
    """YOLOv7 refuses a label below 0 or above 1 (it drops the image): the repo gets the clipped copy,
    and the job's log the warning."""
    dataset = yolo_dataset()
    label = dataset / "labels" / "train" / "0.txt"
    label.write_text("0 0.5 0.5 0.4 0.4\n1 0.14062 0.5 0.28125 0.3\n")
    job_dir = tmp_path / "job"
    launch = prepare_launch(shipped_specs()["yolov7"], yolo_job(dataset), job_dir, tmp_path, PY, "cpu")
    staged = job_dir / "data" / "labels" / "train" / "0.txt"
    assert not staged.is_symlink()
    rows = [[float(v) for v in line.split()] for line in staged.read_text().splitlines()]
    assert len(rows) == 2 and all(cx - w / 2 >= 0 for _, cx, _, w, _ in rows)
    assert [n for n in launch.notes if "1 box clipped to the image" in n]
    assert label.read_text().endswith("0.28125 0.3\n")  # the user's file is only read


def test_a_coco_dataset_is_converted_into_the_job_dir_for_a_yolo_repo(tmp_path):
    from tests.dataset_fixtures import ann, make_coco

    spec = shipped_specs()["yolov7"]
    dataset = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2, 7)], "val": [ann(3)]})
    before = snapshot(dataset)
    job = yolo_job(dataset, dataset={"path": str(dataset), "format": "coco"})
    assert resolve_job(spec, job)["class_names"] == ["car", "bike"]  # COCO ids 3, 7 in ascending order
    job_dir = tmp_path / "jobs" / "8"
    for _ in range(2):  # a second launch (a retry) redoes the conversion
        prepare_launch(spec, job, job_dir, tmp_path, PY, "cpu")
    data = job_dir / "data"
    assert yaml.safe_load((job_dir / "data.yaml").read_text())["names"] == ["car", "bike"]
    assert (data / "labels" / "train" / "train1.txt").read_text() == "0 0.500000 0.333333 0.500000 0.333333\n"
    assert (data / "labels" / "train" / "train2.txt").read_text().startswith("1 ")
    assert sorted(p.name for p in (data / "images" / "val").iterdir()) == ["val1.png", "val2.png"]
    assert snapshot(dataset) == before

    problems = validate_job(spec, yolo_job(dataset, dataset={"path": str(dataset), "format": "masks"}))
    assert problems == [("dataset.format", "'masks' is not what repo yolov7 reads. Valid: yolo, coco, dice, voc "
                         "(converted to yolo at launch)")]


def test_yolov7_p6_models_use_train_aux_and_default_image_size(tmp_path, yolo_dataset):
    spec = shipped_specs()["yolov7"]
    job = yolo_job(yolo_dataset(), model="yolov7-w6", training={})
    launch = prepare_launch(spec, job, tmp_path / "job", tmp_path, PY, "cpu")
    assert launch.argv[1] == "train_aux.py" and "data/hyp.scratch.p6.yaml" in launch.argv
    assert launch.argv[launch.argv.index("--img-size") + 1] == "640"
    assert launch.argv[launch.argv.index("--epochs") + 1] == "10"  # runner's TrainingSpec default


def test_convnext_launch_with_shims(tmp_path, imagefolder_dataset):
    spec = shipped_specs()["convnext"]
    dataset = imagefolder_dataset()
    job_dir = tmp_path / "job"
    launch = prepare_launch(spec, convnext_job(dataset, image_size=32), job_dir, tmp_path, PY, "cuda:0")
    argv = launch.argv
    pairs = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert pairs == {
        "--model": "convnext_tiny", "--data_set": "image_folder", "--data_path": str(dataset / "train"),
        "--eval_data_path": str(dataset / "val"), "--nb_classes": "5", "--input_size": "32", "--batch_size": "4",
        "--lr": "0.004", "--epochs": "2", "--warmup_epochs": "0", "--drop_path": "0.0", "--mixup": "0",
        "--cutmix": "0", "--device": "cuda", "--num_workers": "1", "--output_dir": str(job_dir / "output"),
        "--auto_resume": "false", "--seed": "7"}
    assert launch.env["VISIONYARD_SHIMS"] == "torch_six,cuda_synchronize_on_cpu"
    assert launch.pythonpath == [str(SHIM_DIR)] and (SHIM_DIR / "sitecustomize.py").is_file()
    assert not (job_dir / "data").exists()  # imagefolder is read in place


def test_resolve_job_fills_classes_and_advanced(yolo_dataset):
    resolved = resolve_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset(classes=("a", "b", "c"))))
    assert resolved["num_classes"] == 3 and resolved["class_names"] == ["a", "b", "c"]
    assert resolved["advanced"] == {"hyp": "data/hyp.scratch.tiny.yaml", "script": "train.py"}
    assert resolved["image_size"] == 64 and resolved["training"]["learning_rate"] == 1e-3


def _yolo_layout_problem(root: Path, what: str) -> None:
    if what == "no-val-images":
        for kind in ("images", "labels"):
            for p in (root / kind / "val").iterdir():
                p.unlink()
    elif what == "no-labels-train":
        for p in (root / "labels" / "train").iterdir():
            p.unlink()
        (root / "labels" / "train").rmdir()
    elif what == "no-names":
        (root / "classes.txt").unlink()
    elif what == "bad-class-id":
        (root / "labels" / "val" / "1.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")


@pytest.mark.parametrize("what, field, words", [
    ("no-val-images", "dataset.path", ["no validation images in images/val/"]),
    ("no-labels-train", "dataset.path", ["has images/train/ but no labels/train/ folder"]),
    ("no-names", "dataset.path", ["no class names", "classes.txt"]),
    ("bad-class-id", "dataset.path", ["labels/val/1.txt:line 2: class id 7 is outside 0..1"]),
])
def test_yolo_layout_problems(yolo_dataset, what, field, words):
    root = yolo_dataset()
    _yolo_layout_problem(root, what)
    problems = validate_job(shipped_specs()["yolov7"], yolo_job(root))
    assert [p for p, _ in problems] == [field], problems
    for word in words:
        assert word in problems[0][1]


@pytest.mark.parametrize("changes, field, words", [
    ({"task": "image_classification"}, "task", ["not a task of repo yolov7", "Valid: object_detection"]),
    ({"model": "yolov7-tinyy"}, "model", ["Did you mean yolov7-tiny", "Valid: yolov7-tiny, yolov7,"]),
    ({"dataset": {"path": "X", "format": "imagefolder"}}, "dataset.format", ["Valid: yolo"]),
    ({"dataset": {"path": "/no/such/dir", "format": "yolo"}}, "dataset.path", ["does not exist"]),
    ({"advanced": {"hpy": "x"}}, "advanced.hpy", ["unknown setting for repo yolov7", "Valid: hyp, script"]),
    ({"advanced": {"script": "go.py"}}, "advanced.script", ["not one of train.py, train_aux.py"]),
    ({"weights": "/w.pt"}, "weights", ["not supported for custom repos"]),
    ({"num_classes": 5}, "num_classes", ["dataset has 2 classes"]),
])
def test_validate_job_problems(yolo_dataset, changes, field, words):
    problems = validate_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset(), **changes))
    assert [p for p, _ in problems] == [field], problems
    for word in words:
        assert word in problems[0][1]
    with pytest.raises(RepoJobError):
        resolve_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset(), **changes))


@pytest.mark.parametrize("case, words", [
    ("few-classes", ["needs at least 5 classes", "has 3"]),
    ("no-val", ["has no validation images in val/"]),
    ("val-missing-class", ["has no images for class(es) black"]),
])
def test_imagefolder_problems(imagefolder_dataset, case, words):
    if case == "few-classes":
        root = imagefolder_dataset(classes=3)
    else:
        root = imagefolder_dataset()
        doomed = root / "val" if case == "no-val" else root / "val" / "black"
        for p in sorted(doomed.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        doomed.rmdir()
    problems = validate_job(shipped_specs()["convnext"], convnext_job(root))
    assert [p for p, _ in problems] == ["dataset.path"], problems
    for word in words:
        assert word in problems[0][1]


def test_valid_jobs_have_no_problems(yolo_dataset, imagefolder_dataset):
    assert validate_job(shipped_specs()["yolov7"], yolo_job(yolo_dataset())) == []
    assert validate_job(shipped_specs()["convnext"], convnext_job(imagefolder_dataset())) == []


def test_env_spec_key_follows_commit_and_requirements_file(tmp_path, git_repo, spec_dict):
    cache = RepoCache(tmp_path / "repos")

    def env_at(commit):
        spec = parse_repo_spec(spec_dict(url=str(git_repo.path), commit=commit, requirements=["numpy==2.4.6"],
                                         overrides=["six==1.16.0"]), "t.yaml")
        return env_spec(spec, cache.checkout(spec))

    first, second = env_at(git_repo.first), env_at(git_repo.second)
    assert first.name == "repo-myrepo" and first.requirements == ("numpy==2.4.6",)
    assert first.overrides == ("six==1.16.0",)
    assert first.requirements_text == (f"# visionyard repo: myrepo @ {git_repo.first}\n"
                                       "# requirements.txt\ntqdm==4.67.1\n")
    assert "six" in second.requirements_text.splitlines()
    assert first.key("3.11.9") != second.key("3.11.9")
    assert env_at(git_repo.first).key("3.11.9") == first.key("3.11.9")
    third = git_repo.commit({"train.py": "print('v3')\n"})  # same requirements, new commit
    assert env_at(third).key("3.11.9") != second.key("3.11.9")


def test_env_spec_rejects_unreadable_or_nested_requirements(tmp_path, git_repo, spec_dict):
    sha = git_repo.commit({"requirements.txt": "-r base.txt\n"})
    spec = parse_repo_spec(spec_dict(url=str(git_repo.path), commit=sha), "t.yaml")
    checkout = RepoCache(tmp_path / "repos").checkout(spec)
    with pytest.raises(RepoError, match="requirements.txt:1: '-r base.txt' refers to another file"):
        env_spec(spec, checkout)
    missing = spec.model_copy(update={"requirements_file": "nope.txt"})
    with pytest.raises(RepoError, match="requirements file 'nope.txt' cannot be read"):
        env_spec(missing, checkout)


def test_custom_spec_env_placeholders_and_prepare_leaves_checkout_untouched(
        tmp_path, git_repo, spec_dict, yolo_dataset):
    spec = parse_repo_spec(spec_dict(url=str(git_repo.path), commit=git_repo.second,
                                     env={"RUN_DIR": "{job_dir}/run", "TORCH_HOME": "{output_dir}"}), "t.yaml")
    checkout = RepoCache(tmp_path / "repos").checkout(spec)
    before = snapshot(checkout)
    job = yolo_job(yolo_dataset(), model="big", advanced={"lr0": 0.5})
    launch = prepare_launch(spec, job, tmp_path / "job", checkout, PY, "cpu")
    assert launch.env["RUN_DIR"] == str(tmp_path / "job" / "run")
    assert launch.argv[launch.argv.index("--hyp") + 1] == "data/hyp.yaml"  # no model_defaults for 'big'
    assert launch.argv[-1] == "--epochs=3" and launch.argv[3] == ""
    assert snapshot(checkout) == before


def test_find_artifacts_natural_order(tmp_path):
    spec = shipped_specs()["convnext"]
    out = tmp_path / "output"
    out.mkdir()
    for name in ("checkpoint-2.pth", "checkpoint-10.pth", "checkpoint-9.pth", "checkpoint-best.pth", "log.txt"):
        (out / name).write_text("x")
    found = find_artifacts(spec, out)
    assert found.best == out / "checkpoint-best.pth" and found.last == out / "checkpoint-10.pth"
    assert found.files == [out / "log.txt"]
    empty = find_artifacts(shipped_specs()["yolov7"], out)
    assert empty.best is None and empty.last is None and empty.files == []


PAYLOADS = ["$(touch {m}/dollar)", "`touch {m}/backtick`", "x; touch {m}/semicolon", "x\ntouch {m}/newline",
            "x && touch {m}/and | cat", "'single' \"double\" \\ $HOME", "-c 'touch {m}/flag'"]


@pytest.mark.parametrize("shell", [["sh", "-c"], ["/bin/bash", "-lc"], ["env", "A=1", "sh", "-ec"]])
def test_values_stay_literal_in_a_shell_command(tmp_path, git_repo, spec_dict, yolo_dataset, shell):
    """What a user puts in a job can't run as shell code: every value is one quoted word."""
    import subprocess

    marker = tmp_path / "markers"
    marker.mkdir()
    spec = parse_repo_spec(spec_dict(
        url=str(git_repo.path), commit=git_repo.second,
        command=[*shell, "printf '%s\\n' \"hyp={advanced.hyp}\" model={model} out={output_dir} 'epochs={epochs}' "
                         "'hyp again: '{advanced.hyp}'.'"],
        advanced={"hyp": {"type": "str", "default": "data/hyp.yaml"}}), "t.yaml")
    checkout = RepoCache(tmp_path / "repos").checkout(spec)
    for i, payload in enumerate(PAYLOADS):
        value = payload.format(m=marker)
        launch = prepare_launch(spec, yolo_job(yolo_dataset(), model="big", advanced={"hyp": value}),
                                tmp_path / f"job {i} $(x)", checkout, PY, "cpu")
        done = subprocess.run(launch.argv, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert f"hyp={value}\n" in done.stdout, done.stdout
        assert f"out={tmp_path / f'job {i} $(x)' / 'output'}\n" in done.stdout
        assert f"hyp again: {value}.\n" in done.stdout  # bare, between two quoted strings
    assert not list(marker.iterdir())


def test_a_value_is_one_argument_whatever_it_holds(tmp_path, git_repo, spec_dict, yolo_dataset):
    spec = parse_repo_spec(spec_dict(url=str(git_repo.path), commit=git_repo.second), "t.yaml")
    checkout = RepoCache(tmp_path / "repos").checkout(spec)
    value = "a b; c $(d)\n--epochs=99"
    launch = prepare_launch(spec, yolo_job(yolo_dataset(), model="big", advanced={"hyp": value}), tmp_path / "job",
                            checkout, PY, "cpu")
    assert launch.argv[launch.argv.index("--hyp") + 1] == value
    assert launch.argv[-1] == "--epochs=3"
