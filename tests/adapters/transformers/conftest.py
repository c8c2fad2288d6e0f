"""Helpers for the Transformers adapter tests: the env's python, tiny models, child runs.

Tiny models are built from configs by a script run in the transformers env and saved with
``save_pretrained`` to a temp folder, which the job then loads by path: the code path a user with
a local folder takes (a hub id offline fails fast, which a test checks too).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from adapters.catalog import defaults
from adapters.frameworks import get_catalog

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def hf_python(transformers_env) -> str:
    return str(transformers_env.python)


def _run_script(python: str, script: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", textwrap.dedent(script), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="session")
def hf_script(hf_python):
    """``hf_script(code, *args)``: run ``code`` in the transformers env; fails the test on error."""
    def run(code: str, *args, timeout: int = 300) -> str:
        done = _run_script(hf_python, code, *args, timeout=timeout)
        assert done.returncode == 0, done.stderr[-4000:]
        return done.stdout
    return run


def write_hf_job(directory: Path, task: str, model: str, dataset: Path, fmt: str, epochs: int = 1,
                 image_size: int = 32, **over) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = {"name": "hf", "framework": "transformers", "task": task, "model": str(model), "pretrained": True,
            "image_size": image_size, "dataset": {"path": str(dataset), "format": fmt},
            "training": {"epochs": epochs, "batch_size": 4, "learning_rate": 1e-3, "device": "cpu",
                         "num_workers": 0, "seed": 0},
            "advanced": defaults(get_catalog("transformers")), "weights": None, "resume": None}
    for key, value in over.items():
        if key == "advanced":
            spec["advanced"] = {**spec["advanced"], **value}
        else:
            spec[key] = value
    job = {"job_id": "job-1", "job_dir": str(directory), "device": "cpu",
           "checkpoint_dir": str(directory / "checkpoints"), "spec": spec}
    (directory / "job.json").write_text(json.dumps(job))
    return directory / "job.json"


def run_hf_child(python: str, env: dict, *args, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "adapters.entrypoint", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def hf_job():
    """``hf_job.write(...)`` / ``hf_job.run(...)``, handed out as a fixture (tests never import conftest)."""
    class Helpers:
        write = staticmethod(write_hf_job)
        run = staticmethod(run_hf_child)
    return Helpers


# ---------------------------------------------------------------- tiny models, built once per session

#: A tiny ViT classifier (3 labels, 32 px) with its processor, saved to ``<out>``.
TINY_VIT = """
import sys
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor
cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, num_labels=3)
ViTForImageClassification(cfg).save_pretrained(sys.argv[1])
ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(sys.argv[1])
"""



@pytest.fixture(scope="session")
def tiny_hf_models(hf_script, tmp_path_factory) -> dict[str, Path]:
    """Folders saved by ``save_pretrained``, built by one child for the session: ``vit`` (``TINY_VIT``), ``trocr``
    and ``swin2sr`` (``tests.hf_models``). Shared: jobs read them, nothing writes into them."""
    from tests.hf_models import BUILD_EACH, SWIN2SR, TINY_TROCR

    root = tmp_path_factory.mktemp("tiny-hf-models")
    scripts = {"vit": TINY_VIT, "trocr": TINY_TROCR, "swin2sr": SWIN2SR}
    hf_script(BUILD_EACH, json.dumps([[script, str(root / name)] for name, script in scripts.items()]))
    return {name: root / name for name in scripts}
