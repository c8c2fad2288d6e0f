"""`repos check` logic (custom_repos/check.py) on tiny local repos: every step for real, offline.

The env is resolved by uv against a folder of wheels made here (``UV_NO_INDEX``, ``UV_FIND_LINKS``),
so resolving never needs the network and an unsatisfiable requirement fails the same way everywhere.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from custom_repos.check import DATASET, JOB_DIR, check_repo
from tests.repo_fixtures import copy_shipped_spec, fake_yolov7, make_yolo, toy_repo, toy_spec

TOY_LOG = """toy trainer: 2 classes, 2 epochs
epoch 1/2 step 1/3 loss=1.0000
some noise
validation: acc 50.0%
epoch 2/2 step 1/3 loss=0.5000
validation: acc 60.0%
"""


def _wheel(folder: Path, name: str, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


@pytest.fixture
def offline_index(tmp_path, monkeypatch):
    """uv sees only a local folder holding vyprobe 1.0."""
    wheels = tmp_path / "wheels"
    _wheel(wheels, "vyprobe", "1.0")
    monkeypatch.setenv("UV_NO_INDEX", "1")
    monkeypatch.setenv("UV_FIND_LINKS", str(wheels))
    return wheels


@pytest.fixture
def toy(tmp_path):
    """`toy(requirements=..., **changes)` -> the path of a toy repo's spec; `.log`: a sample log."""
    root, sha = toy_repo(tmp_path / "toy")

    def make(text: str | None = None, requirements: str = "[vyprobe==1.0]") -> Path:
        spec = tmp_path / "toy.yaml"
        spec.write_text(text if text is not None else toy_spec(str(root), sha) + f"requirements: {requirements}\n")
        return spec

    make.log = tmp_path / "sample.log"
    make.log.write_text(TOY_LOG)
    make.root, make.sha = root, sha
    return make


def _step(report: dict, name: str) -> dict:
    return next(step for step in report["steps"] if step["name"] == name)


def test_a_good_spec_passes_every_step_with_the_command_a_job_would_run(tmp_path, toy, offline_index):
    home = tmp_path / "home"
    home.mkdir()
    report = check_repo(toy(), home=home, log_path=toy.log)
    assert report["ok"], report["problems"]
    assert [s["status"] for s in report["steps"]] == ["ok"] * 6
    checkout = Path(_step(report, "checkout")["path"])
    assert checkout.parent == home / "repos" / "checkouts" and (checkout / "train.py").is_file()  # kept for jobs
    env = _step(report, "env")
    assert env["would_install"] == ["vyprobe==1.0"] and not env["built"]
    assert env["python"].startswith(str(home / "envs" / "repo-toyrepo-"))
    argv = _step(report, "launch")["argv"]
    assert argv == [env["python"], "train.py", "--epochs", "10", "--train", f"{DATASET}/train", "--out",
                    f"{JOB_DIR}/output", "--fail-at", "0", "--epoch-seconds", "0.0", "--hold-file", ""]
    job = _step(report, "job")
    assert job["source"] == "default job" and job["task"] == "image_classification" and len(job["classes"]) == 2


def test_a_spec_error_names_its_field_and_the_log_is_still_parsed(tmp_path, toy):
    text = toy_spec(str(toy.root), toy.sha).replace('"{train_dir}"', '"{trian_dir}"')
    spec = toy(text=text)
    report = check_repo(spec, home=tmp_path / "home", log_path=toy.log)
    assert not report["ok"]
    [problem] = report["problems"]
    assert (problem["file"], problem["field"], problem["severity"]) == (str(spec), "command[5]", "error")
    assert "unknown placeholder '{trian_dir}'" in problem["message"]
    assert [s["status"] for s in report["steps"]] == ["failed", "skipped", "skipped", "skipped", "skipped", "ok"]


def test_a_job_file_is_translated_and_the_files_its_launch_writes_are_shown(tmp_path):
    root, sha = fake_yolov7(tmp_path / "y7")
    spec = copy_shipped_spec("yolov7", str(root), sha, "y7", tmp_path / "y7.yaml")
    make_yolo(tmp_path / "data")
    job = tmp_path / "job.yaml"
    job.write_text("framework: custom\nrepo: y7\ntask: object_detection\nmodel: yolov7-tiny\n"
                   "dataset: {path: data, format: yolo}\ntraining: {epochs: 3, batch_size: 4, device: cpu}\n")
    report = check_repo(spec, home=tmp_path / "home", job_path=job)
    assert report["ok"], report["problems"]
    launch = _step(report, "launch")
    assert launch["argv"][1:8] == ["train.py", "--weights", "", "--cfg", "cfg/training/yolov7-tiny.yaml", "--data",
                                   f"{JOB_DIR}/data.yaml"]
    assert ["--epochs", "3"] == launch["argv"][10:12] and "--batch-size" in launch["argv"]
    assert launch["env"]["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1" and launch["cwd"] == f"{JOB_DIR}/repo"
    files = {f["path"]: f for f in launch["files"]}
    assert files["data.yaml"]["content"].startswith(f"train: {JOB_DIR}/data/images/train\n")
    assert "names:\n- bolt\n- nut\n" in files["data.yaml"]["content"]
    assert "data/" in files and "repo/train.py" not in files  # the checkout's own files are not listed

    job.write_text(job.read_text().replace("yolov7-tiny", "yolov7-tinyy"))
    report = check_repo(spec, home=tmp_path / "home", job_path=job)
    [problem] = report["problems"]
    assert (problem["file"], problem["field"]) == (str(job), "model")
    assert "Did you mean yolov7-tiny" in problem["message"]
    assert _step(report, "launch")["status"] == "skipped"


def test_the_sample_log_shows_what_each_line_yields(tmp_path, toy, offline_index):
    report = check_repo(toy(), home=tmp_path / "home", log_path=toy.log)
    log = _step(report, "log")
    by_number = {record["number"]: record for record in log["lines"]}
    assert by_number[2]["events"] == [
        {"kind": "progress", "epoch": 1, "total_epochs": 2, "step": 1, "total_steps": 3},
        {"kind": "metrics", "epoch": 1, "values": {"train/loss": 1.0}}]
    assert by_number[3]["text"] == "some noise" and by_number[3]["events"] == []
    assert by_number[4]["events"] == [{"kind": "metrics", "epoch": 1, "values": {"val/accuracy": 0.5}}]
    assert log["epochs"] == [{"epoch": 1, "metrics": {"train/loss": 1.0, "val/accuracy": 0.5}},
                             {"epoch": 2, "metrics": {"train/loss": 0.5, "val/accuracy": 0.6}}]
    assert log["unmatched"] == [] and report["ok"]

    toy.log.write_text("epoch 1/2 step 1/3 loss=1.0\n")  # no validation line: a warning, still ok
    report = check_repo(toy(), home=tmp_path / "home", log_path=toy.log)
    [warning] = report["problems"]
    assert warning["severity"] == "warning" and warning["field"] == "parser" and "pattern 2" in warning["message"]
    assert report["ok"]
    toy.log.write_text("nothing the parser knows\n")  # no metric at all: an error
    report = check_repo(toy(), home=tmp_path / "home", log_path=toy.log)
    assert not report["ok"] and "no line of the log yields a metric" in report["problems"][-1]["message"]


def test_an_unresolvable_requirement_surfaces_the_resolvers_error(tmp_path, toy, offline_index):
    report = check_repo(toy(requirements="[vyprobe>=2]"), home=tmp_path / "home")
    env = _step(report, "env")
    assert env["status"] == "failed" and not report["ok"]
    [problem] = report["problems"]
    assert problem["field"] == "requirements" and "vyprobe>=2" in problem["message"]
    assert "No solution found" in problem["message"]
    assert _step(report, "launch")["status"] == "ok"  # the command is still shown


def test_a_github_url_without_network_fails_fast_and_says_why(tmp_path, toy):
    text = toy_spec("https://github.invalid/someone/toy", toy.sha)
    started = time.monotonic()
    report = check_repo(toy(text=text), home=tmp_path / "home")
    assert time.monotonic() - started < 20
    [problem] = report["problems"]
    assert problem["field"] == "url" and "github.invalid" in problem["message"]
    assert "no network on this machine?" in problem["message"]
    assert [s["status"] for s in report["steps"]] == ["ok", "failed", "skipped", "ok", "skipped"]
