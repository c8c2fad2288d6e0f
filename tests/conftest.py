"""Shared fixtures: one env per framework per test session, and a real daemon in a temp home."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers import start_daemon  # noqa: E402 (after the path)


#: Fixtures that build a framework env or start a real daemon: tests using them are `slow`.
HEAVY_FIXTURES = {"timm_env", "ultralytics_env", "transformers_env", "hf_python", "child_python", "daemon"}


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config, items):
    """Mark what a quick local run (`make test-quick`, `-m "not slow"`) may skip; CI runs everything.

    Then order the modules heaviest first (most slow tests first; the order within a module kept):
    `make test` runs them on two workers (pytest-xdist, a module at a time on one worker), and the
    light modules then fill the end instead of a heavy one starting last."""
    for item in items:  # an e2e test starts a daemon of its own (`start_daemon`), fixture or not
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.slow)
    slow = Counter(_module(item.nodeid) for item in items if item.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow[_module(item.nodeid)])


def pytest_xdist_make_scheduler(config, log):
    """A module's tests on one worker (its module fixtures set up once), and every Ray test on one
    worker: two local Ray clusters at once would share Ray's fixed ports."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = _module(nodeid)
            return "tests/ray" if module.startswith("tests/ray/") else module

    config.option.loadscopereorder = False  # the order above
    return ModulesTogether(config, log)


@pytest.fixture(scope="session")
def shared_envs(tmp_path_factory, worker_id) -> Path:
    """One env root for the whole session, so the timm env is built once: shared by the workers of a
    distributed run (the env manager's lock lets one build while the others wait for it).
    ``VISIONYARD_TEST_ENVS=DIR`` keeps them in DIR instead, across sessions (an env whose spec changed is
    built again there)."""
    if os.environ.get("VISIONYARD_TEST_ENVS"):
        root = Path(os.environ["VISIONYARD_TEST_ENVS"])
        root.mkdir(parents=True, exist_ok=True)
        return root
    if worker_id == "master":
        return tmp_path_factory.mktemp("envs")
    root = tmp_path_factory.getbasetemp().parent / "envs"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def timm_env(shared_envs, tmp_path_factory):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(tmp_path_factory.getbasetemp() / "timm-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("timm"), log=log)


@pytest.fixture(scope="session")
def transformers_env(shared_envs, tmp_path_factory):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(tmp_path_factory.getbasetemp() / "transformers-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("transformers"), log=log)


@pytest.fixture(scope="session")
def ultralytics_env(shared_envs, tmp_path_factory):
    from envs.manager import EnvManager
    from envs.specs import get_spec

    with open(tmp_path_factory.getbasetemp() / "ultralytics-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(get_spec("ultralytics"), log=log)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, timm_env):
    """A real daemon (subprocess) in a temp home whose envs are the session's."""
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs)
    yield proc
    proc.stop()
