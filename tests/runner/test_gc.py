"""Garbage collection frees what it says, and never what a queued or running job needs."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from envs.manager import MARKER, EnvManager
from runner.launch.devices import DevicePool
from runner.core.gc import DAY, Policy, collect_garbage
from runner.core.runtime import Runtime
from runner.settings import Paths
from runner.core.store import JobState, JobStore

NOW = time.time()


def fake_env(root: Path, name: str, spec_name: str, idle_days: float, size: int) -> Path:
    """An env folder as EnvManager leaves it (marker included), last used `idle_days` ago."""
    path = root / name
    (path / "lib").mkdir(parents=True)
    (path / "lib" / "payload.bin").write_bytes(os.urandom(size))
    used = datetime.fromtimestamp(NOW - idle_days * DAY, timezone.utc).isoformat()
    (path / MARKER).write_text(json.dumps({"name": name, "key": name.rsplit("-", 1)[1], "spec": {"name": spec_name},
                                           "created_at": used, "last_used_at": used}))
    return path


@pytest.fixture
def rt(tmp_path):
    from custom_repos.git import RepoCache

    paths = Paths(tmp_path / "home").ensure()
    store = JobStore(paths.db)
    runtime = Runtime(paths, store, EnvManager(paths.envs), None, DevicePool([]), "unix:///nowhere",
                      repo_cache=RepoCache(paths.repos))
    yield runtime
    store.close()


def running_job(rt, framework="timm", env_name="", **spec):
    record = rt.store.create_job({"framework": framework, **spec}, "j", 1)
    rt.store.transition(record.id, JobState.PREPARING)
    rt.store.transition(record.id, JobState.RUNNING)
    rt.store.update(record.id, env_name=env_name)
    return record


def test_old_envs_go_but_never_one_a_running_or_queued_job_needs(rt):
    envs = rt.paths.envs
    fake_env(envs, "timm-aaaaaaaaaaaa", "timm", idle_days=90, size=200_000)       # in use by a running job
    fake_env(envs, "ultralytics-bbbbbbbbbbbb", "ultralytics", 90, 300_000)        # a queued job will need it
    old = fake_env(envs, "transformers-cccccccccccc", "transformers", 90, 400_000)  # nobody: goes
    fresh = fake_env(envs, "repo-toy-dddddddddddd", "repo-toy", 2, 100_000)        # recently used: stays
    running_job(rt, env_name="timm-aaaaaaaaaaaa")
    rt.store.create_job({"framework": "ultralytics"}, "queued", 1)

    preview = collect_garbage(rt, Policy(env_max_idle_days=30), dry_run=True, now=NOW)
    assert [r.name for r in preview] == ["transformers-cccccccccccc"] and old.exists()  # dry run: nothing gone
    removed = collect_garbage(rt, Policy(env_max_idle_days=30), now=NOW)
    assert [(r.kind, r.name) for r in removed] == [("env", "transformers-cccccccccccc")]
    assert removed[0].bytes >= 400_000 and "unused for 90 days" in removed[0].reason
    assert not old.exists() and fresh.exists()
    assert {e.name for e in rt.envs.list()} == {"timm-aaaaaaaaaaaa", "ultralytics-bbbbbbbbbbbb", "repo-toy-dddddddddddd"}


def test_a_size_cap_removes_the_least_recently_used_first(rt):
    envs = rt.paths.envs
    fake_env(envs, "a-111111111111", "a", idle_days=5, size=300_000)
    fake_env(envs, "b-222222222222", "b", idle_days=9, size=300_000)
    fake_env(envs, "c-333333333333", "c", idle_days=1, size=300_000)
    running_job(rt, env_name="b-222222222222")  # the oldest, but in use
    removed = collect_garbage(rt, Policy(env_max_idle_days=0, envs_max_gb=0.0007), now=NOW)
    assert [r.name for r in removed] == ["a-111111111111"]
    assert {e.name for e in rt.envs.list()} == {"b-222222222222", "c-333333333333"}


def test_job_dirs_of_old_finished_jobs_go_and_their_records_stay(rt):
    old = rt.store.create_job({"framework": "timm"}, "old", 1)
    rt.store.transition(old.id, JobState.FAILED, "x")
    recent = rt.store.create_job({"framework": "timm"}, "recent", 1)
    rt.store.transition(recent.id, JobState.FAILED, "x")
    active = running_job(rt)
    for job in (old, recent, active):
        (rt.paths.job_dir(job.id) / "checkpoints").mkdir(parents=True)
        (rt.paths.job_dir(job.id) / "checkpoints" / "last.pt").write_bytes(b"x" * 50_000)
    later = NOW + 40 * DAY  # `old` finished 40 days before this
    rt.store._db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (NOW + 39 * DAY, recent.id))
    removed = collect_garbage(rt, Policy(env_max_idle_days=0, checkout_max_idle_days=0, job_dir_max_age_days=30),
                              now=later)
    assert [(r.kind, r.name) for r in removed] == [("job_dir", old.id)]
    assert removed[0].bytes >= 50_000
    assert not rt.paths.job_dir(old.id).exists()
    assert rt.paths.job_dir(recent.id).exists() and rt.paths.job_dir(active.id).exists()
    assert rt.store.get(old.id).state is JobState.FAILED  # the record stays


def test_checkouts_no_active_job_uses_go_when_unused_for_long(rt):
    checkouts = rt.repo_cache.checkouts
    for name in ("toy-0123456789ab", "other-0123456789ab", "fresh-0123456789ab"):
        (checkouts / name).mkdir()
        (checkouts / name / "train.py").write_text("print(1)\n")
    for name in ("toy-0123456789ab", "other-0123456789ab"):
        os.utime(checkouts / name, (NOW - 60 * DAY, NOW - 60 * DAY))
    rt.store.create_job({"framework": "custom", "repo": "toy"}, "queued toy job", 1)
    removed = collect_garbage(rt, Policy(env_max_idle_days=0, checkout_max_idle_days=30), now=NOW)
    assert [(r.kind, r.name) for r in removed] == [("checkout", "other-0123456789ab")]
    assert sorted(p.name for p in checkouts.iterdir()) == ["fresh-0123456789ab", "toy-0123456789ab"]


def test_a_job_submitted_while_the_rules_are_weighed_keeps_its_node_plan(rt, monkeypatch):
    """GC reads the active jobs, weighs its rules (sizing envs takes a while), then removes the node
    plans of ended jobs: a Ray job submitted in between is active by then, and its node is about to
    fetch its plan."""
    from runner.core import gc
    from runner.launch.ray import node_files

    ended = rt.store.create_job({"framework": "timm"}, "ended", 1)
    rt.store.transition(ended.id, JobState.FAILED, "x")
    node_files.write_plan(rt.paths, ended.id, {"paths": {}})
    submitted = {}
    weigh = gc._envs

    def weighing_while_a_job_is_submitted(*args):
        submitted["job"] = running_job(rt)
        node_files.write_plan(rt.paths, submitted["job"].id, {"paths": {}})
        return weigh(*args)

    monkeypatch.setattr(gc, "_envs", weighing_while_a_job_is_submitted)
    collect_garbage(rt, Policy(), now=NOW)
    assert node_files.plan_path(rt.paths, submitted["job"].id).exists()
    assert not node_files.plan_path(rt.paths, ended.id).exists()
