"""`--boxes` for a top-down pose job (Transformers ViTPose), through `main(argv)` and the client against the real
servicer with a stand-in worker (tests/runner/predict_child.py: a person in each box it is given): the boxes go
with their image to the worker, one image's or a JSON file's per image; a model that finds its objects itself,
boxes that are no boxes and boxes outside the image are refused, naming `--boxes`. And the warm worker's loop
(`adapters.serve.answer`) hands a batch's boxes to the adapter one list per image."""

from __future__ import annotations

import json

import grpc
import pytest

from adapters.serve import answer
from protos import visionyard_pb2 as pb
from runner.client import Client, ClientError
from tests.runner.predict_served import png


def pose_job(s, framework: str = "transformers") -> str:
    return s.add_job(task="pose_estimation", framework=framework)


def test_an_images_boxes_go_with_it_to_a_top_down_pose_jobs_worker(served, cli, tmp_path):
    s = served()
    job = pose_job(s)
    image = tmp_path / "people.png"
    image.write_bytes(png((8, 8)))
    code, out = cli("predict", job, str(image), "--boxes", "0,1,4,7; 3.5,2,8,8", "--json", "--address", s.address)
    assert code == 0, out
    found = json.loads(out)["predictions"]
    assert [p["box"] for p in found] == [{"x1": 0.0, "y1": 1.0, "x2": 4.0, "y2": 7.0},
                                         {"x1": 3.5, "y1": 2.0, "x2": 8.0, "y2": 8.0}]
    assert found[0]["keypoints"][0]["x"] == 2.0 and found[0]["label"] == "person"
    code, out = cli("predict", job, str(image), "--address", s.address)  # no boxes: the worker's whole-image answer
    assert code == 0 and "red" in out


def test_a_json_file_gives_each_image_its_own_boxes_in_a_stream(served, cli, tmp_path):
    s = served()
    job = pose_job(s)
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(png((8, 8)))
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({str(folder / "a.png"): [[1, 1, 3, 3]], "b.png": [[0, 0, 8, 8], [2, 2, 4, 6]]}))
    code, out = cli("predict", job, str(folder), "--boxes", str(boxes), "--json", "--address", s.address)
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [[[b["box"][k] for k in ("x1", "y1", "x2", "y2")] for b in line["predictions"]] for line in lines] == [
        [[1, 1, 3, 3]], [[0, 0, 8, 8], [2, 2, 4, 6]], [[1, 2, 5, 6]]]  # c.png is not named: predicted whole
    with Client(s.address) as client:  # one list of boxes for every image
        answers = list(client.predict_many(job, [str(folder / "a.png"), str(folder / "c.png")], boxes=[[0, 0, 2, 2]]))
    assert [[p.box.x2 for p in a.result.predictions] for a in answers] == [[2.0], [2.0]]


def test_boxes_are_refused_for_models_that_find_their_objects_themselves(served, cli, tmp_path):
    s = served()
    image = tmp_path / "a.png"
    image.write_bytes(png((8, 8)))
    for job in (s.job_id, pose_job(s, framework="ultralytics")):
        code, out = cli("predict", job, str(image), "--boxes", "0,0,4,4", "--address", s.address)
        assert code != 0 and "boxes (--boxes) are taken only by top-down pose models" in out
        assert "finds its objects itself" in out
    assert not s.children(s.job_id) or all(not c["batches"] for c in s.children(s.job_id).values())


def test_a_stream_with_boxes_for_a_model_that_takes_none_is_refused_once_before_its_worker_starts(served, cli,
                                                                                                   tmp_path):
    """Not each image's error: the stream's first image carries the boxes, and the stream is refused there, naming
    `--boxes` and the job's task, before the job's model is loaded."""
    s = served()
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(png((8, 8)))
    code, out = cli("predict", s.job_id, str(folder), "--boxes", "0,0,4,4", "--address", s.address)
    assert code != 0 and out.count("boxes (--boxes) are taken only by top-down pose models") == 1, out
    assert "a timm classification model finds its objects itself" in out
    with Client(s.address) as client, pytest.raises(ClientError) as refused:
        list(client.predict_many(s.job_id, [str(folder / "a.png"), str(folder / "b.png")], boxes=[[0, 0, 4, 4]]))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "boxes (--boxes)" in str(refused.value) and "classification" in str(refused.value)
    assert not s.children(s.job_id)  # no worker was started for it


def test_an_image_with_boxes_later_in_a_stream_ends_it_there(served, tmp_path):
    """The first image has no boxes (a JSON file that names only the second): it is answered; the second image's
    boxes end the stream, and it never reaches the worker."""
    s = served()
    paths = []
    for name in ("a.png", "b.png", "c.png"):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(png((8, 8)))
    answers = []
    with Client(s.address) as client, pytest.raises(ClientError) as refused:
        for reply in client.predict_many(s.job_id, [str(p) for p in paths], boxes={"b.png": [[0, 0, 4, 4]]}):
            answers.append(reply)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and "boxes (--boxes)" in str(refused.value)
    assert [(a.name, a.error) for a in answers] == [(str(paths[0]), "")]
    assert answers[0].result.predictions[0].label == "red"


@pytest.mark.parametrize("given, message", [
    ("1,2,3", "is not a box x1,y1,x2,y2"), ("5,5,2,8", "is not a box x1,y1,x2,y2"), ("a,b,c,d", "is not a box"),
    ("nan,0,4,4", "is not a box"), (";", "no box given"), ("missing.json", "cannot read missing.json")])
def test_the_cli_refuses_what_is_no_box(capsys, given, message):
    from runner.cli.app import main

    with pytest.raises(SystemExit) as refused:
        main(["predict", "some-job", "a.png", "--boxes", given])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "argument --boxes" in err and message in err


def test_the_daemon_refuses_boxes_outside_the_image_and_too_many(served):
    s = served()
    job = pose_job(s)
    cases = [([pb.Box(x1=0, y1=0, x2=9, y2=4)], "box 1 [0, 0, 9, 4] reaches outside the 8x8 image"),
             ([pb.Box(x1=0, y1=0, x2=4, y2=4), pb.Box(x1=-1, y1=0, x2=4, y2=4)], "box 2 [-1, 0, 4, 4] reaches outside"),
             ([pb.Box(x1=4, y1=0, x2=4, y2=4)], "box 1 [4, 0, 4, 4] is not a box"),
             ([pb.Box(x1=0, y1=0, x2=1, y2=1)] * 101, "101 boxes for one image; at most 100")]
    for boxes, message in cases:
        with pytest.raises(grpc.RpcError) as refused:
            s.stub.Predict(pb.PredictRequest(job_id=job, image=png((8, 8)), boxes=boxes))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "boxes (--boxes)" in refused.value.details() and message in refused.value.details()
    with Client(s.address) as client, pytest.raises(ClientError, match=r"boxes: \[1, 2\] is not a box"):
        client.predict(job, png((8, 8)), boxes=[[1, 2]])


class BoxedAdapter:
    """Records each predict_batch call's images and boxes; a person per box."""

    def __init__(self):
        self.calls = []

    def predict_batch(self, images, top_k, annotate, boxes=None):
        self.calls.append(([p.rsplit("/", 1)[-1] for p in images], boxes))
        return [{"predictions": [{"label": "person", "score": 1.0, "index": 0, "box": b} for b in (each or [])]}
                for each in (boxes or [[]] * len(images))]

    def predict(self, image, top_k, annotate=False, boxes=None):
        return self.predict_batch([image], top_k, annotate, boxes=boxes)[0]


def test_a_worker_batches_images_with_boxes_each_with_its_own(tmp_path):
    names = []
    for name in ("a", "b", "c", "d"):
        (tmp_path / f"{name}.png").write_bytes(png((8, 8)))
        names.append(str(tmp_path / f"{name}.png"))
    adapter = BoxedAdapter()
    items = [{"image": names[0], "top_k": 1, "boxes": [[0, 0, 2, 2]]},
             {"image": names[1], "top_k": 1, "boxes": [[1, 1, 3, 3], [0, 0, 8, 8]]},
             {"image": names[2], "top_k": 1}, {"image": names[3], "top_k": 1, "boxes": [[2, 2, 4, 4]]}]
    results = answer(adapter, "pose_estimation", items, 10**6, 1.0)
    assert adapter.calls == [(["a.png", "b.png"], [[[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 8, 8]]]),
                             (["c.png"], None), (["d.png"], [[[2, 2, 4, 4]]])]
    assert [[p["box"] for p in r["result"]["predictions"]] for r in results] == [
        [[0, 0, 2, 2]], [[1, 1, 3, 3], [0, 0, 8, 8]], [], [[2, 2, 4, 4]]]
