"""`visionyard completion bash|zsh`, made from the parser: the scripts are valid shell, name every
command, and complete in a real bash as the parser parses. `visionyard --version` answers without
loading the client."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from runner.cli import main
from runner.cli.app import build_parser
from runner.cli.completion import walk
from runner.cli.version import version

ROOT = Path(__file__).resolve().parents[3]
NODES = {node.path: node for node in walk(build_parser())}


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("completion")
    made = {}
    for shell in ("bash", "zsh"):
        done = subprocess.run([sys.executable, "-m", "runner.cli", "completion", shell], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        made[shell] = folder / f"visionyard.{shell}"
        made[shell].write_text(done.stdout)
    return made


def test_the_parser_is_walked_whole():
    assert set(NODES["visionyard"].commands) >= {"serve", "submit", "status", "list", "logs", "watch", "cancel",
                                                 "models", "schema", "envs", "repos", "predict", "datasets", "gc",
                                                 "ui", "completion"}
    assert set(NODES["visionyard envs"].commands) == {"list", "prepare", "rm"}
    assert set(NODES["visionyard datasets"].commands) == {"check", "convert"}
    assert NODES["visionyard list"].values["--state"][:2] == ["queued", "preparing"]
    assert "--json" in NODES["visionyard envs list"].options and "--gc-env-days" in NODES["visionyard serve"].options


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_the_script_names_every_command_path(scripts, shell):
    text = scripts[shell].read_text()
    for path, node in NODES.items():
        assert f"'{path}')" in text
        for name in node.commands:
            assert name in text


def test_the_bash_script_is_valid_bash(scripts):
    done = subprocess.run(["bash", "-n", str(scripts["bash"])], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_the_zsh_script_is_valid_zsh_and_its_tables_answer(scripts):
    done = subprocess.run(["zsh", "-n", str(scripts["zsh"])], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    probe = (f"compdef() {{ :; }}; source {scripts['zsh']}; _visionyard_commands 'visionyard envs'; print -l $reply; "
             "_visionyard_choices 'visionyard predict' --checkpoint; print -l $reply")
    done = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["list", "prepare", "rm"]
    assert lines[0] == "list:every env built (the default)" and lines[3:] == ["best", "last"]


def complete(script: Path, line: str) -> list[str]:
    """What bash offers for the last word of `line` (a trailing space: a new, empty word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    array = " ".join(f"'{w}'" for w in words)
    probe = (f"source {script}; COMP_WORDS=({array}); COMP_CWORD={len(words) - 1}; _visionyard; "
             "printf '%s\\n' \"${COMPREPLY[@]}\"")
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_completes_commands_options_and_choices_as_the_parser_parses(scripts):
    bash = scripts["bash"]
    assert complete(bash, "visionyard st") == ["status"]
    assert complete(bash, "visionyard envs ") == ["list", "prepare", "rm"]
    assert complete(bash, "visionyard list --state f") == ["failed"]
    assert complete(bash, "visionyard list --cause out") == ["out_of_memory"]
    assert "--json" in complete(bash, "visionyard envs list --")
    assert complete(bash, "visionyard --home /h repos sh") == ["show"]  # an option's value is skipped
    assert complete(bash, "visionyard predict --checkpoint ") == ["best", "last"]
    assert complete(bash, "visionyard submit ") == []  # a file: `complete -o default` offers files
    assert complete(bash, "visionyard serve --backend r") == ["ray"]


def test_completion_through_main_prints_the_script(capsys):
    assert main(["completion", "bash"]) == 0
    assert "complete -o default -F _visionyard visionyard" in capsys.readouterr().out


def test_version_is_the_packages_and_falls_back_to_pyproject(capsys, monkeypatch):
    assert main(["--version"]) == 0
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert capsys.readouterr().out == f"visionyard {project}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version() == project


def test_version_loads_neither_grpc_nor_rich():
    code = ("import sys\nfrom runner.cli import main\nmain(['--version'])\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'rich', 'google', 'protos'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["visionyard " + version(), "[]"]
