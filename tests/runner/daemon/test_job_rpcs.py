"""The Runner servicer's job calls through the public client on an in-process daemon (no env built):
a bad spec is refused naming its field and stores nothing; list filters by state; a final job
can't be cancelled; bytes that are no message are refused by the guard, on either socket."""

from __future__ import annotations

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.client import ClientError
from tests.inprocess_daemon import fake_job


@pytest.mark.parametrize("override, field", [
    ({"framework": "yolo"}, "framework"),
    ({"model": "not_a_model"}, "model"),
    ({"training": {"epochs": -1, "device": "cpu"}}, "training.epochs"),
    ({"advanced": {"optimizer": {"flavour": "x"}}}, "advanced.optimizer.flavour"),
    ({"dataset": {"path": "/no/such/dir", "format": "imagefolder"}}, "dataset.path"),
    ({"training": {"device": "cuda"}}, "training.device"),  # this runner has no GPU
])
def test_a_bad_spec_is_refused_naming_its_field_and_nothing_is_stored(serve, data, override, field):
    daemon = serve()
    with pytest.raises(ClientError) as info:
        daemon.client.submit({**fake_job(data, "train"), **override})
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT and f"{field}:" in str(info.value)
    assert daemon.client.list() == []


def test_list_filters_by_state_and_a_final_job_cannot_be_cancelled(serve, data):
    daemon = serve()
    done = daemon.client.submit(fake_job(data, "train", epochs=1)).id
    assert daemon.wait_final(done).state == pb.SUCCEEDED
    held = daemon.client.submit(fake_job(data, "train hold")).id
    daemon.wait_state(held, pb.RUNNING)
    assert [j.id for j in daemon.client.list()] == [held, done]  # newest first
    assert [j.id for j in daemon.client.list([pb.RUNNING])] == [held]
    assert [j.id for j in daemon.client.list([pb.SUCCEEDED, pb.FAILED])] == [done]
    with pytest.raises(ClientError) as info:
        daemon.client.cancel(done)
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION and "already SUCCEEDED" in str(info.value)
    with pytest.raises(ClientError) as info:
        daemon.client.list([99])
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("socket, service, method", [("daemon.sock", "Runner", "GetJob"),
                                                     ("reporter.sock", "Reporter", "Report")])
def test_bytes_that_are_not_the_methods_message_are_invalid_argument(serve, socket, service, method):
    daemon = serve()
    with grpc.insecure_channel(f"unix://{daemon.home / socket}") as channel:
        call = channel.unary_unary(f"/{pb.DESCRIPTOR.services_by_name[service].full_name}/{method}")  # raw bytes
        with pytest.raises(grpc.RpcError) as info:
            call(b"\xff\xff\xff not a protobuf", timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert daemon.client.list() == []  # and the daemon answers on
