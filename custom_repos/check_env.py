"""The env of a repo spec resolved without building it: ``uv pip install --dry-run`` into an empty venv.

The requirement lines and overrides are the ones the env manager installs (``envs/manager.py`` writes the same
two files), so what resolves here is what a job's env build installs, on this machine's platform. Fills a
``custom_repos.check.Step``: the env's name and python (the path a job's command uses), whether it is built
already, and every package it would install; or uv's error, with the requirement lines it names.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from custom_repos.git import RepoError
from custom_repos.spec import RepoSpec
from custom_repos.translate import env_spec
from envs.errors import EnvBuildError
from envs.manager import MARKER, OVERRIDES_FILE, REQUIREMENTS_FILE
from envs.uvcli import find_uv, mentioned_requirements, resolve_python_version, uv_environ

#: Seconds the dry-run resolution may take (a cold resolve of torch and friends takes seconds).
RESOLVE_TIMEOUT = 600
_WOULD_INSTALL = re.compile(r"^\s*\+\s+(\S+)")


def check_env(step: Any, source: str, spec: RepoSpec, checkout: Path, home: Path, scratch: Path) -> Any:
    """Resolve ``spec``'s env into ``step`` (a ``custom_repos.check.Step``); the step, or None when it failed."""
    try:
        env = env_spec(spec, checkout)
    except RepoError as exc:
        step.problem(source, "requirements_file", str(exc))
        return None
    try:
        uv = find_uv()
        version = resolve_python_version(uv, spec.python, scratch)
    except EnvBuildError as exc:
        step.problem(source, "python", str(exc))
        return None
    name = f"{env.name}-{env.key(version)}"
    path = Path(home) / "envs" / name
    built = (path / MARKER).is_file()
    step.update(env=name, python_version=version, python=str(path / "bin" / "python"), built=built)
    lines = [*env.requirements, *env.requirements_text.splitlines()]
    if not any(line.strip() and not line.strip().startswith("#") for line in lines):
        step.update(summary=f"{name} (python {version}): nothing to install", would_install=[])
        return step
    venv = scratch / "venv"
    done = _uv(uv, ["venv", "--python", version, str(venv)], scratch)
    if done.returncode != 0:
        step.problem(source, "python", f"`uv venv --python {version}` failed:\n{_tail(done.stdout)}")
        return None
    (scratch / REQUIREMENTS_FILE).write_text("".join(line + "\n" for line in lines))  # as the env manager writes
    args = ["pip", "install", "--dry-run", "--python", str(venv / "bin" / "python"), "-r",
            str(scratch / REQUIREMENTS_FILE)]
    if env.overrides:
        (scratch / OVERRIDES_FILE).write_text("".join(o + "\n" for o in env.overrides))
        args += ["--overrides", str(scratch / OVERRIDES_FILE)]
    done = _uv(uv, args, scratch)
    output = done.stdout.splitlines()
    if done.returncode != 0:
        culprits = list(dict.fromkeys(mentioned_requirements([*lines, *env.overrides], output)))
        if culprits and set(culprits) <= set(env.overrides):
            field = "overrides"
        elif (culprits and set(culprits) <= set(env.requirements)) or not spec.requirements_file:
            field = "requirements"
        else:
            field = "requirements_file"
        message = "uv cannot resolve the env"
        if culprits:
            message += f" (failing requirement(s): {', '.join(culprits)})"
        step.problem(source, field, f"{message}:\n{_tail(done.stdout)}")
        step.update(resolver_output=output[-40:], summary=f"{name} (python {version}): does not resolve")
        return None
    packages = [m.group(1) for line in output if (m := _WOULD_INSTALL.match(line))]
    step.update(would_install=packages, summary=(
        f"{name} (python {version}): resolves, {len(packages)} package(s)"
        + (" (already built: jobs reuse it)" if built else "")))
    return step


def _uv(uv: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([uv, *args], cwd=cwd, env=uv_environ(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, errors="replace", timeout=RESOLVE_TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess([uv, *args], 124, f"uv took over {RESOLVE_TIMEOUT} s", "")


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.splitlines() if line.strip() and not line.startswith("Using Python")]
    return "\n".join("  " + line for line in kept[-lines:])
