"""The job.json parser and the hub probe (host env: no torch needed)."""

from __future__ import annotations

import json
import os

import pytest

from adapters import hub
from adapters.job import Job


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
