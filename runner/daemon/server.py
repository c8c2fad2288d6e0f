"""The runner daemon: gRPC servers for clients (Runner, asyncio) and for children (Reporter)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import os
import shutil
import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import filelock
import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

import adapters
import protos
from adapters.child_env import ENV_TLS_ROOTS
from custom_repos.git import RepoCache
from custom_repos.registry import RepoRegistry
from envs.manager import EnvManager
from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.launch.devices import DevicePool, detect_gpus
from runner.core.gc import Policy, collect_garbage
from runner.auth import load_or_create_token
from runner.daemon.guard import AioGuard, Guard
from runner.core.jobs import finish_tracking
from runner.core.runtime import Runtime
from runner.launch.ray.uploads import UploadLimits
from runner.daemon.predictions import PredictLimits
from runner.daemon.workers import WorkerLimits, WorkerPool
from runner.core.scheduler import Scheduler
from runner.core.sweeps.engine import SweepEngine
from runner.daemon.servicers import ReporterServicer, RunnerServicer
from runner.settings import DEFAULT_NODE_HOME, MAX_MESSAGE_BYTES, Paths
from runner.core.store import TERMINAL, JobStore
from runner.core.tracking import Tracker
from runner.daemon.watch import EventLoopThread, WatchHub

log = logging.getLogger("visionyard.daemon")
MAX_SOCKET_PATH = 100
GC_FIRST_DELAY, GC_INTERVAL = 60.0, 3600.0
SERVER_OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
CLIENT_WORKERS = 64  # threads for clients' unary calls (watch streams are coroutines and hold none)
MAX_CLIENT_CALLS = 20_000  # calls open at once on a client server, watch streams included
SWITCH_INTERVAL = 0.001  # s a thread holds the GIL while another waits: short, for quick answers under load
REPORTER_WORKERS = 32  # threads for children's reports, shared with nothing else
STOP_GRACE = 2.0  # s the calls in flight get to end when the daemon stops; then they are cancelled
STOP_WAIT = 3.0  # s more the servers get to finish their cancelled calls; then the stop goes on without them


def link_child_path(paths: Paths, copy: bool = False) -> None:
    """A folder holding only `adapters` and `protos`, the child's PYTHONPATH (no host code leaks in):
    links to the installed packages, or copies of them (`copy`) where other machines run the jobs."""
    staging = paths.child_path.with_name(paths.child_path.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for package in (adapters, protos):
        source = Path(package.__file__).resolve().parent
        if copy:
            shutil.copytree(source, staging / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (staging / source.name).symlink_to(source, target_is_directory=True)
    shutil.rmtree(paths.child_path, ignore_errors=True)
    staging.rename(paths.child_path)


class Daemon:
    def __init__(self, home: Path, listen: str | None = None, max_concurrent_jobs: int = 1,
                 gpus: str | None = None, cancel_jobs_on_stop: bool = False, gc_policy: Policy | None = None,
                 tcp: TcpOptions | None = None, ray: RayOptions | None = None, predict: PredictLimits | None = None,
                 workers: WorkerLimits | None = None):
        os.umask(0o077)  # everything the daemon and its children write is the owner's only
        self.paths = Paths(home).ensure()
        make_private(self.paths)
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
        self.tcp = tcp or TcpOptions()
        if listen:
            self.tcp.check(listen)
        reporter_address, reporter_env = f"unix://{self.paths.reporter_socket}", {}
        if ray is not None:
            reporter_address, reporter_env = ray.check(listen, self.tcp)
        link_child_path(self.paths, copy=ray is not None and ray.shared_home)
        self.store = JobStore(self.paths.db)
        self.tracker = Tracker(self.paths.mlflow_uri, self.paths.mlflow_artifacts,
                               lambda job_id, run_id: self.store.update(job_id, mlflow_run_id=run_id),
                               metric_points=self.store.metric_points,
                               on_ended=lambda job_id: self.store.update(job_id, tracking_done=1))
        launcher = None
        if ray is not None:
            from runner.launch.ray.backend import RayLauncher

            launcher = RayLauncher(ray.address, self.paths, self.store, ray.cpus_per_job, ray.python, ray.lost_after,
                                   node_home=None if ray.shared_home else ray.node_home,
                                   reporter=(reporter_address, reporter_env))
            log.info("jobs run on the Ray cluster at %s (Ray %s)", ray.address,
                     launcher.check_head().get("ray_version", "?"))
            launcher.install_code()
        self.runtime = Runtime(self.paths, self.store, EnvManager(self.paths.envs), self.tracker,
                               launcher.devices if launcher else DevicePool(detect_gpus(gpus)),
                               reporter_address=reporter_address, reporter_env=reporter_env,
                               repos=RepoRegistry(self.paths.repos / "specs"), repo_cache=RepoCache(self.paths.repos),
                               launcher=launcher)
        if ray is not None:  # a job's threads: the CPUs Ray reserves for it
            self.runtime.threads_per_job = max(1, math.ceil(ray.cpus_per_job))
        elif "OMP_NUM_THREADS" not in os.environ:  # concurrent jobs share the cores instead of fighting
            self.runtime.threads_per_job = max(1, (os.cpu_count() or 1) // max_concurrent_jobs)
        self.scheduler = Scheduler(self.runtime, max_concurrent_jobs)
        self.sweeps = SweepEngine(self.runtime, self.scheduler)  # hyperparameter sweeps: a client of the queue
        self.health = health.HealthServicer()  # the reporter's (threads)
        self.aio_health = health.aio.HealthServicer()  # the client servers' (its watches are coroutines)
        sys.setswitchinterval(SWITCH_INTERVAL)
        # Clients are served by asyncio servers (a watch stream is a coroutine, unary calls run on
        # a bounded pool); children report on a socket of their own, served by threads nothing
        # else uses, so no number of watchers can delay a report.
        self.aio = EventLoopThread()
        self.watch_hub = WatchHub(self.aio.loop)
        self.store.add_listener(self.watch_hub.changed)
        self.client_pool = futures.ThreadPoolExecutor(max_workers=CLIENT_WORKERS, thread_name_prefix="rpc")
        self.workers = WorkerPool(workers)
        if hasattr(self.runtime.devices, "reclaim"):  # a training job that wants a GPU stops idle GPU workers
            self.runtime.devices.reclaim = self.workers.release_gpus
        runner = RunnerServicer(self.runtime, self.scheduler, self.gc_policy, self.watch_hub, self.client_pool,
                                predict, self.workers)
        runner.sweeps = self.sweeps
        reporter = ReporterServicer(self.runtime, ray.upload_limits if ray is not None else None)
        self.server = self.aio.run(self._client_server(AioGuard(), runner, reporter))
        self.reporter_server = self._register(
            grpc.server(futures.ThreadPoolExecutor(max_workers=REPORTER_WORKERS, thread_name_prefix="report"),
                        interceptors=[Guard()], maximum_concurrent_rpcs=REPORTER_WORKERS, options=SERVER_OPTIONS),
            None, reporter)
        self.tcp_server = None
        if listen:
            token = load_or_create_token(self.paths.home, self.tcp.token)
            self.tcp_server = self.aio.run(self._client_server(AioGuard(token), runner, reporter))
        self._stopped = threading.Event()

    async def _client_server(self, guard: AioGuard, runner, reporter) -> grpc.aio.Server:
        server = grpc.aio.server(migration_thread_pool=self.client_pool, interceptors=[guard],
                                 maximum_concurrent_rpcs=MAX_CLIENT_CALLS, options=SERVER_OPTIONS)
        return self._register(server, runner, reporter)

    def _register(self, server, runner, reporter):
        names = [pb.DESCRIPTOR.services_by_name["Reporter"].full_name, health.SERVICE_NAME]
        if runner is not None:
            pb_grpc.add_RunnerServicer_to_server(runner, server)
            names += [pb.DESCRIPTOR.services_by_name["Runner"].full_name, reflection.SERVICE_NAME]
            reflection.enable_server_reflection(names, server)
        pb_grpc.add_ReporterServicer_to_server(reporter, server)
        aio = isinstance(server, grpc.aio.Server)
        health_pb2_grpc.add_HealthServicer_to_server(self.aio_health if aio else self.health, server)
        return server

    def start(self) -> None:
        self.scheduler.recover()  # before any client (or child) can see a job the last daemon left active
        for record in self.store.list(TERMINAL):
            if not record.tracking_done:
                finish_tracking(self.runtime, record)
        for socket in (self.paths.socket, self.paths.reporter_socket):
            socket.unlink(missing_ok=True)
        self.server.add_insecure_port(f"unix://{self.paths.socket}")
        self.reporter_server.add_insecure_port(f"unix://{self.paths.reporter_socket}")
        if self.tcp_server is not None and self.tcp.add_port(self.tcp_server, self.listen) == 0:
            raise SystemExit(f"could not listen on {self.listen}")
        self.reporter_server.start()
        for server in (self.server, self.tcp_server):
            if server is not None:
                self.aio.run(server.start())
        self.scheduler.start()
        self.sweeps.start()
        threading.Thread(target=self._collect_garbage, name="gc", daemon=True).start()
        for name in ("", *(d.full_name for d in pb.DESCRIPTOR.services_by_name.values())):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
            self.aio.run(self.aio_health.set(name, health_pb2.HealthCheckResponse.SERVING))
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
        try:
            self.aio.run(self.aio_health.enter_graceful_shutdown(), timeout=STOP_GRACE)
        except TimeoutError:
            log.warning("the client servers' health service did not take the shutdown within %g s", STOP_GRACE)
        self.sweeps.stop()
        self.scheduler.shutdown(cancel_jobs=self.cancel_jobs_on_stop)
        self.workers.close()
        self._stop_servers()
        self.tracker.flush(timeout=30)
        self.tracker.close()
        self.store.close()
        for socket in (self.paths.socket, self.paths.reporter_socket):
            socket.unlink(missing_ok=True)
        self._home_lock.release()

    def _stop_servers(self) -> None:
        """Calls in flight get `STOP_GRACE` to end, then are cancelled; whatever a server or a
        handler still holds `STOP_WAIT` later is left behind, so a stop takes a bounded time
        whatever the clients did."""
        deadline = time.monotonic() + STOP_GRACE + STOP_WAIT
        reporter_stopped = self.reporter_server.stop(grace=STOP_GRACE)

        async def stop_client_servers():
            await asyncio.gather(*(s.stop(grace=STOP_GRACE) for s in (self.server, self.tcp_server) if s is not None))

        try:
            self.aio.run(stop_client_servers(), timeout=STOP_GRACE + STOP_WAIT)
        except TimeoutError:
            log.warning("the client servers did not stop within %g s; going on without them", STOP_GRACE + STOP_WAIT)
        if not reporter_stopped.wait(max(0.0, deadline - time.monotonic())):
            log.warning("the reporter server did not stop within %g s; going on without it", STOP_GRACE + STOP_WAIT)
        # Plain handlers of the client servers run on the pool and answer through the loop: the
        # loop runs until they are done (or the deadline passed).
        self.client_pool.shutdown(wait=False, cancel_futures=True)
        busy = join_threads("rpc_", deadline)
        if busy:
            log.warning("%d client call(s) still running at the stop (%s); going on without them", len(busy),
                        ", ".join(busy[:5]))
        self.aio.close()

    def serve_forever(self) -> None:
        self.start()
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        log.info("shutting down")
        self.stop()


def serve(home: Path, listen: str | None = None, max_concurrent_jobs: int = 1, gpus: str | None = None,
          cancel_jobs_on_stop: bool = False, gc_policy: Policy | None = None, tcp: TcpOptions | None = None,
          ray: RayOptions | None = None, predict: PredictLimits | None = None,
          workers: WorkerLimits | None = None) -> None:
    logging.basicConfig(level=os.environ.get("VISIONYARD_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Daemon(home, listen, max_concurrent_jobs, gpus, cancel_jobs_on_stop, gc_policy, tcp, ray, predict,
           workers).serve_forever()
    exit_within(STOP_WAIT)


def exit_within(seconds: float) -> None:
    """End the process `seconds` from now if its exit has not ended it: the interpreter's exit
    joins every thread, and one still busy in a call (an env build, a dataset read) would hold
    it. The daemon's state is saved by then; the thread's work is what a restart redoes."""
    def end() -> None:
        time.sleep(seconds)
        busy = [t.name for t in threading.enumerate()
                if t.is_alive() and not t.daemon and t is not threading.main_thread()]
        log.warning("exiting with %d thread(s) still busy: %s", len(busy), ", ".join(busy[:10]))
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(0)
    threading.Thread(target=end, name="exit-deadline", daemon=True).start()


def join_threads(prefix: str, deadline: float) -> list[str]:
    """Wait until `deadline` (time.monotonic) for the running threads whose names start with
    `prefix`; the names of those still running then."""
    def running() -> list[threading.Thread]:
        return [t for t in threading.enumerate()
                if t.name.startswith(prefix) and t is not threading.current_thread() and t.is_alive()]
    for thread in running():
        thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in running()]


def make_private(paths: Paths) -> None:
    """The home and what an older version left in it readable by the owner only (files made from
    now on are, by the umask)."""
    os.chmod(paths.home, 0o700)
    for path in (paths.db, paths.db.with_name(paths.db.name + "-wal"), paths.db.with_name(paths.db.name + "-shm"),
                 paths.mlflow_db):
        if path.exists():
            os.chmod(path, 0o600)
    for folder in (paths.jobs, paths.mlflow_artifacts, paths.envs, paths.repos):
        if folder.is_dir() and not folder.is_symlink():
            os.chmod(folder, 0o700)


@dataclass
class TcpOptions:
    """How the daemon listens on TCP (`--listen`): the token clients must send, and TLS."""

    token: str | None = None          # default: the home's auth-token file, made on first start
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # also require client certificates signed by this CA
    insecure: bool = False            # allow a non-loopback address without TLS

    def check(self, listen: str) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SystemExit("--tls-cert and --tls-key go together: pass both, or neither")
        if self.tls_client_ca and not self.tls_cert:
            raise SystemExit("--tls-client-ca needs --tls-cert and --tls-key")
        for path in (self.tls_cert, self.tls_key, self.tls_client_ca):
            if path and not Path(path).is_file():
                raise SystemExit(f"{path}: no such file (a PEM file is needed)")
        if not self.tls_cert and not self.insecure and not is_loopback(listen):
            raise SystemExit(f"refusing to listen on {listen} without TLS: the token would cross the network "
                             "in clear text. Pass --tls-cert and --tls-key, listen on 127.0.0.1, or force it "
                             "with --insecure-listen")

    def add_port(self, server: grpc.Server, listen: str) -> int:
        if not self.tls_cert:
            return server.add_insecure_port(listen)
        client_ca = Path(self.tls_client_ca).read_bytes() if self.tls_client_ca else None
        credentials = grpc.ssl_server_credentials([(Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())],
                                                  root_certificates=client_ca,
                                                  require_client_auth=client_ca is not None)
        return server.add_secure_port(listen, credentials)


@dataclass
class RayOptions:
    """`--backend ray`: the head's dashboard address, what a job reserves there, and where its
    child reports back."""

    address: str
    cpus_per_job: float = 1.0
    python: str = "python3"            # on the nodes' PATH: runs the job's supervisor
    lost_after: float = 60.0           # a head unreachable this long: its jobs fail as lost
    reporter_address: str | None = None  # HOST:PORT of --listen as the nodes reach it
    node_home: str = DEFAULT_NODE_HOME  # a node's envs, checkouts and job dirs
    shared_home: bool = False          # the nodes see the daemon's home: nothing is built on or sent to them
    upload_limits: UploadLimits = UploadLimits()  # what a node may send back

    def check(self, listen: str | None, tcp: TcpOptions) -> tuple[str, dict[str, str]]:
        """Where children report (the daemon's TCP listener) and what their channel needs (TLS roots)."""
        if not listen:
            raise SystemExit("--backend ray needs --listen HOST:PORT: jobs on the cluster's nodes report to the "
                             "daemon over TCP")
        if tcp.tls_client_ca:
            raise SystemExit("--backend ray can't be used with --tls-client-ca: a job's child has no client "
                             "certificate (it authenticates with its own job token)")
        if not self.shared_home and not self.node_home.startswith("/"):
            raise SystemExit(f"--ray-node-home {self.node_home}: give an absolute path (the same on every node)")
        address = self.reporter_address
        if not address:
            host = listen.rsplit(":", 1)[0].strip("[]")
            if host in ("", "0.0.0.0", "::"):
                raise SystemExit(f"--listen {listen} names no address the nodes can reach: pass "
                                 "--reporter-address HOST:PORT (this machine's name or address, as the nodes see it)")
            address = listen
        env = {ENV_TLS_ROOTS: Path(tcp.tls_cert).read_text()} if tcp.tls_cert else {}
        return address, env


def is_loopback(listen: str) -> bool:
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
