"""The command that runs a framework adapter in its env, ``python -m adapters.entrypoint --spec
<job dir>/job.json``: a job's training and a prediction with its checkpoint both start it so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runner.launch.context import Command
from runner.launch.jobdir import JOB_FILE
from runner.settings import Paths

ENTRYPOINT = "adapters.entrypoint"


def adapter_command(python: str | Path, job_dir: Path, paths: Paths, *args: str, env: dict[str, str] | None = None,
                    env_spec: Any = None) -> Command:
    """The adapter entrypoint of the job in `job_dir` with `args`, run there by `python`, with the
    home's child path (adapters/ and protos/ only) on its PYTHONPATH and its bytecode in the home's
    shared cache; `env` on top."""
    return Command([str(python), "-m", ENTRYPOINT, "--spec", str(job_dir / JOB_FILE), *args], cwd=job_dir,
                   env={**(env or {}), "PYTHONPYCACHEPREFIX": str(paths.pycache)},
                   pythonpath=[str(paths.child_path)], env_spec=env_spec)
