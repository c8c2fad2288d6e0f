"""Predict's bounds through the real servicer on a real asyncio gRPC server (as the daemon serves
it, guard included): a few at once and a short queue, a pixel limit judged before any child
starts, and a child that dies with its call. The child is `predict_child.py` (no framework env)."""

from __future__ import annotations

import io
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import grpc
import grpc.aio
import pytest
from PIL import Image

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.daemon.guard import AioGuard
from runner.daemon.predictions import PredictLimits
from runner.daemon.servicers import RunnerServicer
from runner.settings import Paths
from runner.core.store import JobStore
from runner.daemon.watch import EventLoopThread
from runner.launch.procs import alive  # a process that exits mid-read is not alive

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


class Served:
    """A RunnerServicer on an asyncio server over a unix socket, with one finished job."""

    def __init__(self, home: Path, limits: PredictLimits):
        paths = Paths(home).ensure()
        self.store = JobStore(paths.db)
        job = self.store.create_job({"framework": "timm", "task": "classification", "model": "resnet18"}, "j", 1)
        self.job_dir = paths.job_dir(job.id)
        self.job_dir.mkdir(parents=True)
        checkpoint = self.job_dir / "best.pt"
        checkpoint.write_bytes(b"weights")
        self.store.update(job.id, job_dir=str(self.job_dir), env_name="fake", best_checkpoint=str(checkpoint))
        self.job_id = job.id
        rt = SimpleNamespace(paths=paths, store=self.store, envs=Envs(home))
        self.pool = ThreadPoolExecutor(16, thread_name_prefix="rpc")
        self.servicer = RunnerServicer(rt, None, pool=self.pool, predict_limits=limits)
        self.aio = EventLoopThread()
        self.server = self.aio.run(self._start(home / "d.sock"))
        self.channel = grpc.insecure_channel(f"unix://{home / 'd.sock'}")
        self.stub = pb_grpc.RunnerStub(self.channel)

    async def _start(self, socket: Path) -> grpc.aio.Server:
        server = grpc.aio.server(migration_thread_pool=self.pool, interceptors=[AioGuard()])
        pb_grpc.add_RunnerServicer_to_server(self.servicer, server)
        server.add_insecure_port(f"unix://{socket}")
        await server.start()
        return server

    def request(self, image: bytes = b"") -> pb.PredictRequest:
        return pb.PredictRequest(job_id=self.job_id, image=image or png((8, 8)), top_k=1)

    def children(self) -> dict[int, dict]:
        """pid → {"start", "end", "grandchild"} from what the children wrote."""
        found: dict[int, dict] = {}
        log = self.job_dir / "children.log"
        for line in log.read_text().splitlines() if log.exists() else ():
            kind, pid, *rest = line.split()
            if kind == "START":
                found[int(pid)] = {"grandchild": int(rest[0]), "start": float(rest[1]), "end": None}
            else:
                found[int(pid)]["end"] = float(rest[0])
        return found

    def close(self) -> None:
        self.channel.close()
        self.aio.run(self.server.stop(0))
        self.aio.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    made = []

    def serve(limits: PredictLimits = PredictLimits(), child_seconds: float = 0.0) -> Served:
        monkeypatch.setenv("VY_TEST_PREDICT_SECONDS", str(child_seconds))
        made.append(Served(tmp_path / f"home{len(made)}", limits))
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


def test_a_predict_runs_its_child_and_answers(served):
    s = served()
    response = s.stub.Predict(s.request(), timeout=30)
    assert [p.label for p in response.predictions] == ["red"]
    (child,) = s.children().values()
    assert child["end"] is not None and not alive(child["grandchild"])


def test_predicts_over_the_cap_are_refused_at_once_while_the_capped_ones_finish(served):
    s = served(PredictLimits(concurrent=1, queued=1), child_seconds=1.5)
    started, ended = time.monotonic(), {}
    calls = [s.stub.Predict.future(s.request(), timeout=60) for _ in range(4)]
    for call in calls:
        call.add_done_callback(lambda done: ended.setdefault(id(done), time.monotonic() - started))
    refused = []
    for call in calls:
        try:
            call.result()
        except grpc.RpcError as exc:
            refused.append((exc.code(), exc.details(), ended[id(call)]))
    assert [code for code, *_ in refused] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    for _, details, seconds in refused:
        assert "busy" in details and "--max-concurrent-predicts 1" in details
        assert seconds < 1.0  # refused at once, not after the running ones
    children = sorted(s.children().values(), key=lambda c: c["start"])
    assert len(children) == 2  # the running one and the queued one, one after the other
    assert children[0]["end"] <= children[1]["start"]


def test_a_predict_waiting_for_a_slot_leaves_the_queue_when_its_client_goes(served):
    s = served(PredictLimits(concurrent=1, queued=1), child_seconds=1.5)
    running = s.stub.Predict.future(s.request(), timeout=60)
    wait_for(lambda: s.children(), 10)
    with pytest.raises(grpc.RpcError) as gone:
        s.stub.Predict(s.request(), timeout=0.3)  # waits in the queue, then its deadline passes
    assert gone.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    queued = s.stub.Predict.future(s.request(), timeout=60)  # the queue's place is free again
    assert running.result().predictions and queued.result().predictions
    assert len(s.children()) == 2


@pytest.mark.parametrize("image, limit, shown", [
    (png((12000, 12000), "1"), None, "12000×12000 (144.0 megapixels)"),  # 17 KB, 144 MB decoded (Pillow warns only)
    (png((3000, 2000)), 5_000_000, "3000×2000 (6.0 megapixels)"),
])
def test_an_image_over_the_pixel_limit_is_refused_before_a_child_starts(served, image, limit, shown):
    s = served(PredictLimits(max_pixels=limit) if limit else PredictLimits())
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        s.stub.Predict(s.request(image), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert shown in refused.value.details()
    assert f"at most {(limit or 40_000_000) / 1e6:.1f} megapixels" in refused.value.details()
    assert time.monotonic() - started < 2
    assert s.children() == {}


def test_a_crafted_header_past_pillows_own_limit_is_refused_by_its_size(served):
    """A PNG whose header claims 60000×60000 (Pillow itself would refuse to open it): named all the same."""
    s = served()
    small = png((1, 1))
    ihdr = (60000).to_bytes(4, "big") * 2 + small[24:29]  # width, height, then depth, colour, ... as they were
    crafted = small[:16] + ihdr + zlib.crc32(b"IHDR" + ihdr).to_bytes(4, "big") + small[33:]
    with pytest.raises(grpc.RpcError) as refused:
        s.stub.Predict(s.request(crafted), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "60000×60000" in refused.value.details()
    assert s.children() == {}


@pytest.mark.parametrize("how", ["deadline", "cancel"])
def test_a_predict_whose_client_is_gone_leaves_no_child(served, monkeypatch, how):
    s = served(PredictLimits(concurrent=1, queued=0), child_seconds=60)
    call = s.stub.Predict.future(s.request(), timeout=3 if how == "deadline" else None)
    wait_for(lambda: s.children(), 10)
    (pid, child), = s.children().items()
    assert alive(pid) and alive(child["grandchild"])
    if how == "cancel":
        call.cancel()
    with pytest.raises(grpc.FutureCancelledError if how == "cancel" else grpc.RpcError):
        call.result()
    # the whole group is killed as soon as the call ends (3 s deadline, not the child's 60 s)
    assert wait_for(lambda: not alive(pid) and not alive(child["grandchild"]), 3) < 1.5
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 2)  # reaped, not left a zombie
    monkeypatch.setenv("VY_TEST_PREDICT_SECONDS", "0")
    assert s.stub.Predict(s.request(), timeout=30).predictions  # its slot is free again
