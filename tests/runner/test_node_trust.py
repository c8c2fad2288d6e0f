"""What a job's token lets its holder do through ``Reporter.Fetch`` and ``Reporter.Upload``, served
by the daemon's reporter servicer over a real gRPC socket: fetch only what the daemon's own plan
for the job names, send back only the job's results, within limits, leaving nothing behind when
refused. (Ray's dashboard shows a job's token to whoever can read it: these calls are the edge.)"""

from __future__ import annotations

import io
import json
import tarfile
import threading
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.launch.ray import node_files, uploads
from runner.daemon.servicers import ReporterServicer
from runner.settings import Paths
from runner.auth import hash_token
from runner.core.store import JobState, JobStore

SECRET = "the daemon's own token"


class Daemon:
    """A home with two running jobs, A (run on a node: the daemon wrote its plan) and B (run
    where the daemon's files are), served by a reporter servicer on a unix socket."""

    def __init__(self, tmp_path: Path, limits: uploads.UploadLimits | None = None):
        self.paths = Paths(tmp_path / "home").ensure()
        (self.paths.home / "auth-token").write_text(SECRET)
        self.store = JobStore(self.paths.db)
        self.a, self.token_a = self._running_job("a-token")
        self.b, self.token_b = self._running_job("b-token")
        for job in (self.a, self.b):
            (self.paths.job_dir(job) / "checkpoints").mkdir(parents=True)
            (self.paths.job_dir(job) / "job.json").write_text('{"spec": "the daemon\'s"}')
        (self.paths.job_dir(self.b) / "checkpoints" / "best.pt").write_bytes(b"B's weights")
        self.plan = {"format": node_files.PLAN_FORMAT, "paths": {str(self.paths.home): "/var/tmp/node"},
                     "checkout_source": None, "home_files": [], "upload": ["checkpoints"]}
        node_files.write_plan(self.paths, self.a, self.plan)
        self.servicer = ReporterServicer(SimpleNamespace(paths=self.paths, store=self.store), limits)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_ReporterServicer_to_server(self.servicer, self.server)
        self.server.add_insecure_port(f"unix://{tmp_path / 'reporter.sock'}")
        self.server.start()
        self.channel = grpc.insecure_channel(f"unix://{tmp_path / 'reporter.sock'}")
        self.stub = pb_grpc.ReporterStub(self.channel)

    def _running_job(self, token: str) -> tuple[str, str]:
        job = self.store.create_job({"framework": "timm"}, "job", 1).id
        self.store.update(job, token=hash_token(token))
        self.store.transition(job, JobState.PREPARING)
        self.store.transition(job, JobState.RUNNING)
        return job, token

    def fetch(self, what: str, job: str | None = None, token: str | None = None) -> bytes:
        request = pb.FetchRequest(job_id=job or self.a, token=token or self.token_a, what=what)
        return b"".join(c.data for c in self.stub.Fetch(request, timeout=10))

    def upload(self, files: dict[str, bytes], job: str | None = None, token: str | None = None,
               chunk: int = 1 << 20, last: bool = True) -> pb.UploadAck:
        def chunks():
            first = True
            for name, data in files.items():
                parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
                for i, part in enumerate(parts):
                    yield pb.FileChunk(job_id=(job or self.a) if first else "", token=(token or self.token_a) if first
                                       else "", path=name if i == 0 else "", data=part,
                                       last=last and i == len(parts) - 1)
                    first = False
        return self.stub.Upload(chunks(), timeout=30)

    def close(self):
        self.channel.close()
        self.server.stop(None)
        self.store.close()


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    yield d
    d.close()


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert len(info.value.details() or "") < 1000
    return info.value.code()


def _names(tar_bytes: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r|") as tar:
        return [m.name for m in tar]


def test_a_token_cannot_rewrite_the_plan_to_fetch_the_daemons_files(daemon):
    """The probe's attack: upload a plan naming the home's secrets, then fetch them."""
    forged = {"format": 1, "paths": {}, "home": str(daemon.paths.home), "home_files": ["auth-token", "state.db"],
              "checkout_source": str(daemon.paths.job_dir(daemon.b))}
    for name in ("node-plan.json", "job.json", "launch.json", "supervisor.json", "checkpoints/../node-plan.json"):
        assert _code(lambda: daemon.upload({name: json.dumps(forged).encode()})) == grpc.StatusCode.INVALID_ARGUMENT
    assert (daemon.paths.job_dir(daemon.a) / "job.json").read_text() == '{"spec": "the daemon\'s"}'
    assert not (daemon.paths.job_dir(daemon.a) / "launch.json").exists()
    assert json.loads(daemon.fetch("plan")) == daemon.plan  # the daemon's plan, as it wrote it
    assert _code(lambda: daemon.fetch("home-files")) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: daemon.fetch("checkout")) == grpc.StatusCode.INVALID_ARGUMENT
    inputs = daemon.fetch("inputs")
    assert SECRET.encode() not in inputs and b"B's weights" not in inputs
    assert sorted(_names(inputs)) == ["checkpoints", "job.json"]


@pytest.mark.parametrize("plan", [
    {"home_files": ["auth-token"]}, {"home_files": ["state.db"]}, {"home_files": ["../../etc/hostname"]},
    {"home_files": ["jobs/../auth-token"]}, {"home_files": ["/etc/hostname"]}, {"home_files": ["jobs/link"]},
    {"checkout_source": "/etc"}, {"checkout_source": "JOB_B"}, {"checkout_source": "HOME"},
    {"checkout_source": "HOME/repos/checkouts/../../"},
])
def test_even_a_plan_naming_other_files_fetches_nothing_outside_the_jobs_sources(daemon, plan):
    """What a node fetches is checked against the home at each fetch: a checkout is one of the
    home's repo checkouts, a home file lies under its job dirs (links resolved)."""
    (daemon.paths.jobs / "link").symlink_to(daemon.paths.home / "auth-token")
    places = {"JOB_B": str(daemon.paths.job_dir(daemon.b)), "HOME": str(daemon.paths.home)}
    plan = {k: (places.get(v, v).replace("HOME", str(daemon.paths.home)) if isinstance(v, str) else v)
            for k, v in plan.items()}
    node_files.write_plan(daemon.paths, daemon.a, {**daemon.plan, **plan})
    what = "home-files" if "home_files" in plan else "checkout"
    assert _code(lambda: daemon.fetch(what)) == grpc.StatusCode.INVALID_ARGUMENT


def test_an_earlier_jobs_checkpoint_named_by_the_plan_is_fetched(daemon):
    node_files.write_plan(daemon.paths, daemon.a, {**daemon.plan,
                                                   "home_files": [f"jobs/{daemon.b}/checkpoints/best.pt"]})
    assert _names(daemon.fetch("home-files")) == [f"jobs/{daemon.b}/checkpoints/best.pt"]


@pytest.mark.parametrize("plan", ["[]", '{"paths": 1}', '{"paths": {"/": "/"}}', "not json", '{"format": 1}'])
def test_a_plan_that_cant_be_read_is_a_clear_answer_not_an_internal_error(daemon, plan):
    node_files.plan_path(daemon.paths, daemon.a).write_text(plan)
    answers = []
    for what in ("plan", "inputs", "checkout", "home-files"):
        try:
            daemon.fetch(what)
            answers.append("OK")
        except grpc.RpcError as exc:
            answers.append(exc.code().name)
    assert set(answers) <= {"OK", "FAILED_PRECONDITION", "INVALID_ARGUMENT"}, answers
    assert answers[2:] != ["OK", "OK"]


def test_a_job_without_a_plan_has_nothing_to_fetch_or_send(daemon):
    """A job run where the daemon's files are: a plan in its job dir means nothing."""
    job_dir = daemon.paths.job_dir(daemon.b)
    (job_dir / "node-plan.json").write_text(json.dumps({**daemon.plan, "home_files": ["auth-token"]}))
    for what in ("plan", "inputs", "home-files"):
        assert _code(lambda: daemon.fetch(what, daemon.b, daemon.token_b)) == grpc.StatusCode.FAILED_PRECONDITION
    assert _code(lambda: daemon.upload({"exit.json": b'{"code": 0}'}, daemon.b, daemon.token_b)) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert not (job_dir / "exit.json").exists()
    assert _code(lambda: daemon.fetch("plan", daemon.a, daemon.token_b)) == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("name", [".", "./", "a\x00b", "checkpoints/a\x00b", "x" * 300, "checkpoints/" + "x" * 300,
                                  "d/" * 3000 + "x", "checkpoints/" + "d/" * 40 + "x", "checkpoints", "checkpoints/",
                                  "checkpoints//x", "checkpoints/./x", "checkpoints/.best.pt.upload", "output.log"])
def test_a_refused_upload_says_why_and_leaves_nothing_behind(daemon, name):
    job_dir = daemon.paths.job_dir(daemon.a)
    before = sorted(p.relative_to(job_dir) for p in job_dir.rglob("*"))
    assert _code(lambda: daemon.upload({name: b"data"})) == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(p.relative_to(job_dir) for p in job_dir.rglob("*")) == before


def test_an_upload_that_ends_without_its_last_chunk_keeps_nothing(daemon):
    job_dir = daemon.paths.job_dir(daemon.a)
    assert _code(lambda: daemon.upload({"checkpoints/deep/last.pt": b"w" * 100}, chunk=10, last=False)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(p.name for p in (job_dir / "checkpoints").iterdir()) == []


def test_an_empty_upload_and_a_chunk_for_another_job_are_refused(daemon):
    assert _code(lambda: daemon.stub.Upload(iter([]), timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT
    chunks = [pb.FileChunk(job_id=daemon.a, token=daemon.token_a, path="checkpoints/x.pt", data=b"1"),
              pb.FileChunk(job_id=daemon.b, data=b"2", last=True)]
    assert _code(lambda: daemon.stub.Upload(iter(chunks), timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: daemon.upload({"checkpoints/x.pt": b"1"}, token="guess")) == grpc.StatusCode.PERMISSION_DENIED
    assert not (daemon.paths.job_dir(daemon.a) / "checkpoints" / "x.pt").exists()


def test_uploads_are_bounded_per_file_per_job_and_in_count(tmp_path):
    daemon = Daemon(tmp_path, uploads.UploadLimits(file_bytes=1000, job_bytes=2500, job_files=4))
    try:
        job_dir = daemon.paths.job_dir(daemon.a)
        assert _code(lambda: daemon.upload({"checkpoints/big.pt": b"x" * 1001}, chunk=100)) == \
            grpc.StatusCode.RESOURCE_EXHAUSTED
        assert daemon.upload({"checkpoints/1.pt": b"x" * 1000, "checkpoints/2.pt": b"x" * 1000}).files == 2
        assert daemon.upload({"checkpoints/1.pt": b"y" * 1000}).files == 1  # a file sent again replaces itself
        assert _code(lambda: daemon.upload({"output/3.bin": b"x" * 600})) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert daemon.upload({"output/3.bin": b"x" * 400, "reports.journal": b""}).files == 2
        details = ""
        try:
            daemon.upload({"output/5.bin": b""})
        except grpc.RpcError as exc:
            details = exc.details()
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--upload-max-files" in details
        kept = sorted(p.relative_to(job_dir).as_posix() for p in job_dir.rglob("*") if p.is_file())
        assert kept == ["checkpoints/1.pt", "checkpoints/2.pt", "job.json", "output/3.bin", "reports.journal"]
        assert (job_dir / "checkpoints" / "1.pt").read_bytes() == b"y" * 1000
    finally:
        daemon.close()


def test_a_jobs_uploads_are_received_one_at_a_time(daemon):
    """Two uploads of one job at once: both files arrive whole, one after the other."""
    gate = threading.Event()

    def slow():
        yield pb.FileChunk(job_id=daemon.a, token=daemon.token_a, path="checkpoints/slow.pt", data=b"s" * 10)
        gate.wait(10)
        yield pb.FileChunk(data=b"s" * 10, last=True)

    with futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(lambda: daemon.stub.Upload(slow(), timeout=30))
        second = pool.submit(lambda: daemon.upload({"checkpoints/fast.pt": b"f" * 10}))
        threading.Timer(0.5, gate.set).start()
        assert first.result().files == 1 and second.result().files == 1
    job_dir = daemon.paths.job_dir(daemon.a)
    assert (job_dir / "checkpoints" / "slow.pt").read_bytes() == b"s" * 20
    assert (job_dir / "checkpoints" / "fast.pt").read_bytes() == b"f" * 10


def test_gc_removes_the_plans_of_jobs_that_ended(daemon):
    from runner.core.gc import Policy, collect_garbage

    daemon.store.transition(daemon.a, JobState.SUCCEEDED)
    rt = SimpleNamespace(paths=daemon.paths, store=daemon.store, envs=SimpleNamespace(list=lambda: []),
                         repo_cache=None)
    collect_garbage(rt, Policy(env_max_idle_days=0, checkout_max_idle_days=0, job_dir_max_age_days=0))
    assert not node_files.plan_path(daemon.paths, daemon.a).exists()
