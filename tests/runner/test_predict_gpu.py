"""Predict workers on GPUs: placed by the runner's device pool, which training jobs share, training first."""

from __future__ import annotations

import grpc
import pytest

from protos import visionyard_pb2 as pb
from tests.runner.predict_served import png, wait_for


def predict(s, job_id: str, **fields) -> pb.PredictResponse:
    return s.stub.Predict(pb.PredictRequest(job_id=job_id, image=png((8, 8)), top_k=1, **fields), timeout=60)


def workers(s) -> dict[str, pb.WorkerInfo]:
    return {w.job_id: w for w in s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers}


def test_a_gpu_jobs_worker_takes_a_free_gpu_and_gives_it_to_a_training_job_when_idle(served):
    s = served(gpus=(3,))
    job = s.add_job(device="cuda")
    predict(s, job)
    worker = workers(s)[job]
    assert worker.device == "cuda:3" and s.children(job)[worker.pid]["gpus"] == "3"
    assert s.devices.take_gpu() is None  # it holds the runner's one GPU

    assignment = s.devices.acquire("cuda")  # a training job wants it: the idle worker makes way
    assert assignment is not None and assignment.gpu == 3 and job not in workers(s)
    predict(s, job)  # while training holds it, the model is served on the CPU
    worker = workers(s)[job]
    assert worker.device == "cpu (every GPU is training)" and s.children(job)[worker.pid]["gpus"] == ""
    s.devices.release(assignment)


def test_a_cpu_job_stays_on_the_cpu_unless_asked_and_a_stopped_worker_gives_its_gpu_back(served):
    s = served(gpus=(0, 1))
    predict(s, s.job_id)
    assert workers(s)[s.job_id].device == "cpu" and s.devices.take_gpu("cuda:0") is not None
    predict(s, s.job_id, device="cuda:1")  # asked for by name: another worker, on that GPU
    on_gpu = [w for w in s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers if w.device == "cuda:1"]
    assert len(on_gpu) == 1 and s.children()[on_gpu[0].pid]["gpus"] == "1"
    s.stub.StopWorkers(pb.StopWorkersRequest(job_id=s.job_id), timeout=30)
    wait_for(lambda: s.devices.take_gpu("cuda:1") is not None, timeout=10)


@pytest.mark.parametrize("device, code, says", [
    ("tpu", grpc.StatusCode.INVALID_ARGUMENT, "device 'tpu' is not one: use cpu, cuda or cuda:N"),
    ("cuda", grpc.StatusCode.FAILED_PRECONDITION, "device cuda: 'cuda' asks for a GPU but this runner has none"),
])
def test_a_device_the_runner_can_never_give_is_refused(served, device, code, says):
    s = served()
    with pytest.raises(grpc.RpcError) as err:
        predict(s, s.job_id, device=device)
    assert err.value.code() == code and says in err.value.details()


def test_a_gpu_job_on_a_runner_without_gpus_is_served_on_the_cpu(served):
    s = served()
    job = s.add_job(device="cuda:0")
    predict(s, job)
    worker = workers(s)[job]
    assert worker.device == "cpu" and s.children(job)[worker.pid]["gpus"] == ""
