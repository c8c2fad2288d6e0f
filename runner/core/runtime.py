"""What the daemon's core shares with every job: the home, the store, envs, tracking, devices, where
children report and where jobs run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from envs.manager import EnvManager
from runner.core.store import JobStore
from runner.core.tracking import Tracker
from runner.launch.devices import DevicePool
from runner.launch.local import LocalLauncher
from runner.settings import Paths

if TYPE_CHECKING:
    from custom_repos.git import RepoCache
    from custom_repos.registry import RepoRegistry
    from runner.launch.ray.backend import RayLauncher


@dataclass
class Runtime:
    """What a job needs from the daemon."""

    paths: Paths
    store: JobStore
    envs: EnvManager
    tracker: Tracker
    devices: DevicePool
    reporter_address: str
    reporter_env: dict[str, str] = field(default_factory=dict)  # what a child's channel to it needs (TLS roots)
    threads_per_job: int | None = None  # OMP_NUM_THREADS for children; None keeps the daemon's
    repos: "RepoRegistry | None" = None
    repo_cache: "RepoCache | None" = None
    launcher: "LocalLauncher | RayLauncher | None" = None  # where jobs run; default: this machine

    def __post_init__(self):
        if self.launcher is None:
            self.launcher = LocalLauncher(self.devices)
