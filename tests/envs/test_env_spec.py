"""EnvSpec keys: stable for the same content, different for anything that changes the install."""

from __future__ import annotations

import re

import pytest

from envs.spec import PLATFORM, EnvSpec

BASE = EnvSpec("demo", requirements=("six==1.16.0", "idna==3.10"), overrides=("six==1.16.0",))


def test_key_is_12_hex_and_stable() -> None:
    key = BASE.key("3.11.7")
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert BASE.key("3.11.7") == key
    assert (
        EnvSpec("demo", requirements=["six==1.16.0", "idna==3.10"], overrides=["six==1.16.0"]).key(
            "3.11.7"
        )
        == key
    ), "lists are accepted and give the same key"


def test_key_ignores_order_name_and_description() -> None:
    same = EnvSpec(
        "other-name",
        requirements=("idna==3.10", "six==1.16.0"),
        overrides=("six==1.16.0",),
        description="words",
    )
    assert same.key("3.11.7") == BASE.key("3.11.7")


@pytest.mark.parametrize(
    "changed",
    [
        EnvSpec("demo", requirements=("six==1.17.0", "idna==3.10"), overrides=("six==1.16.0",)),
        EnvSpec("demo", requirements=("six==1.16.0",), overrides=("six==1.16.0",)),
        EnvSpec("demo", requirements=("six==1.16.0", "idna==3.10")),
        EnvSpec("demo", requirements=("six==1.16.0", "idna==3.10"), overrides=("six==1.15.0",)),
        EnvSpec(
            "demo",
            requirements=("six==1.16.0", "idna==3.10"),
            overrides=("six==1.16.0",),
            requirements_text="tqdm==4.67.1\n",
        ),
    ],
)
def test_key_changes_with_what_gets_installed(changed: EnvSpec) -> None:
    assert changed.key("3.11.7") != BASE.key("3.11.7")


def test_key_changes_with_resolved_python_version() -> None:
    assert BASE.key("3.11.7") != BASE.key("3.11.8")
    assert BASE.key("3.11.7") != BASE.key("3.12.1")


def test_payload_names_platform_and_full_python() -> None:
    payload = BASE.install_payload("3.11.7")
    assert payload["python"] == "3.11.7"
    assert payload["platform"] == PLATFORM
    assert payload["requirements"] == ["idna==3.10", "six==1.16.0"]


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-x", "a--b", "a b"])
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="Invalid env name"):
        EnvSpec(name)
