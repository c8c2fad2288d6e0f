"""The CLI through main(argv), against a real daemon."""

from __future__ import annotations

import json

import pytest
import yaml

from runner.cli import main
from tests.fixtures import make_imagefolder, save_image

pytestmark = pytest.mark.e2e


def run(capsys, daemon, *argv) -> tuple[int, str]:
    code = main([*argv, "--address", daemon.address])
    return code, capsys.readouterr().out


def test_submit_follow_status_list_logs_predict(daemon, tmp_path, capsys):
    data = make_imagefolder(tmp_path / "data", per_class=8, val_per_class=3)
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(yaml.safe_dump({
        "name": "cli-job", "framework": "timm", "task": "image_classification", "model": "resnet18",
        "pretrained": False, "image_size": 32, "dataset": {"path": str(data), "format": "imagefolder"},
        "training": {"epochs": 1, "batch_size": 8, "device": "cpu"}}))
    code, out = run(capsys, daemon, "submit", str(spec_file), "--follow")
    assert code == 0, out
    assert "SUCCEEDED" in out and "val/accuracy" in out
    job_id = out.split("submitted job ")[1].split()[0]

    code, out = run(capsys, daemon, "status", job_id, "--json")
    status = json.loads(out)
    assert code == 0 and status["state"] == "SUCCEEDED" and "val/accuracy" in status["metrics"]

    code, out = run(capsys, daemon, "list", "--json")
    assert job_id in [j["id"] for j in json.loads(out)]

    code, out = run(capsys, daemon, "logs", job_id)
    assert code == 0 and "[visionyard] preparing env 'timm'" in out

    code, out = run(capsys, daemon, "watch", job_id)
    assert code == 0 and "SUCCEEDED" in out

    code, out = run(capsys, daemon, "cancel", job_id)
    assert code == 2 and "already SUCCEEDED" in out

    code, out = run(capsys, daemon, "predict", job_id, str(save_image(tmp_path / "g.png", "green")), "--json",
                    "--top-k", "3")
    response = json.loads(out)
    assert code == 0 and len(response["predictions"]) == 3
    assert response["task"] == "image_classification" and "inference" in response["timings_ms"]

    code, out = run(capsys, daemon, "predict", job_id, str(tmp_path / "g.png"), "--save", str(tmp_path / "out.png"))
    assert code == 2 and "returns no image" in " ".join(out.split()) and not (tmp_path / "out.png").exists()


def test_submit_of_a_bad_spec_exits_non_zero_with_the_field(daemon, tmp_path, capsys):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text("framework: timm\ntask: image_classification\nmodel: resnet18\n"
                         "dataset: {path: /nowhere, format: imagefolder}\ntraining: {epochs: 0}\n")
    code, out = run(capsys, daemon, "submit", str(spec_file))
    assert code == 2
    assert "training.epochs" in out


def test_catalog_commands(daemon, capsys):
    code, out = run(capsys, daemon, "models", "--framework", "timm", "--tag", "lightweight", "--json")
    names = {m["name"] for m in json.loads(out)}
    assert code == 0 and {"resnet18", "mobilenetv3_small_100", "efficientnet_b0"} <= names
    assert "vit_large_patch16_224" not in names
    code, out = run(capsys, daemon, "models", "--framework", "custom", "--tag", "repo:yolov7", "--json")
    assert code == 0 and "yolov7-tiny" in {m["name"] for m in json.loads(out)}
    code, out = run(capsys, daemon, "schema", "timm", "--json")
    schema = json.loads(out)
    assert {"optimizer.type", "scheduler.type", "augmentation.random_flip"} <= {f["path"] for f in schema["fields"]}
    assert {p["name"] for p in schema["presets"]} == {"basic", "standard", "aggressive"}
    code, out = run(capsys, daemon, "envs", "list")
    assert code == 0 and "timm-" in out


def test_no_daemon_gives_a_clear_error(tmp_path, capsys):
    code = main(["list", "--address", f"unix://{tmp_path}/none.sock"])
    assert code == 2
    assert "no visionyard daemon answers" in capsys.readouterr().out


def test_envs_prepare_list_rm(tmp_path, capsys):
    from tests.helpers import start_daemon

    envs_root = tmp_path / "own-envs"
    envs_root.mkdir()
    daemon = start_daemon(tmp_path / "home", envs_root)
    try:
        code, out = run(capsys, daemon, "envs", "prepare", "timm")
        assert code == 0 and "ready at" in out
        code, out = run(capsys, daemon, "envs", "list")
        assert code == 0 and "timm-" in out
        code, out = run(capsys, daemon, "envs", "rm", "timm")
        assert code == 0 and "removed timm-" in out
        assert daemon.client.envs() == []
        code, out = run(capsys, daemon, "envs", "prepare", "pytorch")
        assert code == 2 and "Unknown env 'pytorch'" in out
    finally:
        daemon.stop()


def test_gc_dry_run_lists_what_it_would_free_and_removes_nothing(daemon, capsys):
    envs_before = sorted(p.name for p in (daemon.home / "envs").iterdir())
    assert main(["gc", "--dry-run", "--env-days", "0", "--envs-max-gb", "0.000001", "--address", daemon.address]) == 0
    out = capsys.readouterr().out
    assert "would free" in out and "least" in out and "timm-" in out
    assert set(envs_before) <= {p.name for p in (daemon.home / "envs").iterdir()}  # (the envs root is shared)
    assert main(["gc", "--env-days", "-1", "--address", daemon.address]) != 0
    assert "env_max_idle_days must be a number ≥ 0" in capsys.readouterr().out
