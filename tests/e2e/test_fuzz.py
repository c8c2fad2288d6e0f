"""Hostile requests through a real daemon: every one gets a clear, short answer; nothing breaks.

A seeded generator sends 1,000 requests to each of SubmitJob, AddRepo, ListJobs, GetJob,
WatchJob and Report, made of what breaks naive servers: NUL and control characters, huge and
empty strings, paths into /proc and other users' homes, shell syntax, NaN, infinities, 1e300,
negative and huge integers, deep nesting. Each answer must carry an expected status code (never
UNKNOWN or INTERNAL) and a message of at most a few KB; afterwards the daemon still serves and
its store passes SQLite's integrity check.
"""

from __future__ import annotations

import random
import sqlite3

import grpc
import pytest
import yaml

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc

pytestmark = pytest.mark.e2e

REQUESTS = 1000
MAX_MESSAGE = 4096
TEXTS = ["", "\x00", "a\x00b", "\x07\x1b[31m", "x" * 5000, "y" * 300_000, "../../etc/passwd", "/", "/proc/1/root/etc",
         "/proc/self/environ", "~nosuchuser/data", "~root/.ssh/id_rsa", "/root/.gitconfig", "$(id -u > /tmp/y)",
         "`id`", "a; rm -rf /", "line\nbreak", "ünïcødé 🚀", "%s%n%x", "{0}{python}", "timm", "resnet18", "yolo",
         "imagefolder", "image_classification", "custom", "transformers", "cuda:99", "cpu", "auto", "-1", "1e300",
         "NaN", " ", "\t", "/dev/zero", "/tmp", "C:\\Windows", "'; DROP TABLE jobs; --"]
NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e300, -1e300, 1e-300, -1, 0, 1, 2**31 - 1, 2**53, 0.5]


def text(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "".join(chr(rng.choice([rng.randrange(0, 32), rng.randrange(32, 0x2FFF)])) for _ in range(rng.randrange(40)))
    return rng.choice(TEXTS)


def value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(NUMBERS)
    if roll < 0.55:
        return text(rng)
    if roll < 0.65:
        return rng.random() < 0.5
    if roll < 0.8 and depth < 12:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if depth < 12:
        return {text(rng)[:50] or "k": value(rng, depth + 1) for _ in range(rng.randrange(4))}
    return None


def deep(levels: int):
    node: dict = {"leaf": 1}
    for _ in range(levels):
        node = {"d": node}
    return node


def job_spec(rng: random.Random) -> pb.JobSpec:
    spec = pb.JobSpec()
    for field in ("name", "framework", "task", "model", "preset", "weights", "resume", "repo"):
        if rng.random() < 0.7:
            setattr(spec, field, text(rng))
    if rng.random() < 0.8:
        spec.dataset.path, spec.dataset.format = text(rng), text(rng)
    if rng.random() < 0.5:
        spec.training.epochs = rng.choice([-1, 0, 1, 2**31 - 1])
        spec.training.batch_size = rng.choice([-5, 0, 3, 2**31 - 1])
        spec.training.learning_rate = rng.choice(NUMBERS)
        spec.training.device = text(rng)
    advanced = rng.choice([{}, {"x": value(rng)}, {text(rng)[:30] or "k": value(rng)}, deep(rng.randrange(5, 25)),
                           {"optimizer": {"type": text(rng), "weight_decay": rng.choice(NUMBERS)}}])
    try:
        spec.advanced.update(advanced)
    except (ValueError, TypeError):
        pass
    return spec


def check(exc_or_reply, allowed: set[grpc.StatusCode], what: str) -> None:
    if isinstance(exc_or_reply, grpc.RpcError):
        code, details = exc_or_reply.code(), exc_or_reply.details() or ""
        assert code in allowed, f"{what}: {code.name}: {details[:300]}"
        assert len(details.encode()) <= MAX_MESSAGE, f"{what}: a {len(details)}-character message"


def call(fn, *args, **kwargs):
    try:
        return fn(*args, timeout=30, **kwargs)
    except grpc.RpcError as exc:
        return exc


@pytest.fixture(scope="module")
def stubs(daemon):
    channel = grpc.insecure_channel(daemon.address, options=[("grpc.max_receive_message_length", 64 << 20)])
    yield pb_grpc.RunnerStub(channel), pb_grpc.ReporterStub(channel)
    channel.close()


BAD_INPUT = {grpc.StatusCode.INVALID_ARGUMENT}


def test_submit_job(stubs):
    runner, _ = stubs
    rng = random.Random(1)
    for i in range(REQUESTS):
        reply = call(runner.SubmitJob, pb.SubmitJobRequest(spec=job_spec(rng)))
        assert isinstance(reply, grpc.RpcError), f"request {i} was accepted"
        check(reply, BAD_INPUT | {grpc.StatusCode.RESOURCE_EXHAUSTED}, f"SubmitJob #{i}")


def test_add_repo(stubs):
    runner, _ = stubs
    rng = random.Random(2)
    fields = ["name", "url", "commit", "tasks", "models", "dataset_format", "command", "advanced", "parser",
              "requirements", "env", "artifacts", "python"]
    for i in range(REQUESTS):
        roll = rng.random()
        if roll < 0.6:
            doc = {rng.choice(fields): value(rng) for _ in range(rng.randrange(1, 8))}
            body = yaml.safe_dump(doc, allow_unicode=True) if rng.random() < 0.9 else str(doc)
        elif roll < 0.8:
            body = text(rng)
        else:
            body = "a: &x [*x]\n" if rng.random() < 0.5 else "{" * rng.randrange(1, 5000)
        reply = call(runner.AddRepo, pb.AddRepoRequest(spec_yaml=body, filename=text(rng)[:300]))
        if not isinstance(reply, grpc.RpcError):
            runner.RemoveRepo(pb.RemoveRepoRequest(name=reply.name), timeout=30)
            continue
        check(reply, BAD_INPUT, f"AddRepo #{i}")


def test_list_get_and_watch_jobs(stubs):
    runner, _ = stubs
    rng = random.Random(3)
    for i in range(REQUESTS):
        states = [rng.choice([0, 1, 5, 6, 7, 99, -1, 2**31 - 1]) for _ in range(rng.randrange(4))]
        reply = call(runner.ListJobs, pb.ListJobsRequest(states=states, limit=rng.choice([0, 1, -5, 2**31 - 1])))
        check(reply, BAD_INPUT, f"ListJobs #{i}")
        reply = call(runner.GetJob, pb.GetJobRequest(job_id=text(rng)))
        check(reply, BAD_INPUT | {grpc.StatusCode.NOT_FOUND}, f"GetJob #{i}")
        request = pb.WatchJobRequest(job_id=text(rng), after_seq=rng.choice([-1, 0, 2**62]), snapshot=True,
                                     include_logs=rng.random() < 0.5, logs_only=rng.random() < 0.2)
        try:
            for _ in runner.WatchJob(request, timeout=30):
                pass
        except grpc.RpcError as exc:
            check(exc, BAD_INPUT | {grpc.StatusCode.NOT_FOUND}, f"WatchJob #{i}")


def test_report(stubs):
    _, reporter = stubs
    rng = random.Random(4)
    for i in range(REQUESTS):
        batch = pb.ReportBatch(job_id=text(rng), token=text(rng), batch_seq=rng.choice([-1, 0, 1, 2**62]))
        for _ in range(rng.randrange(4)):
            item = batch.items.add(time=rng.choice(NUMBERS))
            kind = rng.randrange(4)
            if kind == 0:
                item.metrics.step = rng.choice([-1, 0, 1, 2**31 - 1])
                try:
                    item.metrics.values[text(rng)[:50]] = rng.choice(NUMBERS)
                except ValueError:
                    pass
            elif kind == 1:
                item.checkpoint.path, item.checkpoint.kind = text(rng), text(rng)
            elif kind == 2:
                item.result.best_checkpoint = text(rng)
            else:
                item.error.message = text(rng)
        reply = call(reporter.Report, batch)
        check(reply, BAD_INPUT | {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED},
              f"Report #{i}")


def test_the_daemon_still_serves_and_its_store_is_intact(daemon, stubs):
    runner, _ = stubs
    runner.ListJobs(pb.ListJobsRequest(), timeout=30)
    with sqlite3.connect(f"file:{daemon.home / 'state.db'}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
