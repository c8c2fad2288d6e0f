"""The command line: `visionyard` (`runner.cli:main`, `python -m runner.cli`); talks to the daemon only through `runner.client`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """`visionyard ARGS`. `--version` answers before the client (gRPC) or rich is loaded."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv == ["--version"]:
        from runner.cli.version import version

        print(f"visionyard {version()}")
        return 0
    from runner.cli.app import main as run

    return run(argv)


__all__ = ["main"]
