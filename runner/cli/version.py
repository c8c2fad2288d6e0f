"""`visionyard --version`: the installed package's version, or a source tree's (pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as installed

    try:
        return installed("visionyard")
    except PackageNotFoundError:
        pass
    try:
        import tomllib

        return tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"
