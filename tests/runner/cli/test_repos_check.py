"""`visionyard repos check` through main(argv): local, no daemon; text as a pipe gets it, and --json."""

from __future__ import annotations

import json

import pytest

from tests.repo_fixtures import toy_repo, toy_spec

LOG = "toy trainer: 2 classes, 1 epochs\nepoch 1/1 step 1/3 loss=0.2500\nvalidation: acc 75.0%\n"


@pytest.fixture
def files(tmp_path):
    root, sha = toy_repo(tmp_path / "toy")
    spec = tmp_path / "toy.yaml"
    spec.write_text(toy_spec(str(root), sha))
    log = tmp_path / "sample.log"
    log.write_text(LOG)
    return spec, log, tmp_path / "home"  # no daemon runs on this home: none is needed


def test_text_shows_each_step_the_command_and_what_each_log_line_yields(cli, files):
    spec, log, home = files
    code, out = cli("repos", "check", str(spec), "--log", str(log), "--home", str(home))
    assert code == 0, out
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines if line.split()[:1] in (["spec"], ["checkout"], ["env"], ["job"],
                                                                        ["launch"], ["log"])] == \
        [["spec", "ok"], ["checkout", "ok"], ["env", "ok"], ["job", "ok"], ["launch", "ok"], ["log", "ok"]]
    command = next(line for line in lines if line.startswith("  command: "))
    assert command.endswith("train.py --epochs 10 --train '<dataset>/train' --out '<job_dir>/output' --fail-at 0 "
                            "--epoch-seconds 0.0 --hold-file ''")
    at = lines.index("      2  epoch 1/1 step 1/3 loss=0.2500")
    assert lines[at + 1].strip() == "→ progress epoch 1/1, step 1/3; epoch 1: train/loss=0.2500"
    assert lines[at - 1] == "      1  toy trainer: 2 classes, 1 epochs"  # yields nothing: no arrow after it
    assert lines[at + 3].strip() == "→ epoch 1: val/accuracy=0.7500"
    assert lines[-1] == f"ok: {spec} passed every check"


def test_a_bad_spec_exits_1_naming_the_file_and_field(cli, files):
    spec, _, home = files
    spec.write_text(spec.read_text().replace("dataset_format: imagefolder", "dataset_format: imagefoldr"))
    code, out = cli("repos", "check", str(spec), "--home", str(home))
    assert code == 1
    assert f"error: {spec}: dataset_format: 'imagefoldr' is not a dataset format." in out
    assert out.splitlines()[-1] == f"{spec}: 1 error(s), 0 warning(s)"


def test_json_has_every_step_and_problem(cli, files):
    spec, log, home = files
    code, out = cli("repos", "check", str(spec), "--log", str(log), "--home", str(home), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["problems"] == []
    assert [step["name"] for step in report["steps"]] == ["spec", "checkout", "env", "job", "launch", "log"]
    log_step = report["steps"][-1]
    assert log_step["epochs"] == [{"epoch": 1, "metrics": {"train/loss": 0.25, "val/accuracy": 0.75}}]

    code, out = cli("repos", "check", str(spec), "--job", str(home / "missing.yaml"), "--home", str(home), "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    [problem] = report["problems"]
    assert problem["step"] == "job" and problem["file"] == str(home / "missing.yaml")
    assert "cannot read the job spec" in problem["message"]
