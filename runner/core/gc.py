"""Garbage collection: envs, repo checkouts and job dirs nobody needs any more.

What a queued, preparing or running job needs is never touched: its env (by name once it has
one, by spec name while it waits: the env it will get is not known before it prepares), its
repo's checkouts, its job dir. Job records and MLflow runs always stay; only files go.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.frameworks import get_catalog
from envs.ondisk import disk_usage
from envs.specs import get_spec
from runner.launch.ray.node_files import remove_plans
from runner.spec.validate import CUSTOM
from runner.core.store import TERMINAL, JobState

if TYPE_CHECKING:
    from runner.core.runtime import Runtime

log = logging.getLogger("visionyard.gc")
DAY = 86400.0
ACTIVE = frozenset(JobState) - TERMINAL


@dataclass(frozen=True)
class Policy:
    """0 turns a rule off."""

    env_max_idle_days: float = 30.0
    envs_max_gb: float = 0.0
    checkout_max_idle_days: float = 30.0
    job_dir_max_age_days: float = 0.0


@dataclass(frozen=True)
class Removal:
    kind: str  # env | checkout | job_dir
    name: str
    path: Path
    bytes: int
    reason: str


def collect_garbage(rt: "Runtime", policy: Policy, dry_run: bool = False, now: float | None = None) -> list[Removal]:
    now = time.time() if now is None else now
    active = rt.store.list(ACTIVE)
    removals = _envs(rt, policy, active, now) + _checkouts(rt, policy, active, now) + _job_dirs(rt, policy, now)
    if dry_run:
        return removals
    # What ended jobs' nodes could fetch. The store is read again here: a job submitted while the
    # rules above were weighed is active now, and its node may be about to fetch its plan.
    remove_plans(rt.paths, keep={r.id for r in rt.store.list(ACTIVE)})
    done = []
    for removal in removals:
        if removal.kind == "env":
            if not rt.envs.remove(removal.name):
                continue
        elif not _remove_tree(removal.path):
            continue
        log.info("gc: removed %s %s (%s, %.1f MiB)", removal.kind, removal.name, removal.reason, removal.bytes / 2**20)
        done.append(removal)
    return done


def _envs(rt: "Runtime", policy: Policy, active, now: float) -> list[Removal]:
    in_use = {r.env_name for r in active if r.env_name}
    needed_specs = {_env_spec_name(r.spec) for r in active if not r.env_name}
    candidates = sorted((e for e in rt.envs.list() if e.name not in in_use and e.spec_name not in needed_specs),
                        key=lambda e: e.last_used_at)
    removals, kept = [], []
    for env in candidates:
        idle_days = (now - env.last_used_at) / DAY
        if policy.env_max_idle_days and idle_days > policy.env_max_idle_days:
            removals.append(Removal("env", env.name, env.path, env.unique_bytes, f"unused for {idle_days:.0f} days"))
        else:
            kept.append(env)
    if policy.envs_max_gb:
        cap = policy.envs_max_gb * 1e9
        total = sum(e.unique_bytes for e in rt.envs.list()) - sum(r.bytes for r in removals)
        for env in kept:  # least recently used first
            if total <= cap:
                break
            removals.append(Removal("env", env.name, env.path, env.unique_bytes,
                                    f"envs above {policy.envs_max_gb:g} GB; least recently used"))
            total -= env.unique_bytes
    return removals


def _env_spec_name(spec: dict) -> str:
    if spec.get("framework") == CUSTOM:
        return f"repo-{spec.get('repo', '')}"
    try:
        return get_spec(get_catalog(spec["framework"]).env).name
    except (KeyError, ValueError):
        return ""


def _checkouts(rt: "Runtime", policy: Policy, active, now: float) -> list[Removal]:
    if not policy.checkout_max_idle_days or rt.repo_cache is None:
        return []
    repos_in_use = {(r.repo_spec or {}).get("name") or r.spec.get("repo") for r in active
                    if r.spec.get("framework") == CUSTOM}
    removals = []
    for entry in _subdirs(rt.repo_cache.checkouts):
        if any(entry.name.startswith(f"{name}-") for name in repos_in_use if name):
            continue
        idle_days = (now - entry.stat().st_mtime) / DAY
        if idle_days > policy.checkout_max_idle_days:
            removals.append(Removal("checkout", entry.name, entry, disk_usage(entry)[1],
                                    f"no queued or running job uses it; unused for {idle_days:.0f} days"))
    return removals


def _job_dirs(rt: "Runtime", policy: Policy, now: float) -> list[Removal]:
    if not policy.job_dir_max_age_days:
        return []
    removals = []
    for record in rt.store.list(TERMINAL):
        job_dir = rt.paths.job_dir(record.id)
        age_days = (now - (record.finished_at or now)) / DAY
        if age_days > policy.job_dir_max_age_days and job_dir.is_dir():
            removals.append(Removal("job_dir", record.id, job_dir, disk_usage(job_dir)[1],
                                    f"{record.state.value.lower()} {age_days:.0f} days ago"))
    return removals


def _subdirs(folder: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False)
                and not e.name.startswith(".")]
    except OSError:
        return []


def _remove_tree(path: Path) -> bool:
    """Rename first (nothing ever sees half a tree), then delete."""
    doomed = path.with_name(f".{path.name}.gc-{os.getpid()}")
    try:
        os.rename(path, doomed)
    except OSError:
        return False
    shutil.rmtree(doomed, ignore_errors=True)
    return True
