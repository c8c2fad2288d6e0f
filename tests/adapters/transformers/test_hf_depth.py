"""Transformers depth estimation in the real env: a tiny DPT saved to a folder, trained on synthetic scenes with
the task's SiLog loss (DPT has none), scored each epoch (AbsRel, RMSE, δ1) with a validation record, resumed,
predicted with (a 16-bit depth PNG at the image's size), reloaded by plain transformers; a tiny GLPN and a tiny
relative Depth Anything train too (the latter switched to metric depth). The metrics on hand-made cases are host
tests (``tests/adapters/evaluation/test_eval_depth.py``).

Training runs the real entrypoint in a child of its own; the short runs share one child (``one_process``), which
calls what the command line calls, so torch and transformers are imported once."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from adapters.transformers.catalog import DEPTH, MODELS, TASKS, check_model
from tests.adapters.transformers.common import EVALUATION_TRAINER
from tests.dataset_fixtures import DEPTH_IMAGE_SIZE, make_depth_dataset

DEPTH_METRICS = {"val/abs_rel", "val/rmse", "val/delta1"}


@pytest.fixture(scope="module")
def depth_models(hf_script, tmp_path_factory):
    """``dpt``, ``glpn`` and ``depth_anything`` folders saved by ``save_pretrained`` (``tests.hf_models.DEPTH_MODELS``)."""
    from tests.hf_models import DEPTH_MODELS

    root = tmp_path_factory.mktemp("tiny-depth-models")
    hf_script(DEPTH_MODELS, root)
    return {name: root / name for name in ("dpt", "glpn", "depth_anything")}


@pytest.fixture(scope="module")
def trained(depth_models, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    """The tiny DPT trained 2 epochs as a bare child; no ``image_size``: the processor's own 32 px."""
    root = tmp_path_factory.mktemp("hfdepth")
    dataset = make_depth_dataset(root / "data")
    job = hf_job.write(root / "job", "depth_estimation", depth_models["dpt"], dataset, "depth", epochs=2,
                       image_size=None)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset, "job": job, "models": depth_models}


#: ``PLAIN_LOAD DPT_CHECKPOINT ANYTHING_CHECKPOINT``: both checkpoints in plain transformers, one forward pass each.
PLAIN_LOAD = """
import json, sys, torch
from transformers import AutoImageProcessor, AutoModelForDepthEstimation
out = {}
for name, folder in (("dpt", sys.argv[1]), ("depth_anything", sys.argv[2])):
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    processor = AutoImageProcessor.from_pretrained(folder)
    with torch.no_grad():
        depth = model(**processor(images=torch.zeros(3, 32, 40), return_tensors="pt")).predicted_depth
    out[name] = {"class": type(model).__name__, "kind": getattr(model.config, "depth_estimation_type", None),
                 "max_depth": getattr(model.config, "max_depth", None), "size": dict(processor.size),
                 "keep_aspect_ratio": getattr(processor, "keep_aspect_ratio", None), "finite": bool(depth.isfinite().all())}
print(json.dumps(out))
"""

#: ``BATCHES JOB GLPN_CHECKPOINT ANYTHING_FOLDER IMAGE...``: per model, each image predicted in one batch and alone
#: (the depth PNGs' largest difference, in mm) and the batch's ``depth`` summaries; the Depth Anything folder is
#: the untrained, relative one.
BATCHES = """
import io, json, sys
import numpy as np
from PIL import Image
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
out = {}
for name, folder in (("glpn", sys.argv[2]), ("relative", sys.argv[3])):
    adapter = build_adapter(Job.from_file(sys.argv[1]), Reporter(None))
    adapter.load_checkpoint(folder)
    batch, alone = adapter.predict_batch(sys.argv[4:]), [adapter.predict(image) for image in sys.argv[4:]]
    maps = lambda results: [np.asarray(Image.open(io.BytesIO(r["depth_png"])), dtype=np.int64) for r in results]
    out[name] = {"difference": max(int(np.abs(a - b).max()) for a, b in zip(maps(batch), maps(alone))),
                 "shapes": [list(m.shape) for m in maps(batch)], "depth": [r["depth"] for r in batch]}
print(json.dumps(out))
"""

#: SiLog, the padded batches and the colour map on known cases, printed as JSON.
KNOWN_CASES = """
import json, math, types, torch
from transformers.models.glpn.modeling_glpn import SiLogLoss
from adapters.transformers.tasks.depth import DepthTask, at_sizes, depth_result, silog_loss, turbo
truth = torch.tensor([[1.0, 2.0], [4.0, 0.0]])
torch.manual_seed(0)
target, predicted = torch.rand(2, 8, 8) + 0.5, torch.rand(2, 8, 8) + 0.5
fresh = torch.full((1, 2, 2), 1e-6, requires_grad=True)  # a fresh DPT's tiny ReLU output: still a gradient
silog_loss(fresh, truth[None]).backward()
task = DepthTask(types.SimpleNamespace(spec=None))
batch = task.collate([{"pixel_values": torch.zeros(3, 4, 4), "labels": torch.ones(2, 3), "depth_size": torch.tensor([2, 3])},
                      {"pixel_values": torch.zeros(3, 4, 4), "labels": torch.ones(3, 2), "depth_size": torch.tensor([3, 2])}])
placed = at_sizes(torch.full((2, 4, 4), 7.0), batch["depth_size"], batch["labels"].shape[-2:])
print(json.dumps({
    "double": float(silog_loss(2 * truth[None], truth[None])),
    "perfect": float(silog_loss(truth[None], truth[None])),
    "glpn": [float(silog_loss(predicted, target, 0.5)), float(SiLogLoss(0.5)(predicted, target))],
    "lambda": [float(silog_loss(predicted, target)), float(SiLogLoss(0.85)(predicted, target))],
    "no valid pixel": float(silog_loss(predicted, torch.zeros_like(target))),
    "fresh gradient": float(fresh.grad.abs().sum()),
    "labels": batch["labels"].tolist(), "placed": placed.tolist(),
    "turbo": turbo(torch.tensor([[0.0, 0.5, 1.0]]).numpy()).tolist(),
    "metric": depth_result(torch.tensor([[0.0004, 1.5], [70.0, 2.0]]).numpy(), "metric")["depth"],
}))
"""

#: The depth, in metres, that ``CONSTANT`` makes the DPT predict everywhere.
CONSTANT_M = 2.5

#: ``CONSTANT JOB DPT_FOLDER OUT``: the DPT made to predict ``CONSTANT_M`` everywhere (its head's last convolution
#: without weights, its bias the depth, through the head's closing ReLU), saved to ``OUT`` (the job's model), then
#: evaluated as an epoch is: the Trainer's metrics.
CONSTANT = EVALUATION_TRAINER + f"""
import json, sys
import torch
from transformers import AutoImageProcessor, DPTForDepthEstimation
model = DPTForDepthEstimation.from_pretrained(sys.argv[2])
with torch.no_grad():
    model.head.head[4].weight.zero_()
    model.head.head[4].bias.fill_({CONSTANT_M})
model.save_pretrained(sys.argv[3])
AutoImageProcessor.from_pretrained(sys.argv[2]).save_pretrained(sys.argv[3])
adapter, trainer = evaluation_trainer(sys.argv[1])
print(json.dumps(trainer.evaluate()))
"""


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process):
    """The short runs, in one child process (``in_one_process``), each through the function its command line calls
    (``adapters.entrypoint.main``) or a script: resume to epoch 3, a tiny GLPN and a tiny relative Depth Anything
    trained (each reporting to its own server), a predict, both checkpoints in plain transformers, batches against
    single images, the known cases, a DPT of constant depth evaluated as an epoch is."""
    root, models = trained["root"], trained["models"]
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")  # each test fails alone
    Image.open(trained["dataset"] / "val" / "images" / "0.png").resize((50, 20)).save(root / "wide.png")
    images = [str(trained["dataset"] / "val" / "images" / "0.png"), str(root / "wide.png")]
    jobs = {
        "resume": hf_job.write(root / "resumed", "depth_estimation", models["dpt"], trained["dataset"], "depth",
                               epochs=3, image_size=None, resume=last),
        "glpn": hf_job.write(root / "glpn", "depth_estimation", models["glpn"], trained["dataset"], "depth", epochs=1,
                             image_size=None),
        "depth anything": hf_job.write(root / "anything", "depth_estimation", models["depth_anything"],
                                       trained["dataset"], "depth", epochs=1, image_size=None),
    }
    constant = hf_job.write(root / "constant", "depth_estimation", root / "constant-dpt", trained["dataset"], "depth",
                            image_size=None)
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(reporter_server()) for name in jobs}
        steps = {name: {"argv": ["--spec", str(job)], "env": {
                     k: v for k, v in child_env(servers[name].address).items() if k.startswith("VISIONYARD_")}}
                 for name, job in jobs.items()}
        anything = root / "anything" / "checkpoints" / "checkpoint-2"
        steps.update({
            "predict": {"argv": ["--spec", str(trained["job"]), "--checkpoint", last, "--predict", images[1]]},
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last, str(anything)]},
            "batches": {"script": BATCHES, "argv": [str(jobs["glpn"]), str(root / "glpn" / "checkpoints" / "checkpoint-2"),
                                                    str(models["depth_anything"]), *images]},
            "known cases": {"script": KNOWN_CASES},
            "constant": {"script": CONSTANT, "argv": [str(constant), str(models["dpt"]), str(root / "constant-dpt")]},
        })
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "servers": servers}


def finished(step: dict) -> dict:
    """A step of ``one_process`` that ran to its end, exit code 0."""
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_trains_with_silog_reports_depth_metrics_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m.values) - {"model/parameters"} == {"train/loss", "val/loss", "lr", "train/images_per_s",
                                                        *DEPTH_METRICS}
        assert 0 < m.values["train/loss"] < 10 and 0 < m.values["val/loss"] < 10  # SiLog on log-depths
        assert m.values["val/abs_rel"] >= 0 and m.values["val/rmse"] > 0 and 0 <= m.values["val/delta1"] <= 1
    assert metrics[1].values["train/loss"] < metrics[0].values["train/loss"]  # it learns
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    last = server.of_kind("result")[0].last_checkpoint
    assert last.endswith("checkpoint-4")  # 8 train images / 4 per batch, 2 epochs
    folder = trained["root"] / "job" / "checkpoints" / "checkpoint-4"
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["DPTForDepthEstimation"] and config["depth_estimation_type"] == "metric"
    # no image_size in the spec: the processor's own 32 px (not the spec default's 224), saved with the checkpoint
    assert json.loads((folder / "preprocessor_config.json").read_text())["size"] == {"height": 32, "width": 32}
    assert "\r" not in done.stdout + done.stderr


def test_each_evaluation_records_every_image_worst_first(trained):
    """``results/val/``: a record per epoch with each val image's AbsRel, RMSE, δ1 and valid pixels, the highest
    AbsRel first; its metrics are what the epoch reported, the means over the images (per-image averaging)."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    reported = {m.step: dict(m.values) for m in trained["server"].of_kind("metrics")}
    results = trained["root"] / "job" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, 2, "epoch-0001.json"), (2, 4, "epoch-0002.json")]
    width, height = DEPTH_IMAGE_SIZE
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"], record["per_class"]) == (
            "depth_estimation", "visionyard.depth", [], [])
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        rows = record["per_image"]
        assert sorted(row["image"] for row in rows) == [f"val/images/{i}.png" for i in range(4)]
        assert [row["abs_rel"] for row in rows] == sorted((row["abs_rel"] for row in rows), reverse=True)
        assert {row["pixels"] for row in rows} == {width * height - 9}  # scored at the map's own size, less 3x3 zeros
        for name in DEPTH_METRICS:
            key = name.removeprefix("val/")
            assert record["metrics"][name] == pytest.approx(sum(row[key] for row in rows) / 4)


def test_resume_continues_at_the_next_epoch(one_process):
    finished(one_process["out"]["resume"])
    server = one_process["servers"]["resume"]
    assert [m.step for m in server.of_kind("metrics")] == [3]
    assert DEPTH_METRICS <= set(server.of_kind("metrics")[0].values)
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-6")


def test_an_evaluation_scores_the_models_own_depth(one_process, trained):
    """A DPT that predicts 2.5 m everywhere scores, in an epoch's evaluation, what 2.5 m scores against each val depth
    map: the metrics are those of the model's predictions (all zeros, or another model's, would score otherwise)."""
    metrics = finished(one_process["out"]["constant"])["json"]
    errors = []
    for path in sorted((trained["dataset"] / "val" / "depth").glob("*.npy")):
        truth = np.load(path).astype(np.float64)
        truth = truth[np.isfinite(truth) & (truth > 0)]
        errors.append((np.mean(np.abs(CONSTANT_M - truth) / truth), np.sqrt(np.mean((CONSTANT_M - truth) ** 2)),
                       np.mean(np.maximum(CONSTANT_M / truth, truth / CONSTANT_M) < 1.25)))
    assert len(errors) == 4
    expected = dict(zip(("eval_abs_rel", "eval_rmse", "eval_delta1"), np.mean(errors, axis=0), strict=True))
    assert {name: metrics[name] for name in expected} == pytest.approx(expected, rel=1e-5)
    assert 0 < expected["eval_delta1"] < 1  # a depth some pixels are near and others are not


@pytest.mark.parametrize("name", ["glpn", "depth anything"])
def test_glpn_and_a_relative_depth_anything_train_to_metric_depth(one_process, name):
    finished(one_process["out"][name])
    [metrics] = one_process["servers"][name].of_kind("metrics")
    assert DEPTH_METRICS <= set(metrics.values) and all(math.isfinite(v) for v in metrics.values.values())
    if name == "depth anything":  # the relative head became a metric one: 1.25 x the deepest depth (4 m)
        assert "predicts relative depth: trained as metric depth up to 5 m" in one_process["out"][name]["stderr"]


def test_predict_returns_a_16_bit_depth_png_of_the_image_size_and_a_preview(one_process):
    response = finished(one_process["out"]["predict"])["json"]
    assert response["task"] == "depth_estimation" and response["predictions"] == []
    assert (response["width"], response["height"]) == (50, 20)
    depth = Image.open(io.BytesIO(base64.b64decode(response["depth_png_b64"])))
    assert depth.mode == "I;16" and depth.size == (50, 20)
    millimetres = np.asarray(depth)
    assert millimetres.min() >= 1  # 0 would mean "no measurement"
    preview = Image.open(io.BytesIO(base64.b64decode(response["image_png_b64"])))
    assert preview.mode == "RGB" and preview.size == (50, 20)
    summary = response["depth"]
    assert summary["kind"] == "metric" and summary["unit"] == "m"
    assert summary["min"] <= summary["median"] <= summary["max"]
    assert summary["max"] == pytest.approx(millimetres.max() / 1000, abs=1e-3)


def test_the_checkpoints_load_in_plain_transformers(one_process):
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded["dpt"] == {"class": "DPTForDepthEstimation", "kind": "metric", "max_depth": None,
                             "size": {"height": 32, "width": 32}, "keep_aspect_ratio": False, "finite": True}
    assert loaded["depth_anything"] == {"class": "DepthAnythingForDepthEstimation", "kind": "metric", "max_depth": 5,
                                        "size": {"height": 28, "width": 28}, "keep_aspect_ratio": False,
                                        "finite": True}


def test_a_batch_predicts_what_each_image_alone_does_and_relative_models_say_so(one_process):
    batches = finished(one_process["out"]["batches"])["json"]
    for name in ("glpn", "relative"):
        assert batches[name]["difference"] <= 1, name  # a millimetre of float rounding at most
        assert batches[name]["shapes"] == [[32, 40], [20, 50]]
    assert {d["kind"] for d in batches["glpn"]["depth"]} == {"metric"}
    assert {(d["kind"], d["unit"]) for d in batches["relative"]["depth"]} == {
        ("relative", "relative inverse depth (larger = nearer)")}


def test_silog_padding_and_the_colour_map_on_known_cases(one_process):
    """SiLog = sqrt(mean(d²) − λ·mean(d)²), d = log g − log p: a prediction off by 2 everywhere gives
    sqrt(1 − 0.85)·log 2; with λ = 0.5 it is GLPN's own loss, and HF's SiLogLoss agrees at any λ."""
    results = finished(one_process["out"]["known cases"])["json"]
    assert results["double"] == pytest.approx(math.sqrt(0.15) * math.log(2), rel=1e-5)
    assert results["perfect"] == pytest.approx(0.0, abs=1e-5)
    assert results["glpn"][0] == pytest.approx(results["glpn"][1], rel=1e-5)
    assert results["lambda"][0] == pytest.approx(results["lambda"][1], rel=1e-5)
    assert results["no valid pixel"] == 0.0 and results["fresh gradient"] > 0
    assert results["labels"] == [[[1, 1, 1], [1, 1, 1], [0, 0, 0]], [[1, 1, 0], [1, 1, 0], [1, 1, 0]]]  # 0: padding
    assert results["placed"] == [[[7, 7, 7], [7, 7, 7], [0, 0, 0]], [[7, 7, 0], [7, 7, 0], [7, 7, 0]]]
    assert results["turbo"] == [[[35, 23, 27], [150, 250, 80], [144, 13, 0]]]  # near-black, green, dark red
    assert results["metric"] == {"kind": "metric", "unit": "m", "min": pytest.approx(0.0004), "max": 70.0,
                                 "median": pytest.approx(1.75)}


def test_the_catalog_lists_depth_models_that_all_train():
    assert DEPTH in TASKS
    depth = {m.name: m.tags for m in MODELS if DEPTH in m.tasks}
    assert {"Intel/dpt-large", "Intel/dpt-hybrid-midas", "LiheYoung/depth-anything-small-hf",
            "LiheYoung/depth-anything-base-hf", "depth-anything/Depth-Anything-V2-Small-hf",
            "depth-anything/Depth-Anything-V2-Base-hf", "vinvino02/glpn-nyu", "vinvino02/glpn-kitti"} <= set(depth)
    assert not any("predict-only" in tags for tags in depth.values())
    assert "relative-depth" in depth["Intel/dpt-large"] and "metric-depth" in depth["vinvino02/glpn-nyu"]


def test_a_folder_of_another_architecture_is_refused_for_depth(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    assert check_model(str(tmp_path), DEPTH) == (f"{tmp_path / 'config.json'} is a 'vit' model; depth_estimation "
                                                 "trains dpt, depth_anything, glpn")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glpn"}))
    assert check_model(str(tmp_path), DEPTH) is None
