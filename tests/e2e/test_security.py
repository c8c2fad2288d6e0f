"""A daemon among other users: authenticated TCP, private files, reports trusted only so far."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.client import Client, ClientError
from tests.fixtures import make_imagefolder
from tests.helpers import (discard_daemon, fake_timm_envs, free_port, job_spec, openssl, self_signed, start_daemon,
                           wait_for)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=2, val_per_class=1)


@pytest.fixture(scope="module")
def tcp_daemon(tmp_path_factory, shared_envs, timm_env):
    port = free_port()
    daemon = start_daemon(tmp_path_factory.mktemp("home"), shared_envs, ["--listen", f"127.0.0.1:{port}"])
    daemon.tcp_address = f"127.0.0.1:{port}"
    yield daemon
    discard_daemon(daemon)


@pytest.fixture(scope="module")
def fake_daemon(tmp_path_factory):
    """A daemon whose timm jobs run `tests/fake_adapter.py`: a child that reports through the real
    SDK with its real token, without importing torch or training."""
    daemon = start_daemon(tmp_path_factory.mktemp("home"), fake_timm_envs(tmp_path_factory.mktemp("fake-envs")))
    yield daemon
    discard_daemon(daemon)


def test_tcp_needs_the_daemons_token(tcp_daemon, monkeypatch):
    monkeypatch.delenv("VISIONYARD_TOKEN", raising=False)
    token_file = tcp_daemon.home / "auth-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    for wrong in ("", "guess", token[:-1] + ("x" if token[-1] != "x" else "y")):
        channel = grpc.insecure_channel(tcp_daemon.tcp_address)
        stub = pb_grpc.RunnerStub(channel)
        metadata = [("authorization", f"Bearer {wrong}")] if wrong else []
        for call in (lambda: stub.ListJobs(pb.ListJobsRequest(), timeout=10, metadata=metadata),
                     lambda: stub.SubmitJob(pb.SubmitJobRequest(), timeout=10, metadata=metadata)):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "token" in info.value.details()
        channel.close()
    with Client(address=tcp_daemon.tcp_address, token=token) as client:
        assert client.list() is not None
    with Client(address=tcp_daemon.tcp_address, home=tcp_daemon.home) as client:  # local: read from the home
        assert client.list() is not None


def test_a_non_loopback_address_without_tls_is_refused(tmp_path, shared_envs):
    done = subprocess.run([sys.executable, "-m", "runner.cli", "serve", "--home", str(tmp_path / "home"),
                           "--listen", f"0.0.0.0:{free_port()}"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "without TLS" in done.stderr and "--insecure-listen" in done.stderr


def test_tls_with_the_token(tmp_path, shared_envs):
    cert, key = self_signed(tmp_path, "localhost")
    port = free_port()
    daemon = start_daemon(tmp_path / "home", shared_envs, ["--listen", f"0.0.0.0:{port}", "--tls-cert", str(cert),
                                                           "--tls-key", str(key), "--token", "s3cret-token"])
    try:
        with Client(address=f"localhost:{port}", tls_ca=cert, token="s3cret-token") as client:
            assert client.list() is not None
        with Client(address=f"localhost:{port}", tls_ca=cert, token="wrong") as client:
            with pytest.raises(ClientError) as info:
                client.list()
            assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        daemon.stop()


def test_tls_can_require_client_certificates(tmp_path, shared_envs):
    cert, key = self_signed(tmp_path, "localhost")
    ca, ca_key = self_signed(tmp_path, "vy-ca")
    client_key, csr, client_cert = tmp_path / "client.key", tmp_path / "client.csr", tmp_path / "client.pem"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client", "-keyout", str(client_key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "2",
            "-out", str(client_cert))
    port = free_port()
    daemon = start_daemon(tmp_path / "home", shared_envs, ["--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert),
                                                           "--tls-key", str(key), "--tls-client-ca", str(ca),
                                                           "--token", "tok"])
    try:
        with Client(address=f"localhost:{port}", tls_ca=cert, token="tok", client_cert=client_cert,
                    client_key=client_key, timeout=10) as client:
            assert client.list() is not None
        with Client(address=f"localhost:{port}", tls_ca=cert, token="tok", timeout=10) as client:
            with pytest.raises(ClientError):  # no client certificate: the handshake fails
                client.list()
    finally:
        daemon.stop()


def test_the_home_and_everything_in_it_are_the_owners_only(tcp_daemon, dataset):
    # A real timm job (torch writes the checkpoints), as small as makes every file: one epoch, a tiny model.
    job = tcp_daemon.client.submit(job_spec(dataset, name="private", model="test_resnet",
                                            training={"epochs": 1, "batch_size": 4, "device": "cpu"}))
    final = tcp_daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    home = tcp_daemon.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    checked = [home / "state.db", home / "mlflow.db", home / "jobs" / job.id, home / "jobs" / job.id / "output.log",
               Path(final.best_checkpoint), home / "daemon.sock", home / "reporter.sock"]
    checked += [p for p in (home / "mlflow-artifacts").rglob("*")]
    for path in checked:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    import sqlite3

    with sqlite3.connect(home / "state.db") as db:  # no job token in plain text
        stored = db.execute("SELECT token FROM jobs WHERE id = ?", (job.id,)).fetchone()[0]
    assert len(stored) == 64 and stored not in (home / "jobs" / job.id / "output.log").read_text()


def test_an_unprivileged_user_can_use_neither_the_socket_nor_the_files(shared_envs, timm_env):
    """As root, a probe switches to `nobody` and tries the home's files and the daemon's socket,
    in a home whose parents anyone may traverse, with the home itself opened up for traversal: the
    files' and the socket's own modes have to stop it."""
    import pwd
    import shutil
    import tempfile

    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or system_python is None:
        pytest.skip("switching to another uid needs root (and a system python the other user can run)")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user here")
    home = Path(tempfile.mkdtemp(prefix="vy-sec-", dir="/tmp")) / "home"
    daemon = start_daemon(home, shared_envs, ["--listen", f"127.0.0.1:{free_port()}"])  # makes the token file
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        os.chmod(home.parent, 0o755)
        os.chmod(home, 0o711)  # traversable: now only each file's own mode stands in the way
        probe = ("import socket, sys\nresults = []\n"
                 "for path in sys.argv[1:3]:\n"
                 "    try:\n        open(path).read(1); results.append('read')\n"
                 "    except OSError: results.append('denied')\n"
                 "s = socket.socket(socket.AF_UNIX)\n"
                 "try:\n    s.connect(sys.argv[3]); results.append('connected')\n"
                 "except OSError: results.append('denied')\n"
                 "print(' '.join(results))\n")

        def as_nobody():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        done = subprocess.run([system_python, "-I", "-S", "-c", probe, str(home / "state.db"),
                               str(home / "auth-token"), str(home / "daemon.sock")],
                              capture_output=True, text=True, timeout=60, preexec_fn=as_nobody, cwd="/")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["denied", "denied", "denied"]
    finally:
        daemon.stop()
        shutil.rmtree(home.parent, ignore_errors=True)


def test_forged_reports_change_nothing(fake_daemon, dataset, tmp_path):
    """With a job's real token even: a jumped batch number, paths outside the job dir. The job's child
    reports its first epoch, holds until `go-on` while the forgeries go in, then reports the rest."""
    daemon = fake_daemon
    job = daemon.client.submit(job_spec(dataset, name="victim hold", training={"epochs": 500, "batch_size": 4,
                                                                               "device": "cpu"}))
    try:
        wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=180)
        token = _job_token(daemon, job.id)
        reporter = pb_grpc.ReporterStub(daemon.client.channel)
        jump = pb.ReportBatch(job_id=job.id, token=token, batch_seq=10**15, items=[
            pb.ReportItem(metrics=pb.MetricsEvent(step=99, values={"val/accuracy": 0.999, "forged": 1}))])
        with pytest.raises(grpc.RpcError) as info:
            reporter.Report(jump, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not the next one" in info.value.details()
        secret = tmp_path / "secret.txt"
        secret.write_text("not yours")

        def refused() -> bool:
            logs = [e.log.text for e in daemon.client.watch(job.id, include_logs=True, snapshot=True)
                    if e.WhichOneof("kind") == "log"]
            return any("refused a reported checkpoint outside the job dir" in line for line in logs)

        for _ in range(10):  # the child may still be sending its first epoch: take the next number before it does
            outside = pb.ReportBatch(job_id=job.id, token=token, batch_seq=_last_batch_seq(daemon, job.id) + 1, items=[
                pb.ReportItem(checkpoint=pb.CheckpointEvent(path=str(secret), kind="best", epoch=1)),
                pb.ReportItem(result=pb.ResultReport(best_checkpoint=str(secret), last_checkpoint="/root/.gitconfig"))])
            try:
                reporter.Report(outside, timeout=10)
            except grpc.RpcError:
                continue
            if refused():
                break
        assert refused()
        current = daemon.client.get(job.id)
        assert str(secret) not in (current.best_checkpoint, current.last_checkpoint)
        assert "/root/.gitconfig" not in (current.best_checkpoint, current.last_checkpoint)
        assert "forged" not in current.metrics and current.epoch < 99
        (daemon.home / "jobs" / job.id / "go-on").touch()  # 499 more epochs: more batches than forgeries took numbers
        wait_for(lambda: daemon.client.get(job.id).epoch >= current.epoch + 1, timeout=120)  # real reports go on
    finally:
        try:
            daemon.client.cancel(job.id)
        except ClientError:  # it has ended already (its 500 epochs take seconds once it goes on)
            pass
        daemon.client.wait(job.id)


def _job_token(daemon, job_id: str) -> str:
    """The token the job's child got (read from its environment, as the owner can)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        values = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        if values.get(b"VISIONYARD_JOB_ID") == job_id.encode() and b"VISIONYARD_JOB_TOKEN" in values:
            return values[b"VISIONYARD_JOB_TOKEN"].decode()
    raise AssertionError("no child process of the job found")


def _last_batch_seq(daemon, job_id: str) -> int:
    import sqlite3

    with sqlite3.connect(f"file:{daemon.home / 'state.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT last_batch_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
