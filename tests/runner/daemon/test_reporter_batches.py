"""`Reporter.Report` on the daemon's children's socket, as a child (or someone holding its token)
calls it: batches applied in order only and each once, the job's own token required, paths only
inside the job dir. The job is a real one of an in-process daemon (`tests/inprocess_daemon.py`),
whose fake child reports nothing itself (`silent`): the test reports in its place."""

from __future__ import annotations

import grpc
import pytest

from adapters.reporter import ENV_TOKEN
from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from tests.helpers import wait_for
from tests.inprocess_daemon import events, fake_job, metric_steps


class Child:
    """A running `silent` job, and a channel to the daemon's reporter socket with its token."""

    def __init__(self, daemon, data):
        self.daemon = daemon
        self.job_id = daemon.client.submit(fake_job(data, "silent")).id
        running = daemon.wait_state(self.job_id, pb.RUNNING)
        self.job_dir = daemon.job_dir(self.job_id)
        wait_for((self.job_dir / "ready").exists, timeout=15, interval=0.02)
        self.token = token_of(int(running.placement.split()[1]))
        self.channel = grpc.insecure_channel(f"unix://{daemon.home / 'reporter.sock'}")
        self.stub = pb_grpc.ReporterStub(self.channel)

    def report(self, seq: int, *items: pb.ReportItem, token: str | None = None, job_id: str | None = None):
        batch = pb.ReportBatch(job_id=job_id or self.job_id, token=self.token if token is None else token,
                               batch_seq=seq, items=items)
        return self.stub.Report(batch, timeout=10)

    def refused(self, *args, **kwargs) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as info:
            self.report(*args, **kwargs)
        return info.value.code()


def token_of(supervisor: int) -> str:
    """The job's token, from its supervisor's environment (the store keeps only its hash)."""
    with open(f"/proc/{supervisor}/environ", "rb") as f:
        variables = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    return variables[ENV_TOKEN.encode()].decode()


def metrics(step: int, accuracy: float) -> pb.ReportItem:
    return pb.ReportItem(metrics=pb.MetricsEvent(step=step, values={"val/accuracy": accuracy}))


@pytest.fixture
def child(serve, data):
    made = Child(serve(), data)
    yield made
    made.channel.close()


def test_batches_are_applied_in_order_only_and_each_once(child):
    assert child.refused(2, metrics(2, 0.2)) == grpc.StatusCode.INVALID_ARGUMENT  # batch 1 is missing
    assert metric_steps(child.daemon.client, child.job_id) == []  # nothing of it was applied
    assert child.report(1, metrics(1, 0.1)).batch_seq == 1
    assert child.report(1, metrics(1, 0.1)).batch_seq == 1  # a resend (the ack was lost): acked, not applied again
    assert child.refused(3, metrics(3, 0.3)) == grpc.StatusCode.INVALID_ARGUMENT
    assert child.report(2, metrics(2, 0.2), metrics(3, 0.3)).batch_seq == 2
    assert metric_steps(child.daemon.client, child.job_id) == [1, 2, 3]
    assert [step for step, _ in child.daemon.tracker.metrics[child.job_id]] == [1, 2, 3]
    assert round(child.daemon.client.get(child.job_id).metrics["val/accuracy"], 3) == 0.3


def test_only_the_jobs_own_token_reports_and_only_while_it_runs(child, data):
    other = child.daemon.client.submit(fake_job(data, "train", epochs=1)).id  # queued behind the child
    assert child.refused(1, metrics(1, 0.1), token="0" * 64) == grpc.StatusCode.PERMISSION_DENIED
    assert child.refused(1, metrics(1, 0.1), job_id=other) == grpc.StatusCode.PERMISSION_DENIED  # not its token
    assert child.refused(1, metrics(1, 0.1), job_id="no-such-job") == grpc.StatusCode.NOT_FOUND
    assert metric_steps(child.daemon.client, child.job_id) == [] and metric_steps(child.daemon.client, other) == []
    (child.job_dir / "go-on").touch()  # it ends without a result: failed
    final = child.daemon.wait_final(child.job_id)
    assert final.state == pb.FAILED and "without reporting a result" in final.error
    assert child.refused(1, metrics(1, 0.1)) == grpc.StatusCode.FAILED_PRECONDITION  # too late
    assert metric_steps(child.daemon.client, child.job_id) == []


def test_checkpoints_are_taken_only_inside_the_job_dir(child, tmp_path):
    outside = tmp_path / "elsewhere.pt"
    outside.write_text("someone else's file")
    (child.job_dir / "checkpoints" / "best.pt").write_text("weights")
    link = child.job_dir / "checkpoints" / "link.pt"
    link.symlink_to(outside)
    child.report(1, pb.ReportItem(checkpoint=pb.CheckpointEvent(path=str(outside), kind="best", epoch=1)),
                 pb.ReportItem(checkpoint=pb.CheckpointEvent(path=str(link), kind="last", epoch=1)),
                 pb.ReportItem(checkpoint=pb.CheckpointEvent(path=str(child.job_dir / "checkpoints" / "best.pt"),
                                                             kind="best", epoch=1)))
    job = child.daemon.client.get(child.job_id)
    assert job.best_checkpoint == str(child.job_dir / "checkpoints" / "best.pt") and job.last_checkpoint == ""
    logs = [e.log.text for e in events(child.daemon.client, child.job_id, logs_only=True)]
    assert sum("refused a reported checkpoint outside the job dir" in line for line in logs) == 2
