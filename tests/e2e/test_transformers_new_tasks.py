"""Real daemon, real Transformers env: depth estimation, zero-shot classification, open-vocabulary detection,
image captioning, visual question answering and video classification, each a job of a tiny model built from a
config, as a user runs it: submitted with the Python client (no ``image_size``: each model keeps its own), trained,
its metrics reported, predicted with through the daemon's warm worker (a depth map, labels given at predict time,
boxes with the phrase found, a caption, an answer to a question, a whole video's top-k classes, also through
``visionyard predict``), a video job evaluated, and a zero-shot job resumed from its checkpoint. A ViT classifier
trained without ``image_size`` predicts at its own 32 px, not at the size the daemon fills into the spec.

One child builds every model (transformers imported once) and the jobs run two at a time, submitted together."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.cli import main
from runner.client import ClientError
from tests.e2e.test_transformers_jobs import VIT
from tests.fixtures import make_imagefolder
from tests.helpers import start_daemon

pytestmark = pytest.mark.e2e

TRAINING = {"epochs": 1, "batch_size": 4, "learning_rate": 0.001, "device": "cpu", "seed": 0}
VIDEO_CLASSES = ["left", "right", "still"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, shared_envs, transformers_env):
    proc = start_daemon(tmp_path_factory.mktemp("home"), shared_envs, ["--max-concurrent-jobs", "2"])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def built(transformers_env, tmp_path_factory) -> Path:
    """The tiny models of every test here and the video dataset (PyAV writes it), made by one child:
    ``depth/dpt``, ``zero_shot/clip``, ``zsd/grounding_dino``, ``captioning/git``, ``vqa/vilt``, ``videomae``,
    ``videos`` and ``vit`` (a ViT classifier at 32 px)."""
    from tests.hf_models import (BUILD_EACH, DEPTH_MODELS, TINY_CAPTIONERS, TINY_VIDEOMAE, TINY_VQA, TINY_ZERO_SHOT,
                                 VIDEO_FOLDER, ZERO_SHOT_DETECTION_MODELS)

    root = tmp_path_factory.mktemp("built")
    scripts = {"depth": DEPTH_MODELS, "zero_shot": TINY_ZERO_SHOT, "zsd": ZERO_SHOT_DETECTION_MODELS,
               "captioning": TINY_CAPTIONERS, "vqa": TINY_VQA, "videomae": TINY_VIDEOMAE, "videos": VIDEO_FOLDER,
               "vit": VIT}
    subprocess.run([str(transformers_env.python), "-c", BUILD_EACH,
                    json.dumps([[textwrap.dedent(script), str(root / name)] for name, script in scripts.items()])],
                   check=True, capture_output=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    return root


@pytest.fixture(scope="module")
def jobs(daemon, built, tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """Every job of the module, submitted at once (the zero-shot one first: it is resumed): task → (job id,
    its dataset)."""
    from tests.dataset_fixtures import make_captions_dataset, make_coco_shapes, make_depth_dataset, make_vqa_dataset

    root = tmp_path_factory.mktemp("data")
    datasets = {
        "zero_shot_classification": (built / "zero_shot" / "clip", make_imagefolder(root / "colours", 2, 1),
                                     "imagefolder"),
        "video_classification": (built / "videomae", built / "videos", "video_folder"),
        "depth_estimation": (built / "depth" / "dpt", make_depth_dataset(root / "depth", train=4, val=2), "depth"),
        "visual_qa": (built / "vqa" / "vilt", make_vqa_dataset(root / "vqa"), "vqa"),
        "image_captioning": (built / "captioning" / "git", make_captions_dataset(root / "captions"), "captions"),
        "zero_shot_detection": (built / "zsd" / "grounding_dino", make_coco_shapes(root / "shapes", 4, 2), "coco"),
        "image_classification": (built / "vit", make_imagefolder(root / "vit-colours", 2, 1), "imagefolder"),
    }
    submitted = {}
    for task, (model, data, fmt) in datasets.items():
        job = daemon.client.submit({"name": task, "framework": "transformers", "task": task, "model": str(model),
                                    "pretrained": True, "dataset": {"path": str(data), "format": fmt},
                                    "training": TRAINING})
        submitted[task] = (job.id, data)
    return submitted


def finished(daemon, jobs, task: str, metrics: set[str]) -> pb.Job:
    """The task's job, waited for: succeeded, its last epoch's metrics ``metrics`` and the losses."""
    final = daemon.client.wait(jobs[task][0])
    assert final.state == pb.SUCCEEDED, f"{final.error}\n{(Path(final.job_dir) / 'output.log').read_text()[-3000:]}"
    assert metrics | {"train/loss", "val/loss"} <= set(final.metrics), sorted(final.metrics)
    assert Path(final.best_checkpoint, "config.json").is_file()
    return final


def test_zero_shot_classification_reports_its_baseline_and_ranks_the_labels_given(daemon, jobs):
    final = finished(daemon, jobs, "zero_shot_classification", {"val/accuracy", "val/f1"})
    assert [e.epoch for e in final.history] == [0, 1]  # epoch 0: the zero-shot baseline
    red = jobs["zero_shot_classification"][1] / "val" / "red" / "red_0.png"
    response = daemon.client.predict(final.id, red, top_k=2, labels=["red", "cat", "dog"])
    assert response.task == "zero_shot_classification" and len(response.predictions) == 2
    assert {p.label for p in response.predictions} <= {"red", "cat", "dog"}
    jobs["resumed"] = (daemon.client.submit({  # resumed from its checkpoint, checked last
        "name": "resumed", "framework": "transformers", "task": "zero_shot_classification",
        "model": final.spec.model, "pretrained": True, "resume": final.last_checkpoint,
        "dataset": {"path": str(jobs["zero_shot_classification"][1]), "format": "imagefolder"},
        "training": {**TRAINING, "epochs": 2}}).id, None)


def test_video_classification_predicts_a_whole_video_and_is_evaluated(daemon, jobs, capsys):
    final = finished(daemon, jobs, "video_classification", {"val/accuracy"})
    video = jobs["video_classification"][1] / "val" / "right" / "right1.avi"
    response = daemon.client.predict(final.id, video, top_k=2)
    assert response.task == "video_classification" and (response.width, response.height) == (32, 32)
    assert len(response.predictions) == 2 and {p.label for p in response.predictions} <= set(VIDEO_CLASSES)
    capsys.readouterr()
    assert main(["predict", final.id, str(video), "--top-k", "3", "--json", "--address", daemon.address]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [p["label"] for p in shown["predictions"]][:2] == [p.label for p in response.predictions]
    folder = jobs["video_classification"][1] / "val" / "left"
    assert main(["predict", final.id, str(folder), "--json", "--address", daemon.address]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [Path(line["file"]).name for line in lines] == ["left0.mp4", "left1.avi"]  # one answer per video
    with pytest.raises(ClientError, match="predicts from a video file, not an image"):
        daemon.client.predict(final.id, jobs["zero_shot_classification"][1] / "val" / "red" / "red_0.png")
    with pytest.raises(ClientError, match="cannot be read as a video") as refused:  # a container's header, then zeros
        daemon.client.predict(final.id, video.read_bytes()[:32] + bytes(4000))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    evaluation = daemon.client.evaluate(final.id)
    assert evaluation.images == 6 and evaluation.result.task == "video_classification"
    assert 0 <= evaluation.result.metrics["val/accuracy"] <= 1


def test_depth_estimation_predicts_a_16_bit_depth_map_at_the_images_size(daemon, jobs):
    from PIL import Image

    final = finished(daemon, jobs, "depth_estimation", {"val/abs_rel", "val/rmse", "val/delta1"})
    response = daemon.client.predict(final.id, jobs["depth_estimation"][1] / "val" / "images" / "0.png")
    assert response.task == "depth_estimation" and (response.width, response.height) == (40, 32)
    depth = Image.open(io.BytesIO(response.depth_png))
    assert depth.size == (40, 32) and depth.mode.startswith("I")  # 16-bit, millimetres


def test_visual_qa_answers_the_question_asked(daemon, jobs):
    final = finished(daemon, jobs, "visual_qa", {"val/vqa_accuracy"})
    image = jobs["visual_qa"][1] / "val" / "images" / "0.png"
    response = daemon.client.predict(final.id, image, question="What colour is it?")
    assert response.task == "visual_qa" and response.text in {"no", "yes", "blue", "green", "red", "white"}


def test_image_captioning_predicts_a_caption(daemon, jobs):
    final = finished(daemon, jobs, "image_captioning", {"val/cider", "val/bleu4"})
    response = daemon.client.predict(final.id, jobs["image_captioning"][1] / "val" / "images" / "0.png")
    assert response.task == "image_captioning" and isinstance(response.text, str)
    words = response.text.replace(".", " ").replace(",", " ").split()
    assert set(words) <= set("a an the red green blue square circle shape that is on white of with".split())


def test_zero_shot_detection_finds_boxes_for_the_phrases_given(daemon, jobs):
    final = finished(daemon, jobs, "zero_shot_detection", {"val/mAP50-95", "val/mAP50"})
    assert [e.epoch for e in final.history] == [0, 1]  # epoch 0: the zero-shot evaluation
    image = jobs["zero_shot_detection"][1] / "val" / "0.png"
    response = daemon.client.predict(final.id, image, labels=["car", "bike", "dog"], top_k=100)
    assert response.task == "zero_shot_detection" and (response.width, response.height) == (64, 64)
    assert all(p.HasField("box") and p.label in {"car", "bike", "dog"} for p in response.predictions)


def test_a_model_trained_without_image_size_predicts_at_its_own_size(daemon, jobs):
    """The ViT takes 32 px only; the spec's default size (224) would make its processor's images too large."""
    final = finished(daemon, jobs, "image_classification", {"val/accuracy"})
    assert final.spec.image_size == 224  # what the daemon filled in
    response = daemon.client.predict(final.id, jobs["image_classification"][1] / "val" / "red" / "red_0.png")
    assert response.task == "image_classification" and response.predictions


def test_a_zero_shot_job_resumes_from_its_checkpoint_at_the_next_epoch(daemon, jobs):
    job_id, _ = jobs["resumed"]
    resumed = daemon.client.wait(job_id)
    assert resumed.state == pb.SUCCEEDED, resumed.error
    assert [e.epoch for e in resumed.history] == [2] and "val/accuracy" in resumed.metrics
