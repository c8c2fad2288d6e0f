"""The node agent: what a Ray job runs first on a node that shares no file system with the daemon.

    python -s -m visionyard_node        (Ray's ``py_modules`` put the package on ``PYTHONPATH``)

The daemon ships this module as ``visionyard_node/__main__.py`` in a Ray package with the
supervisor, the env manager (``lib/envs`` and the ``filelock`` it uses), the code a child imports
(``child/adapters``, ``child/protos``) and the repo shims; the uv binary comes in a package of
its own. On the node the agent

1. copies that package to ``<node home>/code/<id>`` (the paths the daemon wrote the command with);
2. fetches the job's plan, its job dir, the files of the daemon's home it starts from (an
   earlier job's checkpoint) and, for a repo, the checkout (cached per node) from the daemon over
   the job's authenticated channel (``Reporter.Fetch``);
3. builds the job's env with the same env manager and content hash as the daemon would, cached in
   ``<node home>/envs`` across jobs, and links it as ``<job dir>/env``;
4. runs the command under the same supervisor as a local job (Ray's stop reaches both: the
   supervisor stops everything of the job within its grace period);
5. sends back what the job left (checkpoints, a repo's outputs, the report journal, the exit
   record, in that order) with ``Reporter.Upload``, retrying while the daemon is away.

It needs what a node with Ray has: Python 3.11+ and Ray's own dependencies grpcio and protobuf.
Everything it prints is the job's log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "lib"), str(HERE / "child")]

ENV_NODE_HOME = "VISIONYARD_NODE_HOME"
ENV_CODE_ID = "VISIONYARD_NODE_CODE"
# Names the daemon keeps too (runner/launch/jobdir.py, adapters/child_env.py); a test holds them equal.
ENV_ADDRESS, ENV_JOB_ID, ENV_TOKEN = "VISIONYARD_REPORTER_ADDRESS", "VISIONYARD_JOB_ID", "VISIONYARD_JOB_TOKEN"
ENV_TLS_ROOTS = "VISIONYARD_REPORTER_TLS_ROOTS"
ENV_SUPERVISOR_BOUND = "VISIONYARD_SUPERVISOR_BOUND"  # the supervisor stops the job when this agent is gone
JOURNAL, EXIT_RECORD, ENV_LINK = "reports.journal", "exit.json", "env"
PLAN_FORMAT = 1
CHUNK = 1 << 20
RPC_TIMEOUT = 30.0
UPLOAD_PATIENCE_SECONDS = 600.0  # a daemon away this long at the job's end: what the job left stays on the node
CANCEL_UPLOAD_SECONDS = 4.0      # a cancelled job's uploads must end before Ray's SIGKILL
UPLOAD_ORDER_LAST = (JOURNAL, EXIT_RECORD)  # the exit record last: the daemon ends on it
RAY_PARENT = os.getppid()  # Ray's job supervisor, which started this agent (its shell exec'd it)


def say(text: str) -> None:
    print(f"[visionyard] {text}", flush=True)


class Fatal(RuntimeError):
    """The job can't start on this node; the message says why."""


class DaemonLink:
    """The job's channel to its daemon: the reporter address and TLS roots it reports with."""

    def __init__(self, address: str, job_id: str, token: str, tls_roots: str | None):
        import grpc

        from protos import visionyard_pb2 as pb
        from protos import visionyard_pb2_grpc as pb_grpc

        self.grpc, self.pb, self.job_id, self.token = grpc, pb, job_id, token
        options = [("grpc.max_receive_message_length", 8 * CHUNK), ("grpc.max_send_message_length", 8 * CHUNK)]
        if tls_roots:
            credentials = grpc.ssl_channel_credentials(root_certificates=tls_roots.encode())
            self.channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.stub = pb_grpc.ReporterStub(self.channel)
        self.address = address

    def fetch(self, what: str):
        """The chunks of `what` ("plan", "inputs", "checkout")."""
        request = self.pb.FetchRequest(job_id=self.job_id, token=self.token, what=what)
        try:
            for chunk in self.stub.Fetch(request, timeout=3600):
                yield chunk.data
        except self.grpc.RpcError as exc:
            raise Fatal(f"could not fetch the job's {what} from the daemon at {self.address}: "
                        f"{exc.code().name}: {exc.details()}") from None

    def upload(self, job_dir: Path, files: list[str], timeout: float) -> tuple[int, int]:
        def chunks():
            first = True
            for rel in files:
                with open(job_dir / rel, "rb") as f:
                    data, start = f.read(CHUNK), True
                    while True:
                        following = f.read(CHUNK) if data else b""
                        yield self.pb.FileChunk(job_id=self.job_id if first else "", token=self.token if first else "",
                                                path=rel if start else "", data=data, last=not following)
                        first = start = False
                        if not following:
                            break
                        data = following

        ack = self.stub.Upload(chunks(), timeout=timeout)
        return ack.files, ack.bytes


class _Chunks:
    """A file-like view of a chunk iterator, for tarfile's stream mode."""

    def __init__(self, chunks):
        self.chunks, self.buffer = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def extract(chunks, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=_Chunks(chunks), mode="r|") as tar:
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(target, filter="tar")  # nothing lands outside target; links to datasets kept
        else:
            tar.extractall(target)


def install_code(home: Path, code_id: str) -> Path:
    """This package at ``<home>/code/<code_id>`` (once per node and version)."""
    final = home / "code" / code_id
    if not (final / "__main__.py").exists():
        staging = final.with_name(f".{code_id}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(HERE, staging, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            staging.rename(final)
        except OSError:  # another job of this version got there first
            shutil.rmtree(staging, ignore_errors=True)
    return final


def find_uv(home: Path, plan: dict) -> str:
    """The uv the daemon shipped (when this node's platform is the daemon's), else one on PATH."""
    shipped = importlib.util.find_spec("visionyard_uv")
    machine = f"{sys.platform}-{platform.machine()}"
    if shipped is not None and plan.get("uv") and plan.get("uv_platform") == machine:
        source = Path(next(iter(shipped.submodule_search_locations))) / "uv"
        final = home / "bin" / f"uv-{plan['uv']}"
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = final.with_name(f".{final.name}-{os.getpid()}")
            shutil.copyfile(source, staging)
            staging.chmod(0o755)
            staging.replace(final)
        return str(final)
    found = shutil.which("uv")
    if found is None:
        raise Fatal(f"no uv for this node ({machine}; the daemon ships one for {plan.get('uv_platform')}): "
                    "install uv on the node's PATH")
    return found


def ensure_checkout(link: DaemonLink, target: Path, home: Path) -> None:
    """The repo checkout at the path the daemon's command names, fetched once per node."""
    if target.is_dir():
        return
    import filelock

    locks = home / "repos" / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(locks / f"{target.name}.lock")):
        if target.is_dir():
            return
        say(f"fetching the repo checkout into {target}")
        staging = target.with_name(f".{target.name}-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        extract(link.fetch("checkout"), staging)
        staging.rename(target)


def link_tree(checkout: Path, tree: Path) -> None:
    """The job's working tree: the checkout's files hard-linked (made read-only first, so no job changes
    them for the others), as ``adapters.files.link_tree`` makes it where the daemon runs jobs."""
    def place(origin: str, target: str) -> None:
        os.chmod(origin, os.stat(origin).st_mode & 0o7555)
        try:
            os.link(origin, target)
        except OSError:
            shutil.copy2(origin, target)

    shutil.copytree(checkout, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"), copy_function=place,
                    dirs_exist_ok=True)


def build_env(home: Path, plan: dict, uv: str, cancel: threading.Event) -> Path:
    from envs import EnvManager, EnvSpec

    env = EnvManager(home / "envs", uv).ensure(EnvSpec(**plan["env_spec"]), log=sys.stdout, cancel=cancel)
    say(f"env {env.name} {'reused' if env.reused else 'built'} on this node at {env.path}")
    return env.path


def run_supervised(code: Path, plan: dict, job_dir: Path, env_path: Path, cancel: threading.Event,
                   lost: threading.Event) -> int:
    """The command under its supervisor. Its ``<job dir>/env`` paths name the env where it is: a
    Python started through the link would take the link for its prefix, and its bytecode (kept
    per source path) would be compiled anew for every job. When Ray's process for the job ends
    (the node's Ray stopped) the job is stopped as lost (SIGHUP), not cancelled."""
    link = re.compile(re.escape(str(job_dir / ENV_LINK)) + r"(?=/|$)")

    def real(value: str) -> str:
        return link.sub(lambda _: str(env_path), value)

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # Ray's py_modules: not the job's
    env.update({k: real(v) for k, v in plan["env"].items()})
    env[ENV_SUPERVISOR_BOUND] = "1"
    for name in [k for k, v in env.items() if v == "" and k in plan["env"] and k != "CUDA_VISIBLE_DEVICES"]:
        del env[name]  # an empty value in the plan unsets the node's own
    argv = [sys.executable, "-I", "-S", str(code / "supervisor.py"), str(job_dir), f"{plan['grace']:g}", "--",
            *map(real, plan["argv"])]
    sys.stdout.flush()
    supervisor = subprocess.Popen(argv, cwd=real(plan["cwd"]), env=env, stdin=subprocess.DEVNULL)
    forwarded = False
    while True:
        try:
            return _returncode(supervisor.wait(0.2))
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != RAY_PARENT and not lost.is_set() and not forwarded:
            say(f"Ray's process for this job (pid {RAY_PARENT}) is gone: stopping the job")
            supervisor.send_signal(signal.SIGHUP)
            lost.set()
        if cancel.is_set() and not forwarded and not lost.is_set():  # Ray may have signalled this process only
            supervisor.send_signal(signal.SIGTERM)
            forwarded = True


def _returncode(code: int) -> int:
    return 128 - code if code < 0 else code


def results(job_dir: Path, plan: dict) -> list[str]:
    """What goes back to the daemon, relative to the job dir: what the job wrote, then its records."""
    files = []
    for folder in plan.get("upload", []):
        made_only = folder in plan.get("upload_made_only", ())  # a work tree: its links to the checkout stay
        for path in sorted((job_dir / folder).rglob("*")):
            if path.is_file() and not path.is_symlink() and not (made_only and path.stat().st_nlink > 1):
                files.append(path.relative_to(job_dir).as_posix())
    files += [name for name in UPLOAD_ORDER_LAST if (job_dir / name).is_file()]
    return files


def send_back(link: DaemonLink, job_dir: Path, plan: dict, cancelled: bool) -> None:
    files = results(job_dir, plan)
    patience = CANCEL_UPLOAD_SECONDS if cancelled else plan.get("upload_patience", UPLOAD_PATIENCE_SECONDS)
    deadline, pause = time.monotonic() + patience, 1.0
    while True:
        left = deadline - time.monotonic()
        try:
            count, size = link.upload(job_dir, files, timeout=max(1.0, left))
            say(f"sent {count} file(s), {size / 2**20:.1f} MiB, back to the daemon")
            return
        except link.grpc.RpcError as exc:
            code = exc.code()
            if code not in (link.grpc.StatusCode.UNAVAILABLE, link.grpc.StatusCode.DEADLINE_EXCEEDED) or left <= pause:
                say(f"could not send the job's results back ({code.name}: {exc.details()}); they stay in {job_dir}")
                return
            time.sleep(pause)
            pause = min(pause * 2, 10.0)


def main() -> int:
    cancel = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: cancel.set())
    env = os.environ
    home = Path(env[ENV_NODE_HOME])
    link = DaemonLink(env[ENV_ADDRESS], env[ENV_JOB_ID], env[ENV_TOKEN], env.get(ENV_TLS_ROOTS))
    try:
        plan = json.loads(b"".join(link.fetch("plan")))
        if plan.get("format") != PLAN_FORMAT:
            raise Fatal(f"the daemon's plan has format {plan.get('format')}; this agent reads {PLAN_FORMAT}")
        job_dir = Path(plan["job_dir"])
        say(f"preparing job {link.job_id} on node {socket.gethostname()} in {job_dir}")
        code = install_code(home, plan["code"])
        shutil.rmtree(job_dir, ignore_errors=True)
        extract(link.fetch("inputs"), job_dir)
        if plan.get("home_files"):  # at the node home's same place, where the command looks for them
            extract(link.fetch("home-files"), home)
        if plan.get("checkout"):
            ensure_checkout(link, Path(plan["checkout"]), home)
            if plan.get("work_tree"):  # the job's own working tree of the checkout, where its command runs
                link_tree(Path(plan["checkout"]), Path(plan["work_tree"]))
        env_path = build_env(home, plan, find_uv(home, plan), cancel)
        (job_dir / ENV_LINK).unlink(missing_ok=True)
        (job_dir / ENV_LINK).symlink_to(env_path, target_is_directory=True)
    except Exception as exc:  # noqa: BLE001 (every failure before the command is the job's error, said plainly)
        if cancel.is_set():
            say("cancelled while preparing")
            return 128 + signal.SIGTERM
        say(f"the job could not start on this node: {exc}")
        return 2
    if cancel.is_set():
        return 128 + signal.SIGTERM
    lost = threading.Event()
    code_ = run_supervised(code, plan, job_dir, env_path, cancel, lost)
    send_back(link, job_dir, plan, cancel.is_set() or lost.is_set())
    return code_


if __name__ == "__main__":
    sys.exit(main())
