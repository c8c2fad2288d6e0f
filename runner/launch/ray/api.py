"""A small client of Ray's job submission REST API (the dashboard, e.g. http://head:8265).

Standard library only: the daemon needs no Ray install to hand jobs to a Ray cluster. What the
API does (Ray 2.60), as this client relies on it:

- ``POST /api/jobs/`` submits; a `submission_id` that exists is refused (HTTP 500, "already
  exists"), which makes a resubmission idempotent. The entrypoint runs as ``/bin/sh -c``.
- ``GET /api/jobs/{id}``: status PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED (the last three
  final), `driver_exit_code` (the shell's), `driver_node_id` once running; 404 once the head has
  restarted (jobs live in the head's memory).
- ``POST /api/jobs/{id}/stop``: SIGTERM to the entrypoint's processes, SIGKILL after
  ``RAY_JOB_STOP_WAIT_TIME_S`` (an integer, read from the job's own env vars).
- ``GET /api/v0/logs/stream?node_id=&submission_id=&lines=-1`` streams the job's log from its
  start and never ends by itself; ``GET /api/jobs/{id}/logs`` returns it whole.
- ``GET /api/cluster_status``: per resource ``[used, total]`` (a `GPU` key only when the cluster
  has GPUs), refreshed by Ray every 5 s.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
TIMEOUT_SECONDS = 10.0


class RayUnavailable(RuntimeError):
    """The head's dashboard can't be reached (down, restarting, wrong address)."""


class RayRequestError(RuntimeError):
    """The head answered with an error."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text.strip().splitlines()[-1] if text.strip() else ''}"[:500])
        self.status, self.text = status, text


@dataclass
class RayJob:
    submission_id: str
    status: str
    message: str = ""
    exit_code: int | None = None
    node_id: str | None = None
    error_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.status in TERMINAL


@dataclass
class Resources:
    total: dict[str, float]
    used: dict[str, float]

    def free(self, name: str) -> float:
        return self.total.get(name, 0.0) - self.used.get(name, 0.0)


class RayJobsClient:
    def __init__(self, address: str, timeout: float = TIMEOUT_SECONDS):
        address = address.rstrip("/")
        if "://" not in address:
            address = f"http://{address}"
        if not address.startswith(("http://", "https://")):
            raise ValueError(f"--ray-address {address!r}: give the head's dashboard, e.g. http://head:8265")
        self.address, self.timeout = address, timeout

    # ---------------------------------------------------------------- jobs

    def version(self) -> dict[str, Any]:
        """The head's Ray version and session (a new session name: the head restarted)."""
        return self._json("GET", "/api/version")

    def submit(self, submission_id: str, entrypoint: str, env_vars: dict[str, str], metadata: dict[str, str],
               num_cpus: float = 0, num_gpus: float = 0, py_modules: list[str] | None = None) -> bool:
        """Submit; False when a job with this id exists already (a resubmission: nothing done).
        `py_modules`: packages (`gcs://` URIs) Ray unpacks on the node and puts on PYTHONPATH."""
        runtime_env: dict[str, Any] = {"env_vars": env_vars}
        if py_modules:
            runtime_env["py_modules"] = py_modules
        body = {"submission_id": submission_id, "entrypoint": entrypoint, "metadata": metadata,
                "runtime_env": runtime_env,
                "entrypoint_num_cpus": num_cpus, "entrypoint_num_gpus": num_gpus}
        try:
            self._json("POST", "/api/jobs/", body)
        except RayRequestError as exc:
            if "already exists" in exc.text:
                return False
            raise
        return True

    def job(self, submission_id: str) -> RayJob | None:
        """The job's state; None when the head doesn't know it (never submitted, or the head restarted)."""
        try:
            data = self._json("GET", f"/api/jobs/{_quote(submission_id)}")
        except RayRequestError as exc:
            if exc.status == 404:
                return None
            raise
        return RayJob(submission_id, data.get("status") or "PENDING", data.get("message") or "",
                      data.get("driver_exit_code"), data.get("driver_node_id"), data.get("error_type"),
                      data.get("metadata") or {})

    def stop(self, submission_id: str) -> bool:
        try:
            return bool(self._json("POST", f"/api/jobs/{_quote(submission_id)}/stop").get("stopped"))
        except RayRequestError as exc:
            if exc.status == 404:
                return False
            raise

    def logs(self, submission_id: str) -> bytes:
        """The job's whole log."""
        return self._json("GET", f"/api/jobs/{_quote(submission_id)}/logs").get("logs", "").encode()

    def log_stream(self, node_id: str, submission_id: str, interval: float = 0.5) -> "LogStream":
        """The job's log from its first byte, then what is appended, as it comes. It never ends by
        itself: `close()` it (from any thread)."""
        query = urllib.parse.urlencode({"node_id": node_id, "submission_id": submission_id,
                                        "interval": interval, "lines": -1})
        return LogStream(self._open("GET", f"/api/v0/logs/stream?{query}", timeout=max(30.0, self.timeout)))

    def resources(self) -> Resources:
        data = self._json("GET", "/api/cluster_status")
        usage = (((data.get("data") or {}).get("clusterStatus") or {}).get("loadMetricsReport") or {}).get("usage") or {}
        return Resources(total={k: float(v[1]) for k, v in usage.items()},
                         used={k: float(v[0]) for k, v in usage.items()})

    # ---------------------------------------------------------------- packages

    def ensure_package(self, name: str, data: Callable[[], bytes]) -> str:
        """The `gcs://` URI of package `name` (``_ray_pkg_<hash>.zip``), uploaded when the head
        lacks it (a look also keeps an unused package from Ray's clean-up for a while)."""
        path = f"/api/packages/gcs/{urllib.parse.quote(name)}"
        try:
            with self._open("GET", path):
                pass
        except RayRequestError as exc:
            if exc.status != 404:
                raise
            with self._open("PUT", path, raw=data(), timeout=max(120.0, self.timeout)):
                pass
        return f"gcs://{name}"

    # ---------------------------------------------------------------- http

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        with self._open(method, path, body) as response:
            text = response.read().decode("utf-8", "replace")
        return json.loads(text) if text.strip() else {}

    def _open(self, method: str, path: str, body: dict | None = None, timeout: float | None = None,
              raw: bytes | None = None):
        data = json.dumps(body).encode() if body is not None else raw
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(self.address + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)  # noqa: S310 (the user's head)
        except urllib.error.HTTPError as exc:
            raise RayRequestError(exc.code, exc.read().decode("utf-8", "replace")) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RayUnavailable(f"the Ray head at {self.address} can't be reached ({reason})") from None


class LogStream:
    def __init__(self, response):
        self.response = response

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.response.read1(65536):
            yield chunk

    def interrupt(self) -> None:
        """Ends a read blocked in another thread (which then closes the stream)."""
        fp = self.response.fp
        sock = getattr(getattr(fp, "raw", None), "_sock", None) if fp is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.response.close()


def _quote(submission_id: str) -> str:
    return urllib.parse.quote(submission_id, safe="")
