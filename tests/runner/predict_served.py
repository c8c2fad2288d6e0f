"""A RunnerServicer on a real asyncio gRPC server (as the daemon serves it, guard included) with
finished jobs whose env's python runs `predict_child.py`, a stand-in worker: what the predict
tests share."""

from __future__ import annotations

import io
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import grpc
import grpc.aio
from PIL import Image

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.core.store import JobStore
from runner.daemon.guard import AioGuard
from runner.daemon.predictions import PredictLimits
from runner.daemon.servicers import RunnerServicer
from runner.daemon.watch import EventLoopThread
from runner.daemon.workers import WorkerLimits, WorkerPool
from runner.launch.devices import DevicePool
from runner.settings import Paths

CHILD = Path(__file__).with_name("predict_child.py")


class Envs:
    """The env manager's `list`, naming an env whose python runs `predict_child.py`."""

    def __init__(self, root: Path):
        self.env = root / "fake-env"
        python = self.env / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\nexec {sys.executable} {CHILD} \"$@\"\n")
        python.chmod(0o755)

    def list(self, name=None):
        return [SimpleNamespace(name=name, path=self.env)]

    def ensure(self, spec, cancel=None):
        """A framework's env, as for a model predicted without a job."""
        self.ensured = spec.name
        return SimpleNamespace(name=spec.name, path=self.env)


class Served:
    """A RunnerServicer on an asyncio server over a unix socket, with one finished job."""

    def __init__(self, home: Path, limits: PredictLimits, worker_limits: WorkerLimits, gpus: tuple[int, ...] = ()):
        paths = Paths(home).ensure()
        self.paths = paths
        self.store = JobStore(paths.db)
        self.job_id = self.add_job()
        self.job_dir = paths.job_dir(self.job_id)
        self.devices = DevicePool(list(gpus))
        rt = SimpleNamespace(paths=paths, store=self.store, envs=Envs(home), devices=self.devices)
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="rpc")
        self.workers = WorkerPool(worker_limits)
        self.devices.reclaim = self.workers.release_gpus  # as the daemon wires them
        self.servicer = RunnerServicer(rt, None, pool=self.pool, predict_limits=limits, workers=self.workers)
        self.aio = EventLoopThread()
        self.server = self.aio.run(self._start(home / "d.sock"))
        self.address = f"unix://{home / 'd.sock'}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = pb_grpc.RunnerStub(self.channel)

    async def _start(self, socket: Path) -> grpc.aio.Server:
        server = grpc.aio.server(migration_thread_pool=self.pool, interceptors=[AioGuard()])
        pb_grpc.add_RunnerServicer_to_server(self.servicer, server)
        server.add_insecure_port(f"unix://{socket}")
        await server.start()
        return server

    def add_job(self, device: str = "cpu", task: str = "classification", framework: str = "timm") -> str:
        """A finished job of `framework` and `task` with a checkpoint, trained on `device`; its id."""
        job = self.store.create_job({"framework": framework, "task": task, "model": "resnet18",
                                     "training": {"device": device}}, "j", 1)
        job_dir = self.paths.job_dir(job.id)
        job_dir.mkdir(parents=True)
        checkpoint = job_dir / "best.pt"
        checkpoint.write_bytes(b"weights")
        self.store.update(job.id, job_dir=str(job_dir), env_name="fake", best_checkpoint=str(checkpoint))
        return job.id

    def request(self, image: bytes = b"", job_id: str = "") -> pb.PredictRequest:
        return pb.PredictRequest(job_id=job_id or self.job_id, image=image or png((8, 8)), top_k=1)

    def children(self, job_id: str = "", folder: Path | None = None) -> dict[int, dict]:
        """pid → {"start", "grandchild", "args", "gpus", "batches": [(images, time)]} from what the workers of
        the job (or of the worker's `folder`) wrote."""
        found: dict[int, dict] = {}
        log = (folder or self.paths.job_dir(job_id or self.job_id)) / "children.log"
        for line in log.read_text().splitlines() if log.exists() else ():
            kind, pid, *rest = line.split()
            if kind == "START":
                found[int(pid)] = {"grandchild": int(rest[0]), "start": float(rest[1]), "batches": []}
            elif kind == "ARGS":
                found[int(pid)]["args"] = json.loads(line.split(" ", 2)[2])
            elif kind == "GPUS":
                found[int(pid)]["gpus"] = line.split(" ", 2)[2] if len(line.split(" ", 2)) > 2 else ""
            elif kind == "EXPORT":  # an export child's (`exports`)
                continue
            else:
                found[int(pid)]["batches"].append((int(rest[0]), float(rest[1])))
        return found

    def exports(self, job_id: str = "") -> list[list[str]]:
        """The arguments of each export child the job's exports started, in order."""
        log = self.paths.job_dir(job_id or self.job_id) / "children.log"
        return [json.loads(line.split(" ", 2)[2]) for line in (log.read_text().splitlines() if log.exists() else ())
                if line.startswith("EXPORT ")]

    def close(self) -> None:
        self.workers.close()
        self.channel.close()
        self.aio.run(self.server.stop(0))
        self.aio.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


def serving(tmp_path, monkeypatch):
    """The `served` fixture (tests/runner/conftest.py): `serve(limits, child_seconds, workers)`
    starts a `Served`; all are closed at the end."""
    made = []

    def serve(limits: PredictLimits = PredictLimits(), child_seconds: float = 0.0,
              workers: WorkerLimits = WorkerLimits(), gpus: tuple[int, ...] = ()) -> Served:
        monkeypatch.setenv("VY_TEST_PREDICT_SECONDS", str(child_seconds))
        made.append(Served(tmp_path / f"home{len(made)}", limits, workers, gpus))
        return made[-1]

    yield serve
    for s in made:
        s.close()


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    data = io.BytesIO()
    Image.new(mode, size).save(data, "PNG")
    return data.getvalue()




def wait_for(condition, timeout: float) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"still not so after {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - started



