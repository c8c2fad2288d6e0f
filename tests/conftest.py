"""Shared fixtures: one env per framework per test session, and a real daemon in a temp home."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import start_daemon  # noqa: E402 (after the path)


#: Fixtures that build a framework env or start a real daemon: tests using them are `slow`.
HEAVY_FIXTURES = {"timm_env", "ultralytics_env", "transformers_env", "hf_python", "child_python", "daemon"}


def pytest_collection_modifyitems(config, items):
    """Mark what a quick local run (`make test-quick`, `-m "not slow"`) may skip; CI runs everything."""
    for item in items:  # an e2e test starts a daemon of its own (`start_daemon`), fixture or not
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory) -> Path:
    """One env root for the whole session, so the timm env is built once."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def timm_env(shared_envs):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(shared_envs.parent / "timm-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("timm"), log=log)


@pytest.fixture(scope="session")
def transformers_env(shared_envs):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(shared_envs.parent / "transformers-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("transformers"), log=log)


@pytest.fixture(scope="session")
def ultralytics_env(shared_envs):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(shared_envs.parent / "ultralytics-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("ultralytics"), log=log)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, timm_env):
    """A real daemon (subprocess) in a temp home whose envs are the session's."""
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs)
    yield proc
    proc.stop()
