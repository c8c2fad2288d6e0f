"""The Ray backend (`visionyard serve --backend ray --ray-address URL`): admission from the
cluster's free CPUs and GPUs, and jobs launched as Ray jobs through `RayChild`.

Ray does the placement; visionyard keeps the promises. A job leaves *our* queue only when the
cluster has what it asks for free (so it waits where a user sees and cancels it, not PENDING
inside Ray), runs under its supervisor on a node, reports to the daemon over TCP with its own
token, and its log reaches the daemon through Ray's log stream.

By default a node needs only Python and Ray: the daemon prepares the job as for a local run but
builds no env, writes the node's plan (`runner/launch/ray/node_files.py`) and submits the node agent
(`runner/payload/node_agent.py`, shipped with our code and uv as Ray packages), which fetches the job
dir and checkout, builds the env on the node with the same env manager and hash (cached in the
node home), runs the command under its supervisor and sends the results back. With
``--ray-shared-home`` the nodes see the daemon's home at the same path instead: the daemon makes
the env, checkout and job dir there, and the supervisor and the child's code are copied into the
home, never linked to where the daemon is installed.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from adapters.child_env import ENV_ADDRESS, ENV_JOB_ID, ENV_TOKEN
from envs import Env
from envs.spec import PLATFORM
from runner.launch.ray import node_files
from runner.launch.context import Command, JobContext
from runner.launch.devices import Assignment
from runner.launch.jobdir import ENV_LINK
from runner.launch.local import SUPERVISOR, TERMINATE_GRACE_SECONDS, ensure_env_here
from runner.launch.ray.api import RayJobsClient, RayRequestError, RayUnavailable
from runner.launch.ray.child import LOST_AFTER_SECONDS, RayChild, stop_wait

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
    """Jobs as Ray jobs: our job id is the submission id, the supervisor runs them on the node.

    `node_home` (an absolute path, the same on every node): the nodes share nothing with the
    daemon and the agent prepares each job there; None: they see the daemon's home (shared).
    """

    name = BACKEND

    def __init__(self, address: str, paths, store, cpus_per_job: float = 1.0, python: str = "python3",
                 lost_after: float = LOST_AFTER_SECONDS, grace: float = TERMINATE_GRACE_SECONDS,
                 node_home: str | None = None, reporter: tuple[str, dict[str, str]] = ("", {})):
        self.client = RayJobsClient(address)
        self.devices = RayDevicePool(self.client, cpus_per_job)
        self.paths, self.store = paths, store
        self.code_dir = paths.home / "ray-code"
        self.python, self.lost_after, self.grace = python, lost_after, grace
        self.supervisor = self.code_dir / SUPERVISOR.name
        self.node_home = node_home.rstrip("/") if node_home else None
        self.reporter_address, self.reporter_env = reporter
        self.packages: dict[str, str] = {}  # "code" / "uv" → package name in code_dir

    def check_head(self) -> str:
        """The head's Ray version; SystemExit with what to fix when it does not answer."""
        try:
            return self.client.version()
        except (RayUnavailable, RayRequestError) as exc:
            raise SystemExit(f"--ray-address {self.client.address}: the Ray head does not answer ({exc}). Start "
                             "it (ray start --head) or give the address of its dashboard (port 8265 by default)"
                             ) from None

    def install_code(self) -> None:
        """Shared home: the supervisor where every node sees it. Otherwise the node agent's
        packages (our code, uv), named by the hash of their bytes, kept in the home to upload."""
        self.code_dir.mkdir(parents=True, exist_ok=True)
        if self.node_home is None:
            staging = self.code_dir / f".{SUPERVISOR.name}.new"
            shutil.copyfile(SUPERVISOR, staging)
            staging.replace(self.supervisor)
            return
        from envs.uvcli import find_uv

        uv = Path(find_uv())
        code = node_files.code_package()
        for kind, name, make in (("code", node_files.package_name(code), lambda: code),
                                 ("uv", node_files.package_name(b"uv" + uv.read_bytes()),
                                  lambda: node_files.uv_package(uv))):
            if not (self.code_dir / name).exists():
                (self.code_dir / f".{name}.new").write_bytes(make())
                (self.code_dir / f".{name}.new").replace(self.code_dir / name)
            self.packages[kind] = name
        for old in self.code_dir.glob("_ray_pkg_*.zip"):
            if old.name not in self.packages.values():
                old.unlink(missing_ok=True)

    def ensure_env(self, envs, spec, job: JobContext, log) -> Env:
        """Shared home: the env, built here. Otherwise nothing is built here: the node builds it
        (same spec, same hash) and links it as the job dir's ``env``."""
        if self.node_home is None:
            return ensure_env_here(envs, spec, job, log)
        log.write(f"[visionyard] env '{spec.name}' is built on the node that runs the job (cached there)\n")
        env_dir = job.job_dir / ENV_LINK
        return Env("", spec.name, "", env_dir, env_dir / "bin" / "python", reused=False, build_seconds=0.0)

    def reported_path(self, job_id: str, path: str) -> str:
        """A path a child reported, as the daemon sees it once the node sent the file back."""
        if self.node_home is not None:
            node_job_dir = f"{self.node_home}/jobs/{job_id}"
            if path == node_job_dir or path.startswith(node_job_dir + "/"):
                return str(self.paths.job_dir(job_id)) + path[len(node_job_dir):]
        return path

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

    def start(self, command: Command, env: dict[str, str], job: JobContext, launch: dict) -> RayChild:
        assignment = job.assignment
        common = dict(num_cpus=self.devices.cpus_per_job, num_gpus=assignment.gpus, lost_after=self.lost_after,
                      metadata={"visionyard_job_id": job.job_id, "visionyard_job_name": job.name[:200]},
                      on_running=self.on_running(job.job_id, assignment))
        if self.node_home is None:
            return RayChild.start(self.client, launch["submission_id"], command.argv, command.cwd, env, job.log_path,
                                  job.job_dir, job.token, python=self.python, grace=self.grace,
                                  supervisor=self.supervisor, **common)
        self.write_plan(command, env, job)
        modules = [self.client.ensure_package(self.packages[kind], (self.code_dir / self.packages[kind]).read_bytes)
                   for kind in ("code", "uv")]
        agent_env = {node_files.ENV_NODE_HOME: self.node_home, ENV_ADDRESS: self.reporter_address,
                     **self.reporter_env, ENV_JOB_ID: job.job_id,
                     ENV_TOKEN: job.token, "PYTHONUNBUFFERED": "1", **stop_wait(self.grace)}
        if not assignment.gpus:
            agent_env["CUDA_VISIBLE_DEVICES"] = ""
        entrypoint = f"exec {shlex.quote(self.python)} -s -m visionyard_node"
        return RayChild.submit(self.client, launch["submission_id"], entrypoint, agent_env, job.log_path,
                               job.job_dir, py_modules=modules, **common)

    def write_plan(self, command: Command, env: dict[str, str], job: JobContext) -> None:
        """The node's plan: the command with the daemon's paths mapped to the node home's."""
        from custom_repos.translate import SHIM_DIR

        code = f"{self.node_home}/code/{self.packages['code'].removesuffix('.zip')}"
        paths = node_files.PathMap({str(self.paths.child_path): f"{code}/child", str(SHIM_DIR): f"{code}/shims",
                                    str(self.paths.home): self.node_home})
        checkout, job_dir = command.checkout, job.job_dir
        plan = {"format": node_files.PLAN_FORMAT, "job_id": job.job_id,
                "code": self.packages["code"].removesuffix(".zip"), "uv": self.packages["uv"].removesuffix(".zip"),
                "uv_platform": PLATFORM, "job_dir": paths.text(str(job_dir)),
                "argv": [paths.text(a) for a in command.argv], "cwd": paths.text(str(command.cwd)),
                "env": {k: paths.text(v) for k, v in env.items()}, "grace": self.grace,
                "env_spec": command.env_spec.to_dict(),
                "checkout": paths.text(str(checkout)) if checkout else None,
                "checkout_source": str(checkout) if checkout else None, "paths": paths.pairs,
                "work_tree": paths.text(str(command.work_tree)) if command.work_tree and checkout else None,
                "upload": [d for d in node_files.RESULT_FOLDERS if (job_dir / d).is_dir()],
                "upload_made_only": [node_files.WORK_TREE],  # not the checkout's files linked there
                "home_files": self.home_files(job.spec)}
        node_files.write_plan(self.paths, job.job_id, plan)

    def home_files(self, spec: dict) -> list[str]:
        """The files (or checkpoint folders) of the daemon's job dirs a job starts from, relative
        to the home: an earlier job's checkpoint as `weights` or `resume` goes with the job (to
        the same place under the node home, where the command's mapped path names it)."""
        jobs = self.paths.jobs
        found = []
        for field in ("weights", "resume"):
            value = spec.get(field)
            if not value:
                continue
            path = Path(os.path.normpath(value))
            if path.is_relative_to(jobs) and path.exists() and path.resolve().is_relative_to(jobs.resolve()):
                found.append(path.relative_to(self.paths.home).as_posix())
        return found

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
