"""The framework env registry and the pins the child envs must share with the host."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

from adapters.registry import AlreadyRegisteredError
from envs.spec import EnvSpec
from envs.specs import get_spec, register_spec, spec_names

REPO = Path(__file__).resolve().parents[2]


def _pins(requirements: tuple[str, ...] | list[str]) -> dict[str, str]:
    pins = {}
    for line in requirements:
        name, sep, version = line.partition("==")
        if sep:
            pins[name.strip().lower()] = version.strip()
    return pins


def test_unknown_env_lists_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        get_spec("x")
    assert str(err.value) == f"Unknown env 'x'. Valid: {', '.join(spec_names())}"
    assert "timm" in spec_names()


def test_timm_spec_pins_everything() -> None:
    spec = get_spec("timm")
    assert _pins(spec.requirements) == {
        "torch": "2.15.0",
        "torchvision": "0.29.2",
        "timm": "1.0.31",
        "torchmetrics": "1.9.0",
        "grpcio": "1.85.1",
        "protobuf": "7.36.2",
        "onnx": "1.23.2",
        "onnxruntime": "1.32.0",
        "pillow": "13.0.0",
        "numpy": "2.4.6",
    }
    assert spec.python == "3.11"


@pytest.mark.parametrize("package", ["grpcio", "protobuf"])
def test_timm_grpc_pins_equal_host(package: str) -> None:
    """The generated gRPC code is shared by daemon and child: same protobuf/grpcio runtime."""
    child = _pins(get_spec("timm").requirements)[package]
    assert child == importlib.metadata.version(package)
    host_deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert child == _pins([d for d in host_deps if re.match(rf"{package}\s*==", d)])[package]


def test_register_is_idempotent_but_refuses_a_different_spec() -> None:
    spec = get_spec("timm")
    assert register_spec(spec) is spec
    assert register_spec(dataclasses.replace(spec)) == spec  # an equal spec: a no-op
    assert get_spec("timm") is spec
    with pytest.raises(AlreadyRegisteredError, match=r"^env 'timm' is already registered as EnvSpec\(name='timm'.*"
                                                     r"\(they differ in: requirements, description\)$"):
        register_spec(EnvSpec("timm", requirements=("six==1.16.0",)))
    assert get_spec("timm") is spec


def test_unknown_env_error_is_a_key_error_too() -> None:
    with pytest.raises(KeyError):
        get_spec("pytorch")
