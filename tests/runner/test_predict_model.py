"""Predict with a model without a job (a framework's model and its weights, or its pretrained ones)
through the real servicer; the worker is `predict_child.py`, which records how it was started."""

from __future__ import annotations

import grpc
import pytest

from protos import visionyard_pb2 as pb
from tests.runner.predict_served import png


def model_request(s, **ref) -> pb.PredictRequest:
    return pb.PredictRequest(model=pb.ModelRef(**ref), image=png((8, 8)), top_k=1)


def test_a_model_with_weights_gets_a_worker_of_its_own_in_the_frameworks_env(served, tmp_path):
    s = served()
    weights = tmp_path / "r18.pth"
    weights.write_bytes(b"weights")
    response = s.stub.Predict(model_request(s, framework="timm", model="resnet18", weights=str(weights)), timeout=30)
    assert response.predictions[0].label == "red"
    assert s.servicer.rt.envs.ensured == "timm"
    (folder,) = (s.paths.home / "predict-models").iterdir()
    (worker,) = s.children(folder=folder).values()
    assert worker["args"][-5:] == ["--serve", "--weights", str(weights), "--max-pixels", "40000000"]
    (info,) = s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers
    assert (info.job_id, info.checkpoint) == ("model:timm/resnet18", str(weights))
    s.stub.Predict(model_request(s, framework="timm", model="resnet18", weights=str(weights)), timeout=30)
    assert len(s.children(folder=folder)) == 1  # the same model: the same warm worker


def test_no_weights_means_the_models_pretrained_ones(served):
    s = served()
    assert s.stub.Predict(model_request(s, framework="ultralytics", model="yolov8n"), timeout=30).predictions
    (folder,) = (s.paths.home / "predict-models").iterdir()
    (worker,) = s.children(folder=folder).values()
    assert "--pretrained" in worker["args"] and "--weights" not in worker["args"]


@pytest.mark.parametrize("ref, words", [
    ({"framework": "caffe", "model": "x"}, ["model.framework 'caffe' is not a framework", "timm"]),
    ({"framework": "custom", "model": "x"}, ["model.framework 'custom'"]),
    ({"framework": "timm"}, ["model.model is required"]),
    ({"framework": "timm", "model": "resnet18", "task": "pose_estimation"}, ["model.task 'pose_estimation'"]),
    ({"framework": "timm", "model": "resnet18", "weights": "/nowhere/r18.pth"}, ["model.weights /nowhere/r18.pth"]),
])
def test_a_bad_model_is_refused_naming_the_field(served, ref, words):
    s = served()
    with pytest.raises(grpc.RpcError) as refused:
        s.stub.Predict(model_request(s, **ref), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert all(w in refused.value.details() for w in words), refused.value.details()
