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

from runner.ray_api import RayJobsClient
from tests.e2e.test_security import free_port

RAY_REQUIREMENT = "ray[default]==2.60.*"


@pytest.fixture(scope="session")
def ray_venv(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("ray") / "venv"
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the Ray head's env"
    subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), RAY_REQUIREMENT], check=True)
    return venv


@pytest.fixture(scope="session")
def ray_head(ray_venv):
    """The head's dashboard address. Its entrypoints find the head env's `python3` first on PATH
    (as on a node where the Ray env is active)."""
    temp = Path(tempfile.mkdtemp(prefix="vyray-", dir="/tmp"))
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "PATH": f"{ray_venv / 'bin'}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("VIRTUAL_ENV", None)
    ray = str(ray_venv / "bin" / "ray")
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--num-gpus", "0", "--port", str(port),
                    "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--disable-usage-stats",
                    "--temp-dir", str(temp)], check=True, env=env, cwd=temp, capture_output=True, timeout=300)
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=5).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    yield address
    subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def ray_client(ray_head) -> RayJobsClient:
    return RayJobsClient(ray_head)
