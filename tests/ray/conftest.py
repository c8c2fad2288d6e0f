"""A real local Ray head for the session: its own venv (built once, from uv's cache after that),
a short temp dir (Ray's socket paths must fit 107 bytes), free ports; stopped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from runner.launch.ray.api import RayJobsClient
from tests.helpers import free_port

RAY_REQUIREMENT = "ray[default]==2.60.*"


@pytest.fixture(scope="session")
def ray_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("ray") / "venv"
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the Ray head's env"
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), RAY_REQUIREMENT], check=True)
    return venv


class RayHead:
    """A local head on fixed free ports; `stop()` and `start()` again keep its address. Its
    entrypoints find the head env's `python3` first on PATH (as on a node where the Ray env is
    active)."""

    def __init__(self, venv: Path):
        self.temp = Path(tempfile.mkdtemp(prefix="vyray-", dir="/tmp"))
        self.port, self.dashboard = free_port(), free_port()
        self.env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
        self.env.pop("VIRTUAL_ENV", None)
        self.ray = str(venv / "bin" / "ray")
        self.address = f"http://127.0.0.1:{self.dashboard}"

    def start(self) -> None:
        subprocess.run([self.ray, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(self.port),
                        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(self.dashboard),
                        "--disable-usage-stats", "--temp-dir", str(self.temp)],
                       check=True, env=self.env, cwd=self.temp, capture_output=True, timeout=300)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{self.address}/api/version", timeout=5).read()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self) -> None:
        subprocess.run([self.ray, "stop", "--force"], env=self.env, capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def ray_cluster(ray_venv):
    head = RayHead(ray_venv)
    head.start()
    yield head
    head.stop()
    shutil.rmtree(head.temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_head(ray_cluster) -> str:
    """The head's dashboard address."""
    return ray_cluster.address


@pytest.fixture
def ray_client(ray_head) -> RayJobsClient:
    return RayJobsClient(ray_head)
