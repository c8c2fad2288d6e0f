"""Where the runner keeps its state, and how clients find the daemon."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "VISIONYARD_HOME"
ADDRESS_ENV = "VISIONYARD_ADDRESS"
DEFAULT_HOME = Path("~/.visionyard")
SOCKET_NAME = "daemon.sock"
DEFAULT_NODE_HOME = "/var/tmp/visionyard-node"  # a Ray node's envs, checkouts and job dirs
MAX_MESSAGE_BYTES = 64 * 2**20  # the daemon's limit on a request (runner.daemon.server.SERVER_OPTIONS)
MAX_IMAGE_BYTES = MAX_MESSAGE_BYTES - 64 * 2**10  # an image's bytes: the rest of a PredictRequest is small
LOW_DISK_BYTES = 8 * 2**20  # below this, a disk counts as full: the store and the logs need some room


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The runner's home: the explicit argument, else $VISIONYARD_HOME, else ~/.visionyard."""
    raw = home or os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@dataclass(frozen=True)
class Paths:
    """Every path under the home; nothing is written into the source tree."""

    home: Path

    @property
    def db(self) -> Path:
        return self.home / "state.db"

    @property
    def socket(self) -> Path:
        return self.home / SOCKET_NAME

    @property
    def reporter_socket(self) -> Path:
        """Where children report: a socket of their own, so clients can't crowd them out."""
        return self.home / "reporter.sock"

    @property
    def envs(self) -> Path:
        return self.home / "envs"

    @property
    def repos(self) -> Path:
        return self.home / "repos"

    @property
    def jobs(self) -> Path:
        return self.home / "jobs"

    @property
    def pycache(self) -> Path:
        """Bytecode of every child (``PYTHONPYCACHEPREFIX``): compiled once, reused by later jobs,
        never written into the source tree or an env."""
        return self.home / "pycache"

    @property
    def child_path(self) -> Path:
        """Holds only `adapters` and `protos`: the child's PYTHONPATH."""
        return self.home / "child-path"

    @property
    def mlflow_db(self) -> Path:
        return self.home / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow_db}"

    def job_dir(self, job_id: str) -> Path:
        return self.jobs / job_id

    def ensure(self) -> "Paths":
        for folder in (self.home, self.envs, self.repos, self.jobs, self.mlflow_artifacts):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self


def socket_address(home: Path) -> str:
    return f"unix://{Paths(home).socket}"


def resolve_address(address: str | None = None, home: str | os.PathLike | None = None) -> str:
    """The daemon's gRPC target: --address, else $VISIONYARD_ADDRESS, else the home's socket."""
    return address or os.environ.get(ADDRESS_ENV) or socket_address(resolve_home(home))
