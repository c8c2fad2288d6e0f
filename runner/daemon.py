"""The runner daemon: one gRPC server for clients (Runner) and children (Reporter)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from concurrent import futures
from pathlib import Path

import filelock
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import adapters
import protos
from custom_repos.git import RepoCache
from custom_repos.registry import RepoRegistry
from envs.manager import EnvManager
from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.devices import DevicePool, detect_gpus
from runner.gc import Policy, collect_garbage
from runner.jobs import Runtime, finish_tracking
from runner.scheduler import Scheduler
from runner.servicers import ReporterServicer, RunnerServicer
from runner.settings import Paths
from runner.store import JobState, JobStore
from runner.tracking import Tracker

log = logging.getLogger("visionyard.daemon")
MAX_SOCKET_PATH = 100
GC_FIRST_DELAY, GC_INTERVAL = 60.0, 3600.0


def link_child_path(paths: Paths) -> None:
    """A folder holding only `adapters` and `protos`, the child's PYTHONPATH (no host code leaks in)."""
    staging = paths.child_path.with_name(paths.child_path.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for package in (adapters, protos):
        source = Path(package.__file__).resolve().parent
        (staging / source.name).symlink_to(source, target_is_directory=True)
    shutil.rmtree(paths.child_path, ignore_errors=True)
    staging.rename(paths.child_path)


class Daemon:
    def __init__(self, home: Path, listen: str | None = None, max_concurrent_jobs: int = 1,
                 gpus: str | None = None, cancel_jobs_on_stop: bool = False, gc_policy: Policy | None = None):
        self.paths = Paths(home).ensure()
        if len(str(self.paths.socket)) > MAX_SOCKET_PATH:
            raise SystemExit(f"the home path is too long for a unix socket ({self.paths.socket}); "
                             "use a shorter --home or VISIONYARD_HOME")
        self._home_lock = filelock.FileLock(str(self.paths.home / "daemon.lock"))
        try:
            self._home_lock.acquire(timeout=0)
        except filelock.Timeout:
            raise SystemExit(f"another visionyard daemon is already serving {self.paths.home} "
                             f"(at unix://{self.paths.socket}); stop it first or use another --home") from None
        self.listen = listen
        self.cancel_jobs_on_stop = cancel_jobs_on_stop
        self.gc_policy = gc_policy or Policy()
        link_child_path(self.paths)
        self.store = JobStore(self.paths.db)
        self.tracker = Tracker(self.paths.mlflow_uri, self.paths.mlflow_artifacts,
                               lambda job_id, run_id: self.store.update(job_id, mlflow_run_id=run_id),
                               metric_points=self.store.metric_points,
                               on_ended=lambda job_id: self.store.update(job_id, tracking_done=1))
        self.runtime = Runtime(self.paths, self.store, EnvManager(self.paths.envs), self.tracker,
                               DevicePool(detect_gpus(gpus)), reporter_address=f"unix://{self.paths.socket}",
                               repos=RepoRegistry(self.paths.repos / "specs"), repo_cache=RepoCache(self.paths.repos))
        if "OMP_NUM_THREADS" not in os.environ:  # concurrent jobs share the cores instead of fighting
            self.runtime.threads_per_job = max(1, (os.cpu_count() or 1) // max_concurrent_jobs)
        self.scheduler = Scheduler(self.runtime, max_concurrent_jobs)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="rpc"),
                                  options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        pb_grpc.add_RunnerServicer_to_server(RunnerServicer(self.runtime, self.scheduler, self.gc_policy),
                                             self.server)
        pb_grpc.add_ReporterServicer_to_server(ReporterServicer(self.runtime), self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [d.full_name for d in pb.DESCRIPTOR.services_by_name.values()]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)
        self._stopped = threading.Event()

    def start(self) -> None:
        self.scheduler.recover()  # before any client (or child) can see a job the last daemon left active
        for record in self.store.list([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]):
            if not record.tracking_done:
                finish_tracking(self.runtime, record)
        if self.paths.socket.exists():
            self.paths.socket.unlink()
        self.server.add_insecure_port(f"unix://{self.paths.socket}")
        if self.listen:
            if self.server.add_insecure_port(self.listen) == 0:
                raise SystemExit(f"could not listen on {self.listen}")
        self.server.start()
        self.scheduler.start()
        threading.Thread(target=self._collect_garbage, name="gc", daemon=True).start()
        for name in ("", *(d.full_name for d in pb.DESCRIPTOR.services_by_name.values())):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("visionyard daemon serving on unix://%s%s (home %s)", self.paths.socket,
                 f" and {self.listen}" if self.listen else "", self.paths.home)

    def _collect_garbage(self) -> None:
        """The automatic policy: a first pass a minute after start, then every hour."""
        wait = GC_FIRST_DELAY
        while not self._stopped.wait(wait):
            wait = GC_INTERVAL
            try:
                removed = collect_garbage(self.runtime, self.gc_policy)
            except Exception:  # gc must never take the daemon down
                log.exception("garbage collection failed")
                continue
            if removed:
                log.info("gc freed %.1f MiB (%d item(s))", sum(r.bytes for r in removed) / 2**20, len(removed))

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        self.scheduler.shutdown(cancel_jobs=self.cancel_jobs_on_stop)
        self.server.stop(grace=2).wait()
        self.tracker.flush(timeout=30)
        self.tracker.close()
        self.store.close()
        if self.paths.socket.exists():
            self.paths.socket.unlink()
        self._home_lock.release()

    def serve_forever(self) -> None:
        self.start()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("shutting down")
        self.stop()


def serve(home: Path, listen: str | None = None, max_concurrent_jobs: int = 1, gpus: str | None = None,
          cancel_jobs_on_stop: bool = False, gc_policy: Policy | None = None) -> None:
    logging.basicConfig(level=os.environ.get("VISIONYARD_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Daemon(home, listen, max_concurrent_jobs, gpus, cancel_jobs_on_stop, gc_policy).serve_forever()
