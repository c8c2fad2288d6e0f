"""Transformers video classification in the real env: videos written with PyAV (a coloured square moving left,
moving right or standing still; mp4, avi and mkv), a tiny VideoMAE (4 frames of 32 px, tubelets of 2) saved to
a folder, trained 2 epochs as a bare child, resumed, predicted with from a video file, evaluated, reloaded by
plain transformers; the dataset checks that decode (PyAV: headers at submit, every frame in `datasets check`).

Training runs the real entrypoint in a child of its own; the rest shares one child (``one_process``), which
calls what the command line calls, so torch, transformers and PyAV are imported once."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.hf_models import BUILD_EACH, TINY_VIDEOMAE, VIDEO_FOLDER

CLASSES = ["left", "right", "still"]


@pytest.fixture(scope="module")
def trained(hf_script, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfvideo")
    hf_script(BUILD_EACH, json.dumps([[TINY_VIDEOMAE, str(root / "videomae")], [VIDEO_FOLDER, str(root / "data")]]))
    job = hf_job.write(root / "job", "video_classification", root / "videomae", root / "data", "video_folder",
                       epochs=2)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "job": job}


#: ``CHECKS ROOT``: the dataset layer with PyAV: a broken mp4 (a container header, then zeros) read as a training
#: child reads (no decoding), as a submit reads (headers of a sample) and as `datasets check` does (every frame);
#: and the frames a clip samples.
CHECKS = """
import json, shutil, sys
from pathlib import Path
import numpy as np
from adapters.datasets import inspect_dataset
from adapters.datasets.video_folder import read_clip, video_info
root = Path(sys.argv[1])
data = root / "checked"
shutil.copytree(root / "data", data)
broken = data / "train" / "left" / "broken.mp4"
broken.write_bytes((data / "train" / "left" / "left0.mp4").read_bytes()[:32] + bytes(2000))  # a header, then zeros
out = {}
for decode in ("none", "sample", "all"):
    dataset, problems = inspect_dataset(data, "video_folder", "video_classification", decode=decode)
    out[decode] = {"errors": [[p.kind, Path(p.file).name] for p in problems.errors],
                   "sizes": sorted({(r.width, r.height) for r in dataset.train + dataset.val}, key=str)}
frames = read_clip(root / "data" / "val" / "right" / "right0.mp4", 4)
out["frames"] = [len(frames), list(frames[0].shape), str(frames[0].dtype)]
out["moves"] = [int(np.argmax(f[15].sum(-1) > 200)) for f in frames]  # the square's left edge, frame by frame
out["info"] = video_info(root / "data" / "val" / "right" / "right0.mp4", decode_all=True)
print(json.dumps(out))
"""

#: ``PLAIN_LOAD CHECKPOINT VIDEO``: the checkpoint in plain transformers: its labels, processor, and its logits for
#: the video's clip (4 frames sampled as training samples a validation clip).
PLAIN_LOAD = """
import json, sys
import torch
from transformers import AutoImageProcessor, AutoModelForVideoClassification
from adapters.datasets.video_folder import read_clip
model = AutoModelForVideoClassification.from_pretrained(sys.argv[1]).eval()
processor = AutoImageProcessor.from_pretrained(sys.argv[1])
with torch.no_grad():
    probs = model(**processor(read_clip(sys.argv[2], model.config.num_frames), return_tensors="pt")).logits.softmax(-1)
print(json.dumps({"labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
                  "processor": type(processor).__name__, "probs": probs[0].tolist()}))
"""


#: ``SERVE JOB CHECKPOINT VIDEO VIDEO2 NOT_A_VIDEO``: a warm predict worker's answer to one request of two videos (a
#: batch), a file that is no video and an image; then to the first video under a pixel limit below its frames'.
SERVE = """
import json, sys
from PIL import Image
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
from adapters.serve import answer
adapter = build_adapter(Job.from_file(sys.argv[1]), Reporter(None))
adapter.load_checkpoint(sys.argv[2])
image = sys.argv[5] + ".png"
Image.new("RGB", (32, 32), "red").save(image)
items = [{"image": path, "top_k": 3} for path in (*sys.argv[3:6], image)]
answers = answer(adapter, "video_classification", items, 40_000_000, 1.0)
print(json.dumps(answers + answer(adapter, "video_classification", items[:1], 32 * 31, 1.0)))
"""


#: ``FRAME_CAP ROOT``: videos of many tiny black frames (16 px), one past predict's frame limit and at it, as
#: Matroska (which states no frame count: its packets are counted) and MP4 (which states it), through the worker's
#: checks (``adapters.serve.answer``: refused before any model sees them) and ``video_problem``, timed.
FRAME_CAP = """
import json, sys, time
from pathlib import Path
import av, numpy as np
from adapters.datasets.video_folder import MAX_PREDICT_FRAMES, video_problem
from adapters.serve import answer
root = Path(sys.argv[1])
def write(path, frames):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 100000
        black = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for _ in range(frames):
            for packet in stream.encode(black):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)
out = {"limit": MAX_PREDICT_FRAMES}
for suffix in ("mkv", "mp4"):
    over, at = write(root / f"over.{suffix}", MAX_PREDICT_FRAMES + 1), write(root / f"at.{suffix}", MAX_PREDICT_FRAMES)
    started = time.perf_counter()
    out[suffix] = {"over": answer(None, "video_classification", [{"image": over, "top_k": 1}], 10**8, 1.0)[0],
                   "at": video_problem(at, 10**8), "seconds": time.perf_counter() - started,
                   "bytes": Path(over).stat().st_size}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def one_process(trained, hf_python, child_env, reporter_server, in_one_process):
    root, job = trained["root"], str(trained["job"])
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")  # each test says what failed
    video = str(root / "data" / "val" / "right" / "right1.avi")
    resumed = json.loads(trained["job"].read_text())
    resumed.update(job_dir=str(root / "resumed"), checkpoint_dir=str(root / "resumed" / "checkpoints"))
    resumed["spec"].update(resume=last, training={**resumed["spec"]["training"], "epochs": 3})
    (root / "resumed").mkdir()
    (root / "resumed" / "job.json").write_text(json.dumps(resumed))
    with reporter_server() as server:
        reporting = {k: v for k, v in child_env(server.address).items() if k.startswith("VISIONYARD_")}
        steps = {
            "predict": {"argv": ["--spec", job, "--predict", video, "--checkpoint", last, "--top-k", "2"]},
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last, video]},
            "serve": {"script": SERVE, "argv": [job, last, video, str(root / "data" / "val" / "left" / "left0.mp4"),
                                                job]},
            "eval": {"argv": ["--spec", job, "--eval", "--checkpoint", last, "--out", str(root / "eval")]},
            "checks": {"script": CHECKS, "argv": [str(root)]},
            "frame cap": {"script": FRAME_CAP, "argv": [str(root)]},
            "resume": {"argv": ["--spec", str(root / "resumed" / "job.json")], "env": reporting},
        }
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "resumed": server, "root": root, "last": last}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_trains_reports_accuracy_and_records_each_validation(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(m.values)
        assert "val/top5" not in m.values  # 3 classes: top-5 is from 5 on
    result = server.of_kind("result")[0]
    folder = trained["root"] / "job" / "checkpoints" / "checkpoint-6"  # 9 videos, 4 a batch: 3 steps an epoch
    assert result.last_checkpoint == str(folder) and (folder / "preprocessor_config.json").is_file()
    index = json.loads((trained["root"] / "job" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(1, 3), (2, 6)]
    for entry in index:
        record = json.loads((trained["root"] / "job" / "results" / "val" / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"]) == ("video_classification",
                                                                            "visionyard.classification", CLASSES)
        matrix = np.array(record["confusion_matrix"])
        assert matrix.shape == (3, 3) and matrix.sum(1).tolist() == [2, 2, 2]  # every val video once
        assert np.trace(matrix) / 6 == pytest.approx(entry["metrics"]["val/accuracy"])
        assert [row["class"] for row in record["per_class"]] == CLASSES
    assert "\r" not in done.stdout + done.stderr


def test_resume_continues_at_the_next_epoch(one_process):
    finished(one_process["out"]["resume"])
    assert [m.step for m in one_process["resumed"].of_kind("metrics")] == [3]
    assert one_process["resumed"].of_kind("result")[0].last_checkpoint.endswith("checkpoint-9")
    index = json.loads((one_process["root"] / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(3, 9)]


def test_predict_takes_a_video_file_and_gives_the_top_k(one_process):
    response = finished(one_process["out"]["predict"])["json"]
    assert response["task"] == "video_classification" and (response["width"], response["height"]) == (32, 32)
    assert len(response["predictions"]) == 2 and {p["label"] for p in response["predictions"]} <= set(CLASSES)
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded["labels"] == CLASSES and loaded["processor"] == "VideoMAEImageProcessor"
    best = max(range(3), key=lambda i: loaded["probs"][i])  # plain transformers on the same clip agrees
    assert response["predictions"][0]["label"] == CLASSES[best]
    assert response["predictions"][0]["score"] == pytest.approx(loaded["probs"][best], abs=1e-5)


def test_a_warm_worker_answers_videos(one_process):
    """Two videos in one request go through the model as one batch; each gets what predicting it alone gives."""
    first, second, refused, image, too_large = finished(one_process["out"]["serve"])["json"]
    alone = finished(one_process["out"]["predict"])["json"]["predictions"]
    assert first["result"]["predictions"][:2] == [{**p, "score": pytest.approx(p["score"], abs=1e-5)} for p in alone]
    assert len(second["result"]["predictions"]) == 3 and second["result"]["task"] == "video_classification"
    assert "is not a video file (its first bytes are no MP4/QuickTime, AVI or Matroska/WebM header)" in refused["error"]
    assert "is an image; a video classification model predicts from a video file" in image["error"]
    assert "has frames of 32×32" in too_large["error"] and "predict takes at most" in too_large["error"]


def test_eval_scores_the_checkpoint_on_the_val_videos(one_process):
    finished(one_process["out"]["eval"])
    record = json.loads((one_process["root"] / "eval" / "eval.json").read_text())
    assert (record["source"], record["task"], record["images"], record["classes"]) == ("eval", "video_classification",
                                                                                       6, CLASSES)
    assert 0 <= record["metrics"]["val/accuracy"] <= 1 and np.array(record["confusion_matrix"]).sum() == 6


def test_dataset_checks_decode_with_pyav(one_process):
    """A submit opens the headers of a sample (the broken mp4 has none that reads); `datasets check` decodes every
    frame; a plain read decodes nothing. Clips: 4 frames sampled over 8, the square moving right."""
    out = finished(one_process["out"]["checks"])["json"]
    assert out["none"]["errors"] == []
    assert ["unreadable-video", "broken.mp4"] in out["sample"]["errors"]
    assert ["unreadable-video", "broken.mp4"] in out["all"]["errors"]
    assert out["none"]["sizes"] == [[None, None]] and [32, 32] in out["all"]["sizes"]  # headers read: their size
    assert out["frames"] == [4, [32, 32, 3], "uint8"]
    assert out["moves"] == [6, 10, 14, 18]  # frames 1, 3, 5, 7 of 8 (segment middles): x = 12 + 2 (i - 4)
    assert out["info"] == [32, 32, 8]


def test_a_video_of_more_frames_than_predict_reads_is_refused_before_decoding(one_process):
    """A small file of many tiny frames would be decoded to its end by a clip's sampling: the worker counts its
    packets (Matroska) or reads the container's count (MP4), stops one past the limit and refuses it, naming it."""
    out = finished(one_process["out"]["frame cap"])["json"]
    for suffix in ("mkv", "mp4"):
        found = out[suffix]
        assert found["bytes"] < 1_000_000 and found["at"] is None
        assert f"has more than {out['limit']:,} frames; predict reads videos of up to {out['limit']:,} frames" in (
            found["over"]["error"])
        assert found["seconds"] < 5
