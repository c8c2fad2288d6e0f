"""`visionyard predict` output through main(argv), with a stand-in client (no daemon)."""

from __future__ import annotations

import json

import pytest

import runner.cli.commands
from protos import visionyard_pb2 as pb
from runner.cli import main

PNG = b"\x89PNG\r\n\x1a\n annotated"
MASK = b"\x89PNG\r\n\x1a\n class ids"


def detection() -> pb.PredictResponse:
    response = pb.PredictResponse(task="pose_estimation", width=640, height=480,
                                  timings_ms={"inference": 12.5, "preprocess": 1.25, "total": 15.0})
    person = response.predictions.add(label="person", score=0.875, index=0, box=pb.Box(x1=0, y1=2.5, x2=30, y2=40))
    person.keypoints.extend([pb.Keypoint(x=1, y=2, visibility=2)] * 17)
    person.polygon.extend([pb.Point(x=0, y=0), pb.Point(x=5, y=0), pb.Point(x=5, y=5)])
    response.predictions.add(label="[boat]", score=0.5, index=4,
                             rotated_box=pb.RotatedBox(cx=10, cy=20, w=30, h=8, angle=0.25))
    return response


class FakeClient:
    """Stands in for runner.client.Client: returns a prepared response, records the call."""

    response = pb.PredictResponse()
    calls: list[dict] = []

    def __init__(self, address=None, home=None, **options):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def predict(self, job_id, image, top_k=5, checkpoint="best", annotate=False, runtime="pytorch", device="",
                labels=None, question="", boxes=None):
        FakeClient.calls.append({"job": job_id, "image": image, "top_k": top_k, "checkpoint": checkpoint,
                                 "annotate": annotate, "runtime": runtime, "device": device, "labels": labels,
                                 "question": question})
        return FakeClient.response


@pytest.fixture
def predict(monkeypatch, capsys):
    """Run `visionyard predict ARGS` against a response; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(runner.cli.commands, "Client", FakeClient)
    FakeClient.calls = []

    def run(response: pb.PredictResponse, *args: str) -> tuple[int, str, str]:
        FakeClient.response = response
        code = main(["predict", "job1", "in.jpg", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_human_output_shows_what_each_prediction_has(predict):
    code, out, _ = predict(detection(), "--top-k", "2", "--checkpoint", "last", "--runtime", "onnx", "--device",
                           "cuda:1", "--labels", "car, bike,", "--question", "how many?")
    assert code == 0
    assert FakeClient.calls == [{"job": "job1", "image": "in.jpg", "top_k": 2, "checkpoint": "last",
                                 "annotate": False, "runtime": "onnx", "device": "cuda:1", "labels": ["car", "bike"],
                                 "question": "how many?"}]
    lines = out.splitlines()
    assert lines[0] == "task pose_estimation, image 640x480, 2 prediction(s)"
    assert lines[1].startswith("1. person") and "0.8750" in lines[1]
    assert "box [0.0, 2.5, 30.0, 40.0]" in lines[1] and "polygon 3 points" in lines[1] and "17 keypoints" in lines[1]
    assert lines[2].startswith("2. [boat]")  # brackets printed as is, not taken for markup
    assert "rotated box [cx 10.0, cy 20.0, w 30.0, h 8.0, angle 0.250 rad]" in lines[2]
    assert lines[3] == "timings: preprocess 1.2 ms, inference 12.5 ms, total 15.0 ms"


def test_classification_output_and_ocr_text(predict):
    response = pb.PredictResponse(task="ocr", width=32, height=32, text="HELLO")
    response.predictions.add(label="red", score=0.99, index=2)
    code, out, _ = predict(response)
    assert code == 0 and out.splitlines()[1].rstrip() == "1. red                  0.9900"
    assert "text: HELLO" in out


def test_json_output_is_the_response_without_images(predict, tmp_path):
    response = detection()
    response.image_png = PNG
    code, out, err = predict(response, "--json")
    data = json.loads(out)
    assert code == 0 and FakeClient.calls[0]["annotate"] is False
    assert data["task"] == "pose_estimation" and (data["width"], data["height"]) == (640, 480)
    person, boat = data["predictions"]
    assert person["box"] == {"x1": 0.0, "y1": 2.5, "x2": 30.0, "y2": 40.0}  # a 0.0 coordinate is kept
    assert person["index"] == 0 and len(person["keypoints"]) == 17 and len(person["polygon"]) == 3
    assert "box" not in boat and boat["rotated_box"]["angle"] == 0.25 and boat["polygon"] == []
    assert data["timings_ms"]["inference"] == 12.5
    assert "image_png" not in data and "mask_png" not in data
    assert f"image_png ({len(PNG)} bytes) not shown; --save PATH writes it" in err


def test_save_asks_for_an_annotated_image_and_writes_it(predict, tmp_path):
    response = detection()
    response.image_png = PNG
    out_file = tmp_path / "out.png"
    code, out, err = predict(response, "--json", "--save", str(out_file))
    assert code == 0 and FakeClient.calls[0]["annotate"] is True
    assert out_file.read_bytes() == PNG
    assert json.loads(out)["task"] == "pose_estimation"  # stdout stays pure JSON
    assert f"image_png ({len(PNG)} bytes) saved to {out_file}" in err


def test_save_writes_the_mask_of_semantic_segmentation(predict, tmp_path):
    out_file = tmp_path / "mask.png"
    code, out, _ = predict(pb.PredictResponse(task="semantic_segmentation", width=4, height=4, mask_png=MASK),
                           "--save", str(out_file))
    assert code == 0 and out_file.read_bytes() == MASK
    assert f"mask_png ({len(MASK)} bytes) saved to {out_file}" in out


def test_save_with_an_overlay_and_a_mask_keeps_both(predict, tmp_path):
    out_file = tmp_path / "seg.png"
    code, out, _ = predict(pb.PredictResponse(task="semantic_segmentation", image_png=PNG, mask_png=MASK),
                           "--save", str(out_file))
    assert code == 0 and out_file.read_bytes() == PNG
    assert (tmp_path / "seg-mask.png").read_bytes() == MASK
    assert f"saved to {tmp_path / 'seg-mask.png'}" in out


def test_save_without_an_image_is_a_clear_error(predict, tmp_path):
    response = pb.PredictResponse(task="image_classification")
    response.predictions.add(label="red", score=0.9, index=2)
    code, out, _ = predict(response, "--save", str(tmp_path / "out.png"))
    assert code == 2
    assert "this model's task (image_classification) returns no image" in " ".join(out.split())
    assert not (tmp_path / "out.png").exists()
