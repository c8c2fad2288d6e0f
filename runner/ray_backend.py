"""The Ray backend (`visionyard serve --backend ray --ray-address URL`): admission from the
cluster's free CPUs and GPUs, and jobs launched as Ray jobs through `RayChild`.

Ray does the placement; visionyard keeps the promises. A job leaves *our* queue only when the
cluster has what it asks for free (so it waits where a user sees and cancels it, not PENDING
inside Ray), runs under its supervisor on a node, reports to the daemon over TCP with its own
token, and its log reaches the daemon through Ray's log stream.

The cluster's nodes see the daemon's home at the same path (a shared file system): the env,
the repo checkout and the job dir are made by the daemon there, the job's checkpoints are
written there. The code a child imports (``adapters``, ``protos``) and the supervisor are
copied into the home for that reason, never linked to where the daemon is installed.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from runner.devices import Assignment
from runner.launcher import SUPERVISOR, TERMINATE_GRACE_SECONDS
from runner.ray_api import RayJobsClient, RayRequestError, RayUnavailable
from runner.ray_launcher import LOST_AFTER_SECONDS, RayChild

log = logging.getLogger("visionyard.ray")

BACKEND = "ray"
REPORT_SECONDS = 10.0  # the head's resource usage report lags this long behind a job that started
RESOURCES_TTL = 1.0    # the scheduler's passes share one look at the cluster per second


@dataclass
class _Claim:
    cpus: float
    gpus: int
    running_since: float | None = None  # when Ray started running it (monotonic)


def _held(claims, resource: str) -> float:
    return sum(c.cpus if resource == "CPU" else c.gpus for c in claims)


class RayDevicePool:
    """Admission for a Ray cluster: a job starts when the cluster has the CPUs (and the GPU) it asks
    for free. What is free is the cluster's total minus what others use minus what our own jobs
    hold; the head's usage report lags a few seconds, so our jobs are counted from our own claims,
    and a job of ours counts in the head's figure only once it has run for `REPORT_SECONDS`.

    A job that just ended may still be in the head's figure for a few seconds: it is not taken
    for someone else's use, so a queue of jobs on a full cluster starts the next at once.

    A job's device `cuda` or `cuda:N` asks for one GPU (Ray picks which; the child sees it as
    ``cuda:0``); `auto` asks for one when the cluster has any GPU, else runs on CPU.
    """

    def __init__(self, client: RayJobsClient, cpus_per_job: float = 1.0):
        self.client = client
        self.cpus_per_job = cpus_per_job
        self.waiting = ""
        self._claims: dict[int, _Claim] = {}
        self._ended: list[tuple[float, _Claim]] = []  # (when, claim) of jobs that ended lately
        self._lock = threading.Lock()
        self._resources = None
        self._resources_at = -math.inf

    def check(self, request: str) -> str | None:
        if request in ("cpu", "auto", "cuda") or request.startswith("cuda:"):
            return None
        return f"'{request}' is not a device (use cpu, cuda or auto)"

    def _look(self):
        now = time.monotonic()
        if now - self._resources_at >= RESOURCES_TTL:
            self._resources, self._resources_at = self.client.resources(), now
        return self._resources

    def acquire(self, request: str) -> Assignment | None:
        try:
            resources = self._look()
        except (RayUnavailable, RayRequestError) as exc:
            self.waiting = f"waiting for the Ray head at {self.client.address}, which does not answer ({exc})"
            return None
        total_gpus = resources.total.get("GPU", 0)
        gpus = 1 if request.startswith("cuda") or (request == "auto" and total_gpus > 0) else 0
        with self._lock:
            now = time.monotonic()
            self._ended = [(at, c) for at, c in self._ended if now - at < REPORT_SECONDS]
            settled = [c for c in self._claims.values() if c.running_since and now - c.running_since >= REPORT_SECONDS]
            settled += [c for _, c in self._ended]  # ended, maybe still in the head's figure: not others' use
            free = {}
            for name in ("CPU", "GPU"):
                others = max(0.0, resources.used.get(name, 0) - _held(settled, name))
                free[name] = resources.total.get(name, 0) - others - _held(self._claims.values(), name)
            short = [f"{need:g} {name} ({max(0, free[name]):g} of {resources.total.get(name, 0):g} free)"
                     for name, need in (("GPU", gpus), ("CPU", self.cpus_per_job)) if need and free[name] < need]
            if short:
                self.waiting = f"waiting for {' and '.join(short)} on the Ray cluster"
                return None
            assignment = Assignment("cuda:0" if gpus else "cpu", "", None, gpus=gpus)
            self._claims[id(assignment)] = _Claim(self.cpus_per_job, gpus)
            self.waiting = ""
            return assignment

    def claim(self, gpu: int | None, visible_devices: str, device: str, gpus: int = 0) -> Assignment:
        """A job a previous daemon started: its resources are counted as used from now on."""
        assignment = Assignment(device or "cpu", "", None, gpus=gpus)
        with self._lock:
            self._claims[id(assignment)] = _Claim(self.cpus_per_job, gpus, running_since=time.monotonic())
        return assignment

    def running(self, assignment: Assignment) -> None:
        with self._lock:
            claim = self._claims.get(id(assignment))
            if claim is not None and claim.running_since is None:
                claim.running_since = time.monotonic()

    def release(self, assignment: Assignment) -> None:
        """The job ended. For `REPORT_SECONDS` the head may still count it as used; what it holds
        there is not taken for others' use meanwhile, so the next job of the queue starts at once
        (should the head's figure already have dropped it while others' use grew in that window,
        the job waits PENDING in Ray for a moment instead)."""
        with self._lock:
            claim = self._claims.pop(id(assignment), None)
            if claim is not None and claim.running_since is not None:
                self._ended.append((time.monotonic(), claim))


class RayLauncher:
    """Jobs as Ray jobs: our job id is the submission id, the supervisor runs them on the node."""

    name = BACKEND

    def __init__(self, address: str, code_dir: Path, store, cpus_per_job: float = 1.0, python: str = "python3",
                 lost_after: float = LOST_AFTER_SECONDS, grace: float = TERMINATE_GRACE_SECONDS):
        self.client = RayJobsClient(address)
        self.devices = RayDevicePool(self.client, cpus_per_job)
        self.code_dir, self.store = code_dir, store
        self.python, self.lost_after, self.grace = python, lost_after, grace
        self.supervisor = code_dir / SUPERVISOR.name

    def check_head(self) -> str:
        """The head's Ray version; SystemExit with what to fix when it does not answer."""
        try:
            return self.client.version()
        except (RayUnavailable, RayRequestError) as exc:
            raise SystemExit(f"--ray-address {self.client.address}: the Ray head does not answer ({exc}). Start "
                             "it (ray start --head) or give the address of its dashboard (port 8265 by default)"
                             ) from None

    def install_code(self) -> None:
        """The supervisor where every node sees it (the home)."""
        self.code_dir.mkdir(parents=True, exist_ok=True)
        staging = self.code_dir / f".{SUPERVISOR.name}.new"
        shutil.copyfile(SUPERVISOR, staging)
        staging.replace(self.supervisor)

    def environment(self, extra: dict[str, str], assignment: Assignment) -> dict[str, str]:
        """Only what the job needs: Ray adds it to the node's own environment (never the daemon's,
        whose paths and secrets mean nothing on a node)."""
        env = {**extra, "PYTHONUNBUFFERED": "1"}
        if "PYTHONPYCACHEPREFIX" in extra:  # bytecode written and reused there, as for a local child,
            env["PYTHONDONTWRITEBYTECODE"] = ""  # even where the node's Ray runs with it set (empty: unset)
        if not assignment.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU job sees no GPU, as locally; Ray sets it for GPU jobs
        return env

    def launch_record(self, job_id: str, log_path: Path) -> dict:
        return {"backend": BACKEND, "ray_address": self.client.address, "submission_id": job_id,
                "log_base": log_path.stat().st_size if log_path.exists() else 0}

    def start(self, argv: list[str], cwd: Path, env: dict[str, str], execution, launch: dict) -> RayChild:
        assignment = execution.assignment
        return RayChild.start(
            self.client, launch["submission_id"], argv, cwd, env, execution.log_path, execution.job_dir,
            execution.token, python=self.python, num_cpus=self.devices.cpus_per_job, num_gpus=assignment.gpus,
            metadata={"visionyard_job_id": execution.job_id, "visionyard_job_name": execution.record.name[:200]},
            grace=self.grace, lost_after=self.lost_after, supervisor=self.supervisor,
            on_running=self.on_running(execution.job_id, assignment))

    def on_running(self, job_id: str, assignment: Assignment):
        def running(node_id: str) -> None:
            self.devices.running(assignment)
            with self.store.atomic():
                self.store.update(job_id, placement=f"Ray submission {job_id} on node {node_id}")
                self.store.add_logs(job_id, [f"[visionyard] Ray runs submission {job_id} on node {node_id}"])
        return running

    def describe(self, child: RayChild, assignment: Assignment) -> str:
        gpu = f", {assignment.gpus} GPU" if assignment.gpus else ""
        return f"Ray submission {child.submission_id} at {self.client.address} ({self.devices.cpus_per_job:g} CPU{gpu})"

    def placement(self, child: RayChild) -> str:
        return f"Ray submission {child.submission_id} (waiting for a node)"


def attach(launch: dict, job_dir: Path, log_path: Path, launcher=None, job_id: str = "",
           assignment: Assignment | None = None) -> RayChild:
    """The Ray job a previous daemon submitted (from its launch record), at the head it went to."""
    same_head = isinstance(launcher, RayLauncher) and launcher.client.address == launch["ray_address"]
    client = launcher.client if same_head else RayJobsClient(launch["ray_address"])
    lost_after = launcher.lost_after if isinstance(launcher, RayLauncher) else LOST_AFTER_SECONDS
    on_running = launcher.on_running(job_id, assignment) if same_head and assignment is not None else None
    return RayChild.attach(client, launch["submission_id"], job_dir, log_path, int(launch.get("log_base", 0)),
                           lost_after=lost_after, on_running=on_running)


def submitted(launch: dict) -> bool | None:
    """Whether the head knows the job of this launch record (None: the head does not answer)."""
    try:
        return RayJobsClient(launch["ray_address"]).job(launch["submission_id"]) is not None
    except (RayUnavailable, RayRequestError):
        return None
