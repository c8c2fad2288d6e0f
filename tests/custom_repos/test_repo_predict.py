"""A repo's `predict:`: the spec's checks, the command rendered for a batch, and the answers read
back (YOLO label files, JSON lines) into the shape every framework's predict has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image

from custom_repos.predict import class_names, predict_command, read_answers
from custom_repos.registry import SHIPPED_DIR
from custom_repos.spec import RepoSpecError, load_repo_spec, parse_repo_spec
from custom_repos.translate import SHIM_DIR


def with_predict(spec_dict, **predict):
    data = spec_dict()
    data["predict"] = {"command": ["{python}", "detect.py", "--weights", "{checkpoint}", "--source", "{source}",
                                   "--out", "{output_dir}", "--hyp", "{advanced.hyp}"],
                       "output": "yolo_txt", **predict}
    return data


@pytest.mark.parametrize("changes, words", [
    ({"command": ["{python}", "{epochs}"]}, ["predict.command[1]", "unknown placeholder '{epochs}'", "checkpoint"]),
    ({"output": "csv"}, ["predict.output", "yolo_txt", "json_lines"]),
    ({"annotated": "run/drawn.png"}, ["predict.annotated", "{name}"]),
    ({"labels": "../outside"}, ["predict.labels"]),
    ({"env": {"bad name": "x"}}, ["predict.env.bad name", "not a valid environment variable name"]),
])
def test_a_bad_predict_section_is_named_by_its_field(spec_dict, changes, words):
    with pytest.raises(RepoSpecError) as error:
        parse_repo_spec(with_predict(spec_dict, **changes), "myrepo.yaml")
    assert all(w in str(error.value) for w in words), str(error.value)


def test_the_shipped_yolov7_spec_predicts_with_detect_py():
    spec = load_repo_spec(SHIPPED_DIR / "yolov7.yaml")
    assert spec.predict.command[1] == "detect.py" and "--no-trace" in spec.predict.command
    assert (spec.predict.output, spec.predict.labels, spec.predict.annotated) == ("yolo_txt", "run/labels", "run/{name}")


def test_the_shipped_convnext_spec_predicts_with_visionyards_script_and_the_repos_shims(tmp_path):
    spec = load_repo_spec(SHIPPED_DIR / "convnext.yaml")
    data = tmp_path / "data"
    for name in ("wolf", "cat", "dog"):
        (data / "train" / name).mkdir(parents=True)
    job = {"model": "convnext_small", "task": "image_classification", "training": {"image_size": 64},
           "dataset": {"path": str(data), "format": "imagefolder"}}
    argv, env = predict_command(spec, job, tmp_path / "job", Path("/envs/x/bin/python"), "/j/checkpoint-best.pth",
                                tmp_path / "images", tmp_path / "out", 3)
    assert argv[:2] == ["/envs/x/bin/python", str(SHIM_DIR / "convnext_predict.py")] and Path(argv[1]).is_file()
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options == {"--model": "convnext_small", "--checkpoint": "/j/checkpoint-best.pth",
                       "--source": str(tmp_path / "images"), "--input-size": "64", "--num-classes": "3",
                       "--top-k": "3", "--device": "cpu"}
    assert env["VISIONYARD_SHIMS"] == "torch_six,cuda_synchronize_on_cpu" and env["PYTHONPATH"] == str(SHIM_DIR)
    assert spec.predict.output == "json_lines"


def test_the_command_gets_the_batch_the_checkpoint_and_the_jobs_settings(spec_dict, tmp_path):
    spec = parse_repo_spec(with_predict(spec_dict, env={"RUN": "{model}-{device_type}"}), "myrepo.yaml")
    job = {"model": "tiny", "task": "object_detection", "training": {"image_size": 320}, "advanced": {}}
    argv, env = predict_command(spec, job, tmp_path, Path("/envs/x/bin/python"), "/jobs/j/best.pt",
                                tmp_path / "images", tmp_path / "out", 5)
    assert argv == ["/envs/x/bin/python", "detect.py", "--weights", "/jobs/j/best.pt", "--source",
                    str(tmp_path / "images"), "--out", str(tmp_path / "out"), "--hyp", "data/hyp.tiny.yaml"]
    assert env["RUN"] == "tiny-cpu"


def image(path: Path, size=(200, 100)) -> Path:
    Image.new("RGB", size).save(path)
    return path


def test_yolo_label_files_become_boxes_in_pixels_best_first(spec_dict, tmp_path):
    spec = parse_repo_spec(with_predict(spec_dict, labels="run/labels"), "myrepo.yaml")
    images = [image(tmp_path / "00000.png"), image(tmp_path / "00001.jpg"), image(tmp_path / "00002.png")]
    labels = tmp_path / "out" / "run" / "labels"
    labels.mkdir(parents=True)
    (labels / "00000.txt").write_text("1 0.5 0.5 0.2 0.4 0.6\n0 0.25 0.25 0.1 0.1 0.9\n")
    (labels / "00002.txt").write_text("0 0.5 0.5 oops\n")
    first, second, third = read_answers(spec, "object_detection", tmp_path / "out", "", images, ["bolt", "nut"], 5)
    assert [(p["label"], p["score"], p["box"]) for p in first["predictions"]] == [
        ("bolt", 0.9, [40.0, 20.0, 60.0, 30.0]), ("nut", 0.6, [80.0, 30.0, 120.0, 70.0])]
    assert (first["width"], first["height"], first["task"]) == (200, 100, "object_detection")
    assert second["predictions"] == []  # no label file: nothing found
    assert "00002.txt:1: not `class cx cy w h [confidence]`" in third


def test_json_lines_are_matched_to_their_images_and_a_missing_one_is_its_error(spec_dict, tmp_path):
    spec = parse_repo_spec(with_predict(spec_dict, output="json_lines"), "myrepo.yaml")
    images = [image(tmp_path / "00000.png"), image(tmp_path / "00001.png")]
    stdout = "loading model...\n" + json.dumps({"image": str(images[0]), "predictions": [
        {"index": 1, "score": 0.7}, {"index": 0, "score": 0.2}]}) + "\n"
    found, missing = read_answers(spec, "image_classification", tmp_path, stdout, images, ["cat", "dog"], 1)
    assert [(p["label"], p["score"]) for p in found["predictions"]] == [("dog", 0.7)]  # top_k 1
    assert missing == "the repo's predict printed no answer for 00001.png"
    stdout += json.dumps({"image": "00001.png", "error": "cannot read it: truncated"}) + "\n"
    _, unreadable = read_answers(spec, "image_classification", tmp_path, stdout, images, ["cat", "dog"], 1)
    assert unreadable == "the repo's predict could not predict 00001.png: cannot read it: truncated"


def test_a_drawn_image_comes_back_as_png_when_asked(spec_dict, tmp_path):
    spec = parse_repo_spec(with_predict(spec_dict, annotated="run/{name}"), "myrepo.yaml")
    images = [image(tmp_path / "00000.jpg"), image(tmp_path / "00001.jpg")]
    (tmp_path / "out" / "run").mkdir(parents=True)
    for i in images:
        Image.new("RGB", (200, 100), "red").save(tmp_path / "out" / "run" / i.name)
    drawn, plain = read_answers(spec, "object_detection", tmp_path / "out", "", images, [], 5, [True, False])
    assert drawn["image_png_b64"] and "image_png_b64" not in plain


def test_image_folder_classes_are_the_train_folders_names_sorted_as_imagefolder_numbers_them(tmp_path):
    data = tmp_path / "data"
    for name in ("wolf", "Zebra", "cat", ".hidden_dir"):
        (data / "train" / name).mkdir(parents=True)
    (data / "train" / "notes.txt").write_text("not a class")
    job = {"dataset": {"path": str(data), "format": "imagefolder"}}
    assert class_names(tmp_path / "job", job) == [".hidden_dir", "Zebra", "cat", "wolf"]  # torchvision's find_classes
    assert class_names(tmp_path / "job", {"dataset": {"path": str(data), "format": "dice"}}) == []
    (tmp_path / "job" / "data" / "train" / "b").mkdir(parents=True)  # a dice dataset converted at launch
    (tmp_path / "job" / "data" / "train" / "a").mkdir()
    assert class_names(tmp_path / "job", {"dataset": {"path": str(data), "format": "dice"}}) == ["a", "b"]
    assert class_names(tmp_path / "gone", {"dataset": {"path": str(tmp_path / "moved"), "format": "imagefolder"}}) == []


def test_class_names_come_from_the_jobs_data_yaml(tmp_path):
    assert class_names(tmp_path) == []
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"nc": 2, "names": ["bolt", "nut"]}))
    assert class_names(tmp_path) == ["bolt", "nut"]
    (tmp_path / "data.yaml").write_text(yaml.safe_dump({"names": {0: "a", 1: "b"}}))
    assert class_names(tmp_path) == ["a", "b"]
