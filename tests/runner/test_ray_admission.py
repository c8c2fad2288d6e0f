"""Admission on a Ray cluster (no head needed): what is free, counting others' use and our own
jobs the head's report does not show yet; and `serve --backend ray` refusing what can't work."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.launch.ray import backend as ray_backend
from runner.launch.ray.api import RayUnavailable, Resources
from runner.launch.ray.backend import RayDevicePool

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


class FakeHead:
    def __init__(self, total, used=None):
        self.address = "http://head:8265"
        self.total, self.used, self.down = dict(total), dict(used or {}), False

    def resources(self) -> Resources:
        if self.down:
            raise RayUnavailable("the Ray head at http://head:8265 can't be reached (connection refused)")
        return Resources(dict(self.total), dict(self.used))


@pytest.fixture(autouse=True)
def fresh_looks(monkeypatch):
    monkeypatch.setattr(ray_backend, "RESOURCES_TTL", 0.0)


def test_jobs_start_while_the_cluster_has_their_cpus_free_and_wait_after():
    head = FakeHead({"CPU": 2})
    pool = RayDevicePool(head, cpus_per_job=1)
    first, second = pool.acquire("cpu"), pool.acquire("cpu")
    assert first.device == second.device == "cpu" and first.gpus == 0
    assert pool.acquire("cpu") is None  # the head's report shows neither yet: our claims count
    assert pool.waiting == "waiting for 1 CPU (0 of 2 free) on the Ray cluster"
    pool.release(first)
    assert pool.acquire("cpu") is not None


def test_what_others_use_is_not_free(monkeypatch):
    head = FakeHead({"CPU": 2}, {"CPU": 1})  # another user's job
    pool = RayDevicePool(head, cpus_per_job=1)
    mine = pool.acquire("cpu")
    assert mine is not None and pool.acquire("cpu") is None
    # once our job has run long enough to be in the head's figure, it is not counted twice
    head.used["CPU"] = 2
    now = [ray_backend.time.monotonic()]
    monkeypatch.setattr(ray_backend.time, "monotonic", lambda: now[0])
    pool.running(mine)
    now[0] += ray_backend.REPORT_SECONDS + 1
    assert pool.acquire("cpu") is None and "0 of 2 free" in pool.waiting
    head.used["CPU"] = 1  # the other user's job ended
    assert pool.acquire("cpu") is not None


def test_the_next_job_starts_when_ours_ends_though_the_heads_figure_lags():
    head = FakeHead({"CPU": 2})
    pool = RayDevicePool(head, cpus_per_job=2)
    first = pool.acquire("cpu")
    pool.running(first)
    head.used["CPU"] = 2  # the head's report shows it
    assert pool.acquire("cpu") is None
    pool.release(first)  # it ended; the head's report still shows its 2 CPUs for a few seconds
    assert pool.acquire("cpu") is not None


def test_a_gpu_job_waits_for_a_gpu_the_cluster_lacks_and_auto_runs_on_cpu():
    pool = RayDevicePool(FakeHead({"CPU": 4}), cpus_per_job=1)
    assert pool.check("cuda") is None and pool.check("cuda:1") is None  # the cluster may gain GPUs
    assert pool.acquire("cuda") is None
    assert pool.waiting == "waiting for 1 GPU (0 of 0 free) on the Ray cluster"
    assert pool.acquire("auto").device == "cpu"
    gpu_pool = RayDevicePool(FakeHead({"CPU": 4, "GPU": 1}), cpus_per_job=1)
    taken = gpu_pool.acquire("auto")
    assert (taken.device, taken.gpus) == ("cuda:0", 1)  # Ray picks the GPU; the child sees it as cuda:0
    assert gpu_pool.acquire("cuda:0") is None and "0 of 1 free" in gpu_pool.waiting


def test_an_unreachable_head_makes_jobs_wait_naming_it():
    head = FakeHead({"CPU": 2})
    head.down = True
    pool = RayDevicePool(head)
    assert pool.acquire("cpu") is None
    assert "waiting for the Ray head at http://head:8265, which does not answer" in pool.waiting


def test_a_restarted_daemon_counts_the_jobs_it_adopts():
    pool = RayDevicePool(FakeHead({"CPU": 1}, {"CPU": 1}))
    adopted = pool.claim(None, "", "cpu", 0)
    assert pool.acquire("cpu") is None  # the adopted job holds the cluster's one CPU
    pool.release(adopted)


@pytest.mark.parametrize("args, message", [
    (["--backend", "ray"], "--backend ray needs --ray-address"),
    (["--ray-address", "http://127.0.0.1:9"], "--ray-address goes with --backend ray"),
    (["--backend", "ray", "--ray-address", "http://127.0.0.1:9"], "--backend ray needs --listen HOST:PORT"),
    (["--backend", "ray", "--ray-address", "http://127.0.0.1:9", "--listen", "0.0.0.0:50999", "--insecure-listen"],
     "pass --reporter-address HOST:PORT"),
    (["--backend", "ray", "--ray-address", "http://127.0.0.1:9", "--listen", "127.0.0.1:50999"],
     "the Ray head does not answer"),
])
def test_serve_refuses_a_ray_backend_that_cant_work(tmp_path, args, message):
    done = subprocess.run([sys.executable, "-m", "runner.cli", "serve", "--home", str(tmp_path / "home"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
