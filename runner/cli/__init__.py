"""The command line: `visionyard` (`runner.cli:main`, `python -m runner.cli`); talks to the daemon only through `runner.client`."""

from runner.cli.commands import main

__all__ = ["main"]
