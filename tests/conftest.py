"""Shared fixtures: one env per framework per test session, and a real daemon in a temp home."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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


class DaemonProcess:
    def __init__(self, home: Path, extra_args: list[str] = ()):
        self.home = home
        self.log_path = home / "daemon.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "serve", "--home", str(home), *extra_args],
                                     cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        from runner.client import Client

        self.address = f"unix://{home / 'daemon.sock'}"
        self.client = Client(address=self.address)
        self.client.wait_ready(timeout=60)

    def stop(self) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def start_daemon(home: Path, envs_root: Path, extra_args: list[str] = (),
                 cancel_jobs_on_stop: bool = True) -> DaemonProcess:
    """A daemon on `home` whose envs are `envs_root`. Its `stop()` cancels running jobs, so that no
    test leaves a training behind (pass False for the default: jobs outlive the daemon)."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "envs").exists():
        (home / "envs").symlink_to(envs_root, target_is_directory=True)
    flags = ["--cancel-jobs-on-stop"] if cancel_jobs_on_stop and "--cancel-jobs-on-stop" not in extra_args else []
    return DaemonProcess(home, [*extra_args, *flags])


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, timm_env):
    """A real daemon (subprocess) in a temp home whose envs are the session's."""
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs)
    yield proc
    proc.stop()
