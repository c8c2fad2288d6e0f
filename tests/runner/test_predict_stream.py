"""PredictStream through the real servicer and the Python client's `predict_many`: many images through
one warm worker, in batches, answered in order, each image's own error its alone, a client that goes
leaving nothing behind. The worker is `predict_child.py` (no framework env)."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from runner.client import Client, ClientError
from runner.daemon.predictions import PredictLimits
from runner.daemon.workers import WorkerLimits
from tests.runner.predict_served import png, wait_for


@pytest.fixture
def client_of():
    made = []

    def connect(s) -> Client:
        made.append(Client(address=s.address))
        return made[-1]

    yield connect
    for client in made:
        client.close()


def test_many_images_are_answered_in_order_in_batches_each_error_its_own(served, client_of, tmp_path):
    s = served(child_seconds=0.05, workers=WorkerLimits(max_batch=8, max_wait_ms=20))
    paths = []
    for i in range(12):
        path = tmp_path / f"{i:02d}.png"
        path.write_bytes(png((5, 5)) if i == 4 else b"a text file" if i == 7 else png((8, 8)))
        paths.append(path)
    paths.insert(9, tmp_path / "missing.png")
    answers = list(client_of(s).predict_many(s.job_id, paths, top_k=1))
    assert [a.index for a in answers] == list(range(13)) and [a.name for a in answers] == [str(p) for p in paths]
    errors = {a.index: a.error for a in answers if a.error}
    assert set(errors) == {4, 7, 9}
    assert "cannot identify image file" in errors[4]  # the worker's word on that image
    assert "the 11 bytes sent are not an image" in errors[7]  # refused before the worker
    assert "cannot read image" in errors[9] and "missing.png" in errors[9]  # never sent
    assert all(a.result.predictions[0].label == "red" for a in answers if not a.error)
    (worker,) = s.children().values()
    assert max(n for n, _ in worker["batches"]) > 1  # the worker got them in batches
    assert not list(s.job_dir.glob("predict-image-*"))


def test_a_stream_of_a_job_without_a_checkpoint_is_refused(served, client_of):
    s = served()
    job_id = s.add_job()
    s.store.update(job_id, best_checkpoint="")
    with pytest.raises(ClientError) as refused:
        list(client_of(s).predict_many(job_id, [("a", png((8, 8)))]))
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION and "no best checkpoint" in str(refused.value)


def test_a_worker_dying_mid_stream_ends_it_with_the_reason(served, client_of):
    s = served()
    images = [("a", png((8, 8))), ("b", png((3, 3))), ("c", png((8, 8)))]
    with pytest.raises(ClientError) as failed:
        list(client_of(s).predict_many(s.job_id, images))
    assert failed.value.code == grpc.StatusCode.FAILED_PRECONDITION and "exit code 3" in str(failed.value)


def test_a_client_that_goes_mid_stream_leaves_the_worker_serving_and_no_files(served, client_of):
    s = served(PredictLimits(concurrent=1, queued=0), child_seconds=0.2, workers=WorkerLimits(max_batch=2))
    client = client_of(s)
    stop = threading.Event()

    def endless():
        while not stop.is_set():
            yield ("frame", png((8, 8)))

    answers = client.predict_many(s.job_id, endless())
    next(answers)
    answers.close()  # the client goes: the call is cancelled
    stop.set()
    # its gate slot is free again and the same worker answers the next predict
    assert wait_for(lambda: _predicts(s), 10) is not None
    assert len(s.children()) == 1
    wait_for(lambda: not list(s.job_dir.glob("predict-image-*")), 10)


def _predicts(s) -> bool:
    try:
        return bool(s.stub.Predict(s.request(), timeout=5).predictions)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        return False


def test_a_stream_sent_image_by_image_fills_its_batches_and_its_last_images_go_at_once(served, client_of):
    """Images of a stream come one by one (here 15 ms apart, slower than `max_wait_ms`): the worker's
    batches fill up to `max_batch` while the stream goes on (`stream_wait_ms`), instead of going out a
    few at a time, and the stream's end sends the last ones without waiting for more."""
    s = served(workers=WorkerLimits(max_batch=4, max_wait_ms=5, stream_wait_ms=5000))

    def slowly():
        for i in range(10):
            if i:
                threading.Event().wait(0.015)
            yield (f"{i}", png((8, 8)))

    client = client_of(s)
    client.predict(s.job_id, png((8, 8)))  # the worker started: the stream meets it idle
    started = time.monotonic()
    answers = list(client.predict_many(s.job_id, slowly()))
    assert time.monotonic() - started < 4  # the last two did not wait out the 5 s for more
    assert [a.index for a in answers] == list(range(10)) and not any(a.error for a in answers)
    (worker,) = s.children().values()
    assert [n for n, _ in worker["batches"]] == [1, 4, 4, 2]


def test_labels_and_a_question_reach_the_worker_with_each_image_and_a_depth_map_comes_back(served, client_of,
                                                                                          tmp_path):
    """The task options of a predict (zero-shot labels, a VQA question) go to the child with the image, for one
    image and for a stream; a depth map the child returns is the answer's depth_png."""
    s = served()
    client = client_of(s)
    image = tmp_path / "a.png"
    image.write_bytes(png((8, 8)))
    ranked = client.predict(s.job_id, image, labels=["cat", "dog"])
    assert [p.label for p in ranked.predictions] == ["cat", "dog"]
    answered = client.predict(s.job_id, image, question="what colour?", annotate=True)
    assert answered.text == "an answer to what colour?" and answered.depth_png == image.read_bytes()
    streamed = list(client.predict_many(s.job_id, [image, image], labels=["fox"]))
    assert [a.result.predictions[0].label for a in streamed] == ["fox", "fox"]
    plain = client.predict(s.job_id, image)  # no options: the model's own answer
    assert plain.predictions[0].label == "red" and not plain.text
