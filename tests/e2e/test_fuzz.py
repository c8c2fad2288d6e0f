"""Hostile requests through a real daemon: every one gets a clear, short answer; nothing breaks.

A seeded generator sends 1,000 requests to each of SubmitJob, AddRepo, ListJobs, GetJob,
WatchJob and Report, made of what breaks naive servers: NUL and control characters, huge and
empty strings, paths into /proc and other users' homes, shell syntax, NaN, infinities, 1e300,
negative and huge integers, deep nesting. Each answer must carry an expected status code (never
UNKNOWN or INTERNAL) and a message of at most a few KB; afterwards the daemon still serves and
its store passes SQLite's integrity check.

Then bytes that are no message at all go to every method of every service on the three servers
(malformed requests get INVALID_ARGUMENT), and a daemon left with malformed and half-open calls
still stops within its grace.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import threading
import time

import grpc
import pytest
import yaml
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.daemon.server import STOP_GRACE, STOP_WAIT
from tests.helpers import start_daemon

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


# ---------------------------------------------------------------- raw bytes, on every method and server
#
# Bytes that are no request message at all, sent with identity serializers to every method of
# every service on the three servers (the client socket, the children's socket, TCP with the
# daemon's token): random byte mutations of a valid request, truncations, nesting past
# protobuf's depth limit, invalid UTF-8 in a string field. Each is answered INVALID_ARGUMENT.
# The daemon runs in a home of its own with no envs: no call can build or remove one.

RAW_SERVICES = {
    "runner": pb.DESCRIPTOR.services_by_name["Runner"],
    "reporter": pb.DESCRIPTOR.services_by_name["Reporter"],
    "health": health_pb2.DESCRIPTOR.services_by_name["Health"],
    "reflection": reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
}
SERVERS = {"daemon.sock": ("runner", "reporter", "health", "reflection"), "reporter.sock": ("reporter", "health"),
           "tcp": ("runner", "reporter", "health", "reflection")}
NEVER = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
MUTATIONS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def raw_daemon(tmp_path_factory):
    port = free_port()
    daemon = start_daemon(tmp_path_factory.mktemp("raw-home"), tmp_path_factory.mktemp("no-envs"),
                          ["--listen", f"127.0.0.1:{port}"])
    token = (daemon.home / "auth-token").read_text().strip()
    daemon.targets = {"daemon.sock": (daemon.address, ()),
                      "reporter.sock": (f"unix://{daemon.home / 'reporter.sock'}", ()),
                      "tcp": (f"127.0.0.1:{port}", (("authorization", f"Bearer {token}"),))}
    yield daemon
    assert daemon.stop() == 0


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def sample(descriptor, depth: int = 0):
    """A valid message of `descriptor`'s type with every field it can hold set (maps left empty)."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name):
            continue
        if field.message_type is not None:
            if field.message_type.GetOptions().map_entry or depth >= 3:
                continue
            value = sample(field.message_type, depth + 1)
            if field.is_repeated:
                getattr(message, field.name).add().CopyFrom(value)
            else:
                getattr(message, field.name).CopyFrom(value)
            continue
        value = {FieldDescriptor.TYPE_STRING: "job-1 ü", FieldDescriptor.TYPE_BYTES: b"\x00\xffdata",
                 FieldDescriptor.TYPE_BOOL: True, FieldDescriptor.TYPE_DOUBLE: 0.5, FieldDescriptor.TYPE_FLOAT: 0.5,
                 }.get(field.type, 7)
        if field.enum_type is not None:
            value = field.enum_type.values[-1].number
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def bad_utf8(descriptor, depth: int = 0) -> bytes | None:
    """A message whose first string field (at most two levels down) holds bytes that are not UTF-8."""
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            return length_delimited(field.number, b"ok \xff\xfe\xfd")
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and depth < 2 and not field.message_type.GetOptions().map_entry:
            inner = bad_utf8(field.message_type, depth + 1)
            if inner is not None:
                return length_delimited(field.number, inner)
    return None


def deep_struct(levels: int) -> bytes:
    """A SubmitJobRequest whose spec.advanced nests `levels` Structs deep."""
    entry = length_delimited(1, b"d") + length_delimited(2, b"\x11" + bytes(8))  # {"d": 0.0}
    for _ in range(levels):
        entry = length_delimited(1, b"d") + length_delimited(2, length_delimited(5, length_delimited(1, entry)))
    return length_delimited(1, length_delimited(10, length_delimited(1, entry)))


def malformed(descriptor, rng: random.Random) -> list[tuple[str, bytes]]:
    """Bytes that fail to parse as `descriptor`'s message, with what each is."""
    valid = sample(descriptor).SerializeToString() or length_delimited(1, b"abc")
    cases = [("corrupt", b"\x0a\xff\xff\xff"),
             ("deep groups", varint(1000 << 3 | 3) * 200 + varint(1000 << 3 | 4) * 200)]
    cases += [(f"truncated at {n}", valid[:n]) for n in sorted({1, len(valid) // 2, len(valid) - 1}) if n > 0]
    if (utf8 := bad_utf8(descriptor)) is not None:
        cases.append(("bad utf-8", utf8))
    if descriptor.full_name == "visionyard.v1.SubmitJobRequest":
        cases += [(f"advanced {levels} deep", deep_struct(levels)) for levels in (60, 1000)]
    mutations = 0
    for _ in range(50 * MUTATIONS):
        if mutations == MUTATIONS:
            break
        data = bytearray(valid)
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append((f"mutation {mutations}", bytes(data)))
        mutations += 1
    cls = message_factory.GetMessageClass(descriptor)
    bad = []
    for what, data in cases:
        try:
            cls.FromString(data)
        except DecodeError:
            bad.append((what, data))
    assert len(bad) >= 4, f"{descriptor.full_name}: too few malformed cases"
    return bad


def raw_call(channel, service, method, requests, metadata):
    """Send raw `requests` to `method`; the RpcError it ends with, or None."""
    path = f"/{service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path)(iter(requests), timeout=30, metadata=metadata):
                pass
        elif method.client_streaming:
            channel.stream_unary(path)(iter(requests), timeout=30, metadata=metadata)
        elif method.server_streaming:
            for _ in channel.unary_stream(path)(requests[0], timeout=30, metadata=metadata):
                pass
        else:
            channel.unary_unary(path)(requests[0], timeout=30, metadata=metadata)
    except grpc.RpcError as exc:
        return exc
    return None


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_malformed_bytes_on_every_method(raw_daemon, server):
    address, metadata = raw_daemon.targets[server]
    rng = random.Random(server)
    failures = []
    with grpc.insecure_channel(address) as channel:
        for service in (RAW_SERVICES[name] for name in SERVERS[server]):
            for method in service.methods:
                where = f"{server} {service.name}.{method.name}"
                valid = sample(method.input_type).SerializeToString()
                for what, data in malformed(method.input_type, rng):
                    sent = [[data]] + ([[valid, data]] if method.client_streaming else [])
                    for requests in sent:
                        exc = raw_call(channel, service, method, requests, metadata)
                        first = len(requests) == 1  # the malformed message is the first: nothing else is read
                        if exc is None:
                            failures.append(f"{where} {what}: accepted")
                        elif exc.code() in NEVER or (first and exc.code() != grpc.StatusCode.INVALID_ARGUMENT):
                            failures.append(f"{where} {what}: {exc.code().name} {exc.details()[:200]}")
                        elif len((exc.details() or "").encode()) > MAX_MESSAGE:
                            failures.append(f"{where} {what}: a {len(exc.details())}-character message")
    assert not failures, f"{len(failures)} wrong answers:\n" + "\n".join(failures[:20])
    assert raw_daemon.client.list() is not None  # it still serves


# ---------------------------------------------------------------- a stop whatever the clients left


def test_a_stop_ends_within_its_grace_whatever_clients_left(tmp_path):
    """Malformed uploads, a malformed report, request streams whose next message never comes and
    watches left open, on both sockets: SIGTERM still ends the daemon within its grace (a few
    rounds, as the way a malformed stream was once left unfinished was a race)."""
    limit = STOP_GRACE + STOP_WAIT + 3
    envs = tmp_path / "no-envs"
    envs.mkdir()
    for round_ in range(3):
        daemon = start_daemon(tmp_path / f"home{round_}", envs)
        never = threading.Event()

        def held(*first):  # a request stream that sends `first`, then never its next message
            yield from first
            never.wait()

        reporter = grpc.insecure_channel(f"unix://{daemon.home / 'reporter.sock'}")
        client = grpc.insecure_channel(daemon.address)
        left_open = []
        try:
            upload = reporter.stream_unary("/visionyard.v1.Reporter/Upload")
            for _ in range(5):
                with pytest.raises(grpc.RpcError):
                    upload(iter([b"\x0a\xff\xff\xff"]), timeout=10)
            with pytest.raises(grpc.RpcError):
                reporter.unary_unary("/visionyard.v1.Reporter/Report")(b"\x0a\xff\xff\xff", timeout=10)
            watch = health_pb2.HealthCheckRequest().SerializeToString()
            left_open += [upload.future(held(), timeout=120),
                          client.stream_unary("/visionyard.v1.Reporter/Upload").future(held(), timeout=120),
                          client.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(
                              held(), timeout=120),
                          reporter.unary_stream("/grpc.health.v1.Health/Watch")(watch, timeout=120),
                          client.unary_stream("/grpc.health.v1.Health/Watch")(watch, timeout=120)]
            time.sleep(0.5)  # every call reaches its handler
            started = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            try:
                daemon.proc.wait(limit)
            except subprocess.TimeoutExpired:
                pytest.fail(f"round {round_}: the daemon was still stopping {limit:g} s after SIGTERM:\n"
                            + daemon.log_path.read_text()[-2000:])
            assert daemon.proc.returncode == 0, daemon.log_path.read_text()[-2000:]
            assert time.monotonic() - started < limit
        finally:
            never.set()
            for call in left_open:
                call.cancel()
            reporter.close()
            client.close()
            if daemon.proc.poll() is None:
                os.killpg(daemon.proc.pid, signal.SIGKILL)
            daemon.stop()
