"""Fixtures for custom_repos tests: tiny git repos made with gitpython, tiny datasets, spec dicts.

Helpers are handed out as fixtures, so test modules never import this file by name.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path

import git
import pytest
import yaml

from custom_repos.registry import SHIPPED_DIR
from tests.fixtures import COLOURS, _image, make_imagefolder

ACTOR = git.Actor("visionyard tests", "tests@visionyard.invalid")


class GitRepoBuilder:
    """A local git repo that tests add commits to; ``commit`` returns the new sha."""

    def __init__(self, path: Path):
        self.path = path
        self.repo = git.Repo.init(path, initial_branch="main")

    def commit(self, files: dict[str, str], message: str = "update", remove: tuple[str, ...] = ()) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            self.repo.index.add([name])
        if remove:
            self.repo.index.remove(list(remove), working_tree=True)
        return self.repo.index.commit(message, author=ACTOR, committer=ACTOR).hexsha


@pytest.fixture
def git_repo(tmp_path):
    """A repo with two commits: train.py says 'v1' then 'v2'; requirements.txt changes too."""
    builder = GitRepoBuilder(tmp_path / "upstream")
    builder.first = builder.commit({"train.py": "print('v1')\n", "requirements.txt": "tqdm==4.67.1\n",
                                    "cfg/model.yaml": "nc: 80\n"}, "first")
    builder.second = builder.commit({"train.py": "print('v2')\n", "requirements.txt": "tqdm==4.67.1\nsix\n"},
                                    "second")
    return builder


@pytest.fixture
def spec_dict():
    """A valid spec (as parsed YAML) for a yolo repo; tests change one field at a time."""
    def make(**changes):
        data = {
            "name": "myrepo", "url": "/tmp/does-not-matter", "commit": "a" * 40,
            "tasks": ["object_detection"], "models": ["tiny", "big"], "dataset_format": "yolo",
            "requirements_file": "requirements.txt", "env": {"MY_VAR": "1"},
            "command": ["{python}", "train.py", "--weights", "", "--data", "{data_yaml}", "--hyp",
                        "{advanced.hyp}", "--img", "{image_size}", "{image_size}", "--device", "{device_index}",
                        "--project", "{output_dir}", "--epochs={epochs}"],
            "advanced": {"hyp": {"type": "str", "default": "data/hyp.yaml"},
                         "lr0": {"type": "float", "default": 0.01, "minimum": 0}},
            "model_defaults": {"tiny": {"hyp": "data/hyp.tiny.yaml"}},
            "artifacts": {"best": "run/best.pt", "last": "run/last*.pt", "files": ["run/results.txt"]},
            "parser": "generic",
        }
        data.update(copy.deepcopy(changes))
        return data
    return make


@pytest.fixture
def shipped_dict():
    """The parsed YAML of a shipped spec, to vary in tests."""
    return lambda name: yaml.safe_load((SHIPPED_DIR / f"{name}.yaml").read_text())


def _yolo(root: Path, classes=("red", "green"), per_split=(4, 2), names_file="classes.txt") -> Path:
    rng = random.Random(0)
    for split, count in zip(("train", "val"), per_split, strict=True):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            c = i % len(classes)
            _image(list(COLOURS.values())[c % 3], 16, rng).save(root / "images" / split / f"{i}.jpg")
            (root / "labels" / split / f"{i}.txt").write_text(f"{c} 0.5 0.5 0.4 0.4\n")
    if names_file == "classes.txt":
        (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    elif names_file == "data.yaml":
        (root / "data.yaml").write_text(yaml.safe_dump({"nc": len(classes), "names": dict(enumerate(classes)),
                                                        "download": "https://example.invalid/x.zip"}))
    return root


@pytest.fixture
def yolo_dataset(tmp_path):
    return lambda name="yolo", **kw: _yolo(tmp_path / name, **kw)


@pytest.fixture
def imagefolder_dataset(tmp_path):
    colours = {**COLOURS, "white": (240, 240, 240), "black": (10, 10, 10)}

    def make(name="if", classes=5, per_class=2, val_per_class=1):
        picked = dict(list(colours.items())[:classes])
        return make_imagefolder(tmp_path / name, per_class=per_class, val_per_class=val_per_class, size=8,
                                classes=picked)
    return make
