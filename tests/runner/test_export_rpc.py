"""`ExportModel` and `--runtime onnx` through a real servicer on a real gRPC server, with a stand-in export
child (tests/runner/predict_child.py): where exports go, what a failed validation keeps, what the client is
told, which export a predict uses."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.payload.supervisor import alive
from tests.runner.predict_served import png, wait_for


def export(s, **fields) -> pb.ExportResponse:
    return s.stub.ExportModel(pb.ExportRequest(job_id=s.job_id, **fields), timeout=60)


def refused(s, code, **fields) -> str:
    with pytest.raises(grpc.RpcError) as err:
        export(s, **fields)
    assert err.value.code() == code, err.value.details()
    return err.value.details()


def test_a_passed_export_lands_in_the_job_dir_with_its_report(served):
    s = served()
    reply = export(s, dynamic=True, opset=18, count=5)
    folder = s.job_dir / "exports" / "onnx-best-dynamic-opset18"
    assert reply.path == str(folder / "model.onnx") and reply.report == str(folder / "export.json")
    assert (folder / "model.onnx").read_bytes() == b"onnx" * 10
    assert reply.validation.passed and reply.validation.agreement_kind == "top-1" and reply.size_bytes == 40
    assert reply.exporter == "fake 1.0" and list(reply.inputs) == ["pixel_values"] and reply.dynamic
    report = json.loads((folder / "export.json").read_text())
    assert report["file"] == str(folder / "model.onnx")  # where it is now, not where it was made
    assert report["checkpoint_mtime_ns"] == Path(report["checkpoint"]).stat().st_mtime_ns
    [args] = s.exports()
    assert args[args.index("--checkpoint") + 1] == str(s.job_dir / "best.pt")
    assert {"--dynamic", "--opset", "18", "--count", "5"} <= set(args) and "--half" not in args
    assert [p.name for p in (s.job_dir / "exports").iterdir()] == ["onnx-best-dynamic-opset18"]  # no partial left


def test_a_failed_validation_is_an_error_that_keeps_the_numbers_but_no_model(served, monkeypatch):
    s = served()
    export(s)  # a good one first: a failed one must not replace it
    monkeypatch.setenv("VY_TEST_EXPORT", "fail")
    details = refused(s, grpc.StatusCode.FAILED_PRECONDITION)
    assert "failed its validation on 8 image(s)" in details and "max |PyTorch - ONNX| of logits is 3.5" in details
    assert "top-1 agreement 0.250 (at least 0.9)" in details and "the model was not kept" in details
    failed = s.job_dir / "exports" / "onnx-best.failed"
    assert not (failed / "model.onnx").exists() and json.loads((failed / "export.json").read_text())[
        "validation"]["passed"] is False
    assert (failed / "export.log").read_text().startswith("exporting")
    assert (s.job_dir / "exports" / "onnx-best" / "model.onnx").exists()  # the passed one stays


def test_an_export_that_crashes_says_why_and_where_its_log_is(served, monkeypatch):
    s = served()
    monkeypatch.setenv("VY_TEST_EXPORT", "crash")
    details = refused(s, grpc.StatusCode.FAILED_PRECONDITION, half=True)
    assert "export failed: RuntimeError: an op the exporter does not know" in details
    assert str(s.job_dir / "exports" / "onnx-best-fp16.failed") in details
    assert not list((s.job_dir / "exports").glob(".partial-*"))


@pytest.mark.parametrize("fields, says", [
    ({"format": "tflite"}, "format 'tflite' is not one visionyard exports; valid: onnx"),
    ({"opset": 3}, "opset must be between 7 and 23"),
    ({"checkpoint": "middle"}, "checkpoint must be 'best' or 'last'"),
    ({"device": "gpu0"}, "device 'gpu0' is not one: use cpu, cuda or cuda:N"),
    ({"images": ["/no/such/folder"]}, "images: /no/such/folder does not exist on the daemon's machine"),
])
def test_bad_requests_are_refused_naming_the_field(served, fields, says):
    s = served()
    assert says in refused(s, grpc.StatusCode.INVALID_ARGUMENT, **fields)
    assert not s.exports()


def test_a_job_without_the_checkpoint_or_of_a_repo_is_refused(served):
    s = served()
    details = refused(s, grpc.StatusCode.FAILED_PRECONDITION, checkpoint="last")
    assert details == f"job {s.job_id} has no last checkpoint yet (state QUEUED)"
    repo_job = s.store.create_job({"framework": "custom", "repo": "yolov7", "task": "object_detection"}, "r", 1)
    s.store.update(repo_job.id, job_dir=str(s.job_dir), best_checkpoint=str(s.job_dir / "best.pt"))
    with pytest.raises(grpc.RpcError) as err:
        s.stub.ExportModel(pb.ExportRequest(job_id=repo_job.id), timeout=60)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "trained with repo 'yolov7'" in err.value.details() and "repo's own script" in err.value.details()


def test_a_client_that_goes_stops_its_export_and_leaves_nothing(served, monkeypatch):
    s = served()
    monkeypatch.setenv("VY_TEST_EXPORT", "hang")
    call = s.stub.ExportModel.future(pb.ExportRequest(job_id=s.job_id), timeout=60)
    wait_for(lambda: next((s.job_dir / "exports").glob(".partial-*/hanging"), None), timeout=30)
    hanging = next((s.job_dir / "exports").glob(".partial-*/hanging"))
    pid = int(next(line.split()[1] for line in (s.job_dir / "children.log").read_text().splitlines()
                   if line.startswith("EXPORT ")))
    with pytest.raises(grpc.RpcError) as err:  # a second export of the same kind waits for nobody: refused
        export(s)
    assert err.value.code() == grpc.StatusCode.ABORTED and "is running; wait for it" in err.value.details()
    call.cancel()
    wait_for(lambda: not alive(pid), timeout=30)
    wait_for(lambda: not hanging.parent.exists(), timeout=30)
    monkeypatch.setenv("VY_TEST_EXPORT", "pass")
    assert export(s).validation.passed  # the kind is free again


def test_predict_with_runtime_onnx_uses_the_newest_validated_export_of_the_checkpoint_as_it_is(served):
    s = served()
    image = png((8, 8))

    def predict(**fields):
        return s.stub.Predict(pb.PredictRequest(job_id=s.job_id, image=image, top_k=1, **fields), timeout=60)

    with pytest.raises(grpc.RpcError) as err:
        predict(runtime="onnx")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"`visionyard export {s.job_id} --format onnx`" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        predict(runtime="tensorrt")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "pytorch, onnx" in err.value.details()

    first = export(s).path
    time.sleep(0.01)
    newer = export(s, dynamic=True).path
    assert predict().predictions and predict(runtime="onnx").predictions
    workers = {w.runtime: w for w in s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers}
    assert set(workers) == {"pytorch", "onnx"} and workers["onnx"].checkpoint == newer != first
    args = s.children()[workers["onnx"].pid]["args"]
    assert args[args.index("--onnx") + 1] == newer and args[args.index("--checkpoint") + 1] == str(s.job_dir / "best.pt")

    checkpoint = s.job_dir / "best.pt"  # a resumed run rewrites the checkpoint: its exports are of the old one
    checkpoint.write_bytes(b"new weights")
    os.utime(checkpoint, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(grpc.RpcError) as err:
        predict(runtime="onnx")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_exports_of_two_jobs_run_at_once(served, monkeypatch):
    s = served()
    other = s.add_job()
    monkeypatch.setenv("VY_TEST_EXPORT", "hang")
    calls = [s.stub.ExportModel.future(pb.ExportRequest(job_id=job), timeout=60) for job in (s.job_id, other)]
    for job in (s.job_id, other):
        wait_for(lambda job=job: next((s.paths.job_dir(job) / "exports").glob(".partial-*/hanging"), None),
                 timeout=30)
    for call in calls:
        call.cancel()
