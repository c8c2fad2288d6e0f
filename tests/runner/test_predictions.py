"""Predict results on the wire: the child's JSON ↔ pb.PredictResponse, and the child's side of it."""

from __future__ import annotations

import base64
import json

import pytest

from adapters import entrypoint
from protos import visionyard_pb2 as pb
from runner.daemon.predictions import PredictOutputError, parse_child_output, response_from_json, response_to_json

PNG = b"\x89PNG\r\n\x1a\n fake image bytes \x00\xff"
MASK = b"\x89PNG\r\n\x1a\n fake mask \x01\x02"

EVERY_FIELD = {
    "task": "pose_estimation",
    "predictions": [
        {"label": "person", "score": 0.875, "index": 0, "box": [0.0, 2.5, 30.0, 40.25],
         "polygon": [[0.0, 0.0], [10.5, 0.0], [10.5, 20.0]],
         "keypoints": [[1.0, 2.0, 0.9], [3.0, 4.0, 0.0], [5.5, 6.5, 2.0]],
         "rotated_box": [15.0, 20.0, 30.0, 10.0, -0.5]},
        {"label": "dog", "score": 0.5, "index": 3},
    ],
    "width": 640,
    "height": 480,
    "mask_png_b64": base64.b64encode(MASK).decode(),
    "image_png_b64": base64.b64encode(PNG).decode(),
    "text": "HELLO 42",
    "timings_ms": {"preprocess": 1.5, "inference": 12.25, "postprocess": 0.5},
}


def test_every_field_round_trips():
    response = response_from_json(EVERY_FIELD)
    first = response.predictions[0]
    assert (first.label, first.score, first.index) == ("person", 0.875, 0)
    assert first.HasField("box") and (first.box.x1, first.box.y1, first.box.x2, first.box.y2) == (0, 2.5, 30, 40.25)
    assert [(p.x, p.y) for p in first.polygon] == [(0, 0), (10.5, 0), (10.5, 20)]
    assert [(k.x, k.y, k.visibility) for k in first.keypoints] == [(1, 2, 0.9), (3, 4, 0), (5.5, 6.5, 2)]
    assert first.HasField("rotated_box") and first.rotated_box.angle == -0.5
    assert (response.task, response.width, response.height, response.text) == ("pose_estimation", 640, 480, "HELLO 42")
    assert response.image_png == PNG and response.mask_png == MASK
    assert dict(response.timings_ms) == EVERY_FIELD["timings_ms"]
    assert response_to_json(response) == EVERY_FIELD
    # and through the wire format itself
    assert pb.PredictResponse.FromString(response.SerializeToString()) == response


def test_fields_a_task_lacks_stay_unset():
    dog = response_from_json(EVERY_FIELD).predictions[1]
    assert not dog.HasField("box") and not dog.HasField("rotated_box")
    assert not dog.polygon and not dog.keypoints
    assert response_to_json(response_from_json(EVERY_FIELD))["predictions"][1] == {
        "label": "dog", "score": 0.5, "index": 3}


@pytest.mark.parametrize("old", [
    {"predictions": [{"label": "red", "score": 0.9, "index": 2}, {"label": "blue", "score": 0.1, "index": 0}]},
    [{"label": "red", "score": 0.9, "index": 2}, {"label": "blue", "score": 0.1, "index": 0}],
])
def test_the_old_list_only_output_still_parses(old):
    response = response_from_json(old, task="image_classification")
    assert [(p.label, p.score, p.index) for p in response.predictions] == [("red", 0.9, 2), ("blue", 0.1, 0)]
    assert response.task == "image_classification"
    assert (response.width, response.height, response.image_png, response.text) == (0, 0, b"", "")


def test_the_child_task_wins_over_the_job_task():
    assert response_from_json({"task": "ocr", "predictions": []}, task="image_classification").task == "ocr"
    assert response_from_json({"predictions": []}, task="image_classification").task == "image_classification"


def test_parse_child_output_reads_the_last_line():
    stdout = "some log line\n{not json either\n" + json.dumps(EVERY_FIELD) + "\n\n"
    assert parse_child_output(stdout) == response_from_json(EVERY_FIELD)


@pytest.mark.parametrize(("stdout", "message"), [
    ("", "printed nothing"),
    ("loading...\nTraceback (most recent call last)", "not JSON"),
    ('{"predictions": {"label": "x"}}', "'predictions' list"),
    ('{"predictions": [{"label": "x", "box": [1, 2, 3]}]}', "malformed"),
    ('{"predictions": [{"label": "x", "keypoints": [[1, 2]]}]}', "malformed"),
    ('{"predictions": [], "image_png_b64": "not base64!"}', "malformed"),
])
def test_bad_child_output_is_a_clear_error(stdout, message):
    with pytest.raises(PredictOutputError, match=message):
        parse_child_output(stdout)


# ---------------------------------------------------------------- the child's side of the contract


class FakeAdapter:
    """What ``build_adapter`` would return: an adapter with one of the two predict contracts."""

    def __init__(self, result, takes_annotate=True):
        self.result, self.calls = result, []
        if not takes_annotate:
            self.predict = self._predict_without_annotate

    def load_checkpoint(self, path):
        return {"epoch": 1}

    def predict(self, image_path, top_k=5, annotate=False):
        self.calls.append((image_path, top_k, annotate))
        return self.result

    def _predict_without_annotate(self, image_path, top_k=5):
        self.calls.append((image_path, top_k))
        return self.result


@pytest.fixture
def run_child(tmp_path, monkeypatch, capsys):
    """Run ``entrypoint.predict`` with a fake adapter; return (exit code, last stdout line as JSON)."""
    from PIL import Image

    image = tmp_path / "in.png"
    Image.new("RGB", (50, 40)).save(image)
    spec = {"framework": "timm", "task": "image_classification", "model": "resnet18",
            "dataset": {"path": str(tmp_path), "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 2, "learning_rate": 0.01}}
    (tmp_path / "job.json").write_text(json.dumps({"job_id": "j", "spec": spec}))

    def run(adapter, annotate=False):
        monkeypatch.setattr(entrypoint, "build_adapter", lambda job, reporter: adapter)
        code = entrypoint.predict(str(tmp_path / "job.json"), str(image), "ckpt.pt", 3, annotate)
        captured = capsys.readouterr()
        return code, (json.loads(captured.out.splitlines()[-1]) if code == 0 else captured.err)

    return run


def test_child_turns_the_old_list_into_the_full_object(run_child):
    adapter = FakeAdapter([{"label": "red", "score": 0.9, "index": 2}], takes_annotate=False)
    code, result = run_child(adapter, annotate=True)
    assert code == 0 and adapter.calls == [(adapter.calls[0][0], 3)]  # annotate not passed to an old adapter
    assert result["task"] == "image_classification" and (result["width"], result["height"]) == (50, 40)
    assert result["predictions"] == [{"label": "red", "score": 0.9, "index": 2}]
    assert {"load", "total"} <= set(result["timings_ms"])
    assert parse_child_output(json.dumps(result)).predictions[0].label == "red"


def test_child_output_of_the_dict_contract_reaches_the_proto_intact(run_child):
    dict_result = {
        "task": "instance_segmentation", "width": 640, "height": 480, "image_png": PNG, "mask_png": MASK,
        "text": "HELLO 42", "timings_ms": {"inference": 12.25},
        "predictions": [{"label": "cat", "score": 0.75, "index": 1, "box": (1, 2, 3, 4),
                         "polygon": [(1, 2), (3, 4), (5, 6)], "keypoints": [[1, 2, 1]],
                         "rotated_box": [1, 2, 3, 4, 0.25]}],
    }
    adapter = FakeAdapter(dict_result)
    code, result = run_child(adapter, annotate=True)
    assert code == 0 and adapter.calls[0][2] is True
    response = parse_child_output(json.dumps(result), task="image_classification")
    assert response.task == "instance_segmentation" and (response.width, response.height) == (640, 480)
    assert response.image_png == PNG and response.mask_png == MASK and response.text == "HELLO 42"
    assert response.timings_ms["inference"] == 12.25 and "total" in response.timings_ms
    cat = response.predictions[0]
    assert (cat.box.x1, cat.box.y2, len(cat.polygon), cat.keypoints[0].visibility) == (1, 4, 3, 1)
    assert cat.rotated_box.angle == 0.25


def test_child_refuses_a_malformed_prediction(run_child):
    code, err = run_child(FakeAdapter([{"label": "x", "box": [1, 2]}]))
    assert code == 1 and "prediction 0 from the adapter is malformed: box needs 4 numbers" in err
