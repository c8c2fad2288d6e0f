"""Errors raised while preparing a job's environment."""

from __future__ import annotations


class EnvBuildError(RuntimeError):
    """Building an env failed. The message names the command, the likely culprit, uv's last lines.

    The runner shows ``str(error)`` as the job's failure reason, so the message is written for a
    user reading a failed job, not for a developer reading a traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        command: list[str] | None = None,
        returncode: int | None = None,
        output_tail: list[str] | None = None,
        failed_requirements: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.returncode = returncode
        self.output_tail = output_tail or []
        self.failed_requirements = failed_requirements or []


class EnvBuildCancelled(EnvBuildError):
    """The build (or the wait for another process's build) was cancelled by the caller.

    A subclass of ``EnvBuildError`` so that code which only cares "the env is not there" catches
    both, while the runner can tell "stopped by the user" (``CANCELLED``) apart from "failed".
    """
