"""The shipped convnext spec's `predict:` (custom_repos/shims/convnext_predict.py) run for real, by
the daemon's repo worker, in the session's timm env against the ConvNeXt stand-in
(tests/repo_fixtures.py) given what the shim imports: a `models/convnext.py` that registers a
tiny `convnext_tiny` with timm, as the real file registers its models.

The stand-in's model scores an image by its mean colour; its checkpoint (saved as the repo's
`utils.save_model` saves one: a `model` state dict and the run's argparse `args`) makes each class
prefer its own colour, with the classes numbered as torchvision's ImageFolder numbers them (sorted
folder names). So a red image must come back labelled `red`, whatever order the folders were made in.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import git
import pytest
from PIL import Image

from custom_repos.registry import shipped_specs
from runner.daemon.repo_worker import RepoCommandWorker
from runner.daemon.workers import WorkerKey, WorkerLimits
from tests.repo_fixtures import fake_convnext

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "white": (240, 240, 240),
           "black": (10, 10, 10)}  # made in this order; ImageFolder numbers them black, blue, green, red, white

TINY_MODELS = '''
# The stand-in's models/convnext.py: registers its models with timm under the real names, as the
# real file does (main.py, and visionyard's predict script, import it before timm.create_model).
import torch.nn as nn
from timm.models.registry import register_model


class TinyConvNeXt(nn.Module):
    """An image's mean colour through a linear `head` (ConvNeXt's head is `head` too)."""

    def __init__(self, in_chans=3, num_classes=1000, layer_scale_init_value=1e-6, **timm_options):
        super().__init__()
        self.head = nn.Linear(in_chans, num_classes)

    def forward(self, x):
        return self.head(x.mean(dim=(2, 3)))


@register_model
def convnext_tiny(pretrained=False, **kwargs):
    return TinyConvNeXt(**kwargs)
'''

# A checkpoint as the repo's utils.save_model saves one, with torch alone (timm's import costs
# seconds): the stand-in's state dict, each class's weights pointing at its colour (normalised with
# ImageNet's mean/std, as the repo's eval transform does), so that score_i = 2 x.p_i - |p_i|^2 is
# highest for the class whose colour the image has.
SAVE_CHECKPOINT = '''
import argparse, json, sys, torch
colours, out = json.loads(sys.argv[1]), sys.argv[2]
names = sorted(colours)
mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
protos = torch.tensor([[(c / 255 - m) / s for c, m, s in zip(colours[n], mean, std)] for n in names])
state = {"head.weight": 8 * protos, "head.bias": -4 * (protos ** 2).sum(1)}
args = argparse.Namespace(model="convnext_tiny", nb_classes=len(names), input_size=32, crop_pct=0.875,
                          imagenet_default_mean_and_std=True, layer_scale_init_value=1e-6)
torch.save({"model": state, "optimizer": {}, "epoch": "best", "scaler": {}, "args": args}, out)
'''


@pytest.fixture
def convnext_with_models(tmp_path):
    """The ConvNeXt stand-in with a `models/convnext.py` committed on top."""
    root, _ = fake_convnext(tmp_path / "convnext")
    (root / "models").mkdir()
    (root / "models" / "convnext.py").write_text(textwrap.dedent(TINY_MODELS))
    repo = git.Repo(root)
    repo.index.add(["models/convnext.py"])
    repo.index.commit("a tiny model registered with timm, for predict")
    return root


def test_the_shipped_convnext_predict_names_classes_as_the_repo_numbers_them(timm_env, convnext_with_models,
                                                                              tmp_path):
    data = tmp_path / "colours"
    for split in ("train", "val"):
        for name, colour in COLOURS.items():
            (data / split / name).mkdir(parents=True)
            Image.new("RGB", (8, 8), colour).save(data / split / name / "0.png")
    job_dir = tmp_path / "job"
    checkpoint = job_dir / "output" / "checkpoint-best.pth"
    checkpoint.parent.mkdir(parents=True)
    made = subprocess.run([str(timm_env.python), "-c", SAVE_CHECKPOINT, json.dumps(COLOURS), str(checkpoint)],
                          cwd=convnext_with_models, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")})
    assert made.returncode == 0, made.stderr

    spec = shipped_specs()["convnext"]
    job = {"framework": "custom", "repo": "convnext", "task": "image_classification", "model": "convnext_tiny",
           "dataset": {"path": str(data), "format": "imagefolder"}, "training": {"image_size": 32}}
    worker = RepoCommandWorker(WorkerKey.of("j1", str(checkpoint)), spec, job, job_dir, convnext_with_models,
                               Path(timm_env.python), WorkerLimits(predict_timeout=120))
    probes = {}
    for name in ("red", "white", "blue"):  # photos larger than the model's size, not square
        probes[name] = tmp_path / f"{name}.jpg"
        Image.new("RGB", (60, 40), COLOURS[name]).save(probes[name])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    try:  # one batch, so one run of the script (each run imports torch and timm again)
        futures = {name: worker.submit(str(path), 5, False) for name, path in probes.items()}
        broken = worker.submit(str(tmp_path / "broken.png"), 5, False)
        two = worker.submit(str(probes["red"]), 2, False)  # its own top_k, though the batch ran with 5
        answers = {name: future.result(timeout=120) for name, future in futures.items()}
        with pytest.raises(ValueError, match="could not predict 00003.png: cannot read it"):
            broken.result(timeout=120)
        two = two.result(timeout=120)
    finally:
        worker.stop()
    for name, answer in answers.items():
        predictions = answer["predictions"]
        assert answer["task"] == "image_classification"
        assert predictions[0]["label"] == name, (name, predictions)
        assert predictions[0]["index"] == sorted(COLOURS).index(name)
        assert predictions[0]["score"] > 0.5
        assert sorted(p["label"] for p in predictions) == sorted(COLOURS)  # top 5 of 5: every class, once
        assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-4)
        assert [p["score"] for p in predictions] == sorted((p["score"] for p in predictions), reverse=True)
    assert [p["label"] for p in two["predictions"]] == [p["label"] for p in answers["red"]["predictions"][:2]]
    log = (job_dir / "predict-worker.log").read_text()
    assert log.count("[visionyard] predict 5 image(s): ") == 1, log
    assert "convnext_predict.py --model convnext_tiny" in log and "--num-classes 5 --top-k 5" in log
    assert not list(job_dir.glob("predict-batch-*"))
    assert not [p for p in convnext_with_models.rglob("*") if p.suffix == ".pyc" or p.name == "__pycache__"]
