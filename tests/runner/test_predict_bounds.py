"""Predict through the real servicer on a real asyncio gRPC server (as the daemon serves it, guard
included): warm workers (one per model, reused, batched, stopped when idle or to make room,
restarted after a death), a few predicts at once and a short queue, a pixel limit judged before any
worker sees the image, and a client that goes leaving the worker warm. The worker is
`predict_child.py` (the serve protocol, no framework env)."""

from __future__ import annotations

import os
import time
import zlib

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.daemon.predictions import PredictLimits
from runner.daemon.workers import WorkerLimits
from runner.launch.procs import alive  # a process that exits mid-read is not alive
from tests.runner.predict_served import png, wait_for


def test_the_first_predict_starts_a_worker_and_the_next_ones_reuse_it(served):
    s = served()
    first = s.stub.Predict(s.request(), timeout=30)
    assert [p.label for p in first.predictions] == ["red"] and first.timings_ms["load"] == 12.5
    started = time.monotonic()
    for _ in range(5):
        assert s.stub.Predict(s.request(), timeout=30).predictions
    assert (time.monotonic() - started) / 5 < 0.5  # no process start, no load
    (worker,) = s.children().values()  # one worker served all six
    assert sum(n for n, _ in worker["batches"]) == 6
    (info,) = s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers
    assert (info.job_id, info.state, info.served, info.device) == (s.job_id, "ready", 6, "cpu")
    assert info.checkpoint.endswith("best.pt") and info.rss_bytes > 0 and info.load_ms == 12.5
    assert not list((s.job_dir).glob("predict-image-*"))  # each image's file is gone once answered


def test_predicts_that_arrive_together_go_to_the_worker_as_one_batch(served):
    s = served(PredictLimits(concurrent=8, queued=8), child_seconds=0.5,
               workers=WorkerLimits(max_batch=8, max_wait_ms=50))
    assert s.stub.Predict(s.request(), timeout=30).predictions  # the worker is warm
    calls = [s.stub.Predict.future(s.request(), timeout=60) for _ in range(6)]
    assert all(c.result().predictions for c in calls)
    (worker,) = s.children().values()
    sizes = [n for n, _ in worker["batches"][1:]]
    assert sum(sizes) == 6 and max(sizes) >= 3  # those waiting while one batch ran went together


def test_predicts_over_the_cap_are_refused_at_once_while_the_capped_ones_finish(served):
    s = served(PredictLimits(concurrent=1, queued=1), child_seconds=1.5, workers=WorkerLimits(max_wait_ms=0))
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
    (worker,) = s.children().values()
    assert [n for n, _ in worker["batches"]] == [1, 1]  # the running one, then the queued one


def test_a_predict_waiting_for_a_slot_leaves_the_queue_when_its_client_goes(served):
    s = served(PredictLimits(concurrent=1, queued=1), child_seconds=1.5)
    running = s.stub.Predict.future(s.request(), timeout=60)
    wait_for(lambda: s.children(), 10)
    with pytest.raises(grpc.RpcError) as gone:
        s.stub.Predict(s.request(), timeout=0.3)  # waits in the queue, then its deadline passes
    assert gone.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    queued = s.stub.Predict.future(s.request(), timeout=60)  # the queue's place is free again
    assert running.result().predictions and queued.result().predictions
    (worker,) = s.children().values()
    assert sum(n for n, _ in worker["batches"]) == 2


@pytest.mark.parametrize("image, limit, shown", [
    (png((12000, 12000), "1"), None, "12000×12000 (144.0 megapixels)"),  # 17 KB, 144 MB decoded (Pillow warns only)
    (png((3000, 2000)), 5_000_000, "3000×2000 (6.0 megapixels)"),
])
def test_an_image_over_the_pixel_limit_is_refused_before_a_worker_sees_it(served, image, limit, shown):
    s = served(PredictLimits(max_pixels=limit) if limit else PredictLimits())
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        s.stub.Predict(s.request(image), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert shown in refused.value.details()
    assert f"at most {(limit or 40_000_000) / 1e6:.1f} megapixels" in refused.value.details()
    assert time.monotonic() - started < 2
    assert s.children() == {}


def test_bytes_that_are_no_image_are_refused_before_a_worker_starts(served):
    s = served()
    with pytest.raises(grpc.RpcError) as refused:
        s.stub.Predict(s.request(b"just some text, named photo.jpg"), timeout=30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the 31 bytes sent are not an image" in refused.value.details()
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
def test_a_predict_whose_client_is_gone_leaves_the_worker_warm_for_the_next(served, monkeypatch, how):
    s = served(PredictLimits(concurrent=1, queued=0), child_seconds=3)
    call = s.stub.Predict.future(s.request(), timeout=1 if how == "deadline" else None)
    wait_for(lambda: s.children(), 10)
    if how == "cancel":
        call.cancel()
    with pytest.raises(grpc.FutureCancelledError if how == "cancel" else grpc.RpcError):
        call.result()
    assert s.stub.Predict(s.request(), timeout=30).predictions  # its slot is free again, the worker still serves
    (pid, worker), = s.children().items()  # the same worker, not a new one
    assert alive(pid) and alive(worker["grandchild"])


def test_an_item_error_is_that_predicts_alone(served):
    s = served()
    with pytest.raises(grpc.RpcError) as failed:
        s.stub.Predict(s.request(png((5, 5))), timeout=30)
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot identify image file" in failed.value.details()
    assert s.stub.Predict(s.request(), timeout=30).predictions
    assert len(s.children()) == 1


def test_a_worker_that_dies_fails_its_predict_with_its_log_and_the_next_starts_anew(served):
    s = served()
    assert s.stub.Predict(s.request(), timeout=30).predictions
    (first, worker), = s.children().items()
    with pytest.raises(grpc.RpcError) as died:
        s.stub.Predict(s.request(png((3, 3))), timeout=30)
    assert died.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "died (exit code 3)" in died.value.details() and "predict-worker.log" in died.value.details()
    wait_for(lambda: not alive(worker["grandchild"]), 5)  # its whole group went with it
    assert s.stub.Predict(s.request(), timeout=30).predictions
    assert len(s.children()) == 2 and not alive(first)


def test_a_worker_that_cannot_load_says_why(served, monkeypatch):
    monkeypatch.setenv("VY_TEST_WORKER_FAIL", "1")
    s = served()
    with pytest.raises(grpc.RpcError) as failed:
        s.stub.Predict(s.request(), timeout=30)
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "could not load" in failed.value.details() and "no such checkpoint format" in failed.value.details()
    assert "exit code 1" in failed.value.details()


def test_an_idle_worker_is_stopped_with_its_whole_group(served):
    s = served(workers=WorkerLimits(idle_seconds=0.5))
    assert s.stub.Predict(s.request(), timeout=30).predictions
    (pid, worker), = s.children().items()
    assert wait_for(lambda: not alive(pid) and not alive(worker["grandchild"]), 10) > 0.3
    assert s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers == []
    assert s.stub.Predict(s.request(), timeout=30).predictions  # a new one starts
    assert len(s.children()) == 2


def test_a_full_pool_stops_the_worker_used_longest_ago(served):
    s = served(workers=WorkerLimits(workers=2))
    jobs = [s.job_id, s.add_job(), s.add_job()]
    for job_id in jobs:
        assert s.stub.Predict(s.request(job_id=job_id), timeout=30).predictions
    listed = {w.job_id for w in s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers}
    assert listed == set(jobs[1:])
    (first,) = s.children(jobs[0])
    wait_for(lambda: not alive(first), 5)


def test_a_new_best_checkpoint_is_a_new_model(served):
    s = served()
    assert s.stub.Predict(s.request(), timeout=30).predictions
    checkpoint = s.job_dir / "best.pt"
    checkpoint.write_bytes(b"better weights")
    stat = checkpoint.stat()
    os.utime(checkpoint, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert s.stub.Predict(s.request(), timeout=30).predictions
    old, new = sorted(s.children().items(), key=lambda kv: kv[1]["start"])
    wait_for(lambda: not alive(old[0]), 5)  # the old model's worker made way
    assert [w.pid for w in s.stub.ListWorkers(pb.ListWorkersRequest(), timeout=10).workers] == [new[0]]


def test_stop_workers_and_the_pools_close_leave_no_process(served):
    s = served()
    other = s.add_job()
    for job_id in (s.job_id, other):
        assert s.stub.Predict(s.request(job_id=job_id), timeout=30).predictions
    assert s.stub.StopWorkers(pb.StopWorkersRequest(job_id=other), timeout=10).stopped == 1
    (pid, worker), = s.children(other).items()
    wait_for(lambda: not alive(pid) and not alive(worker["grandchild"]), 5)
    (pid, worker), = s.children().items()
    s.workers.close()
    wait_for(lambda: not alive(pid) and not alive(worker["grandchild"]), 5)


def test_a_worker_ends_when_its_daemon_is_gone(served):
    """Its stdin is the daemon's pipe: closed (as a killed daemon's is), the worker exits by itself."""
    s = served()
    assert s.stub.Predict(s.request(), timeout=30).predictions
    (worker,) = s.workers._workers.values()
    worker.proc.stdin.close()
    wait_for(lambda: not alive(worker.pid), 5)


def test_twenty_predicts_in_flight_leave_job_calls_answering(served):
    """Predicts waiting on their worker hold no server thread: with 20 of them in flight (more than the
    servers' 16 threads), `GetJob` and `ListJobs` still answer while every predict is still pending."""
    s = served(PredictLimits(concurrent=20, queued=0), child_seconds=2.0, workers=WorkerLimits(max_batch=1))
    assert s.stub.Predict(s.request(), timeout=60).predictions  # warm
    calls = [s.stub.Predict.future(s.request(), timeout=120) for _ in range(20)]
    wait_for(lambda: len(next(iter(s.children().values()))["batches"]) >= 2, timeout=30)  # they reached the worker
    for _ in range(10):
        assert s.stub.GetJob(pb.GetJobRequest(job_id=s.job_id), timeout=2).id == s.job_id
        assert s.stub.ListJobs(pb.ListJobsRequest(), timeout=2).jobs
    assert sum(not c.done() for c in calls) >= 18  # answered while (nearly) all of them still waited
    for call in calls:
        call.cancel()
