"""Transformers super-resolution in the real env: a tiny Swin2SR saved to a folder, trained on L1 from
HR/LR_x2 pairs, predicted with (any input size), reloaded by plain transformers; a model/dataset
scale mismatch fails clearly; PSNR/SSIM and the padded batches on known cases; each evaluation's
validation record.

Training and one predict run the real entrypoint in a child of their own; the short runs share one child
(``one_process``), which calls what the command line calls, so torch and transformers are imported once."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.adapters.transformers.common import EVALUATION_TRAINER
from tests.dataset_fixtures import make_sr_pairs

#: Input sizes to predict: a window multiple and not (13 and 18 are not multiples of the window, 4).
SIZES = {"lr.png": (16, 16), "odd.png": (18, 13)}


@pytest.fixture(scope="module")
def trained(tiny_hf_models, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfsr")
    dataset = make_sr_pairs(root / "data")
    # image_size 8: training takes random 8x8 LR patches (16x16 HR) of the 16x16 LR images
    job = hf_job.write(root / "job", "super_resolution", tiny_hf_models["swin2sr"], dataset, "sr_pairs", epochs=2,
                       image_size=8)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset, "job": job,
            "model": tiny_hf_models["swin2sr"]}


#: ``PLAIN_LOAD CHECKPOINT``: the checkpoint in plain transformers, and one forward pass of an 8x8 image.
PLAIN_LOAD = """
import sys, torch
from transformers import AutoImageProcessor, AutoModelForImageToImage
model = AutoModelForImageToImage.from_pretrained(sys.argv[1])
processor = AutoImageProcessor.from_pretrained(sys.argv[1])
print(type(model).__name__, model.config.upscale, processor.do_pad,
      tuple(model(pixel_values=torch.zeros(1, 3, 8, 8)).reconstruction.shape))
"""

#: PSNR/SSIM and the padded batches on known cases, and torchmetrics against the numpy definitions, printed as JSON.
KNOWN_CASES = """
import json, types, torch
from adapters.evaluation.restoration import PSNR_CAP_DB, ImageQuality, image_quality, psnr, ssim
from adapters.transformers.tasks.super_resolution import SuperResolutionTask, masked_l1

def metrics(*pairs):
    m = ImageQuality()
    for predicted, target in pairs:
        m.update(predicted, target)
    return {name.removeprefix("val/"): value for name, value in m.metrics().items()}

torch.manual_seed(0)
image = torch.rand(1, 3, 32, 32)
grey = torch.full((1, 3, 32, 32), 0.5)
results = {
    "equal": metrics((image, image)),
    "offset": metrics((grey + 0.1, grey)),
    "mixed": metrics((image, image), (grey + 0.1, grey)),  # the mean over images: (100 + 20) / 2
    "clamped": metrics((image + 5.0, torch.ones(1, 3, 32, 32))),  # reconstructions are clamped to [0, 1]
    "cap": PSNR_CAP_DB,
}
differences = []  # torchmetrics (the route a torch batch takes) against the numpy definitions
for shape in ((2, 3, 32, 32), (1, 3, 17, 23), (1, 1, 12, 40)):
    target = torch.rand(shape)
    predicted = target + 0.1 * torch.randn(shape)
    peak, similarity = image_quality(predicted, target)
    pairs = list(zip(predicted.numpy(), target.numpy()))
    differences += [max(abs(a - psnr(p, t)) for a, (p, t) in zip(peak, pairs)),
                    max(abs(a - ssim(p, t)) for a, (p, t) in zip(similarity, pairs))]
results["torchmetrics vs numpy"] = max(differences)
task = SuperResolutionTask(types.SimpleNamespace(spec=None))
task.scale, task.window = 2, 4
small, large = torch.rand(3, 12, 16), torch.rand(3, 14, 22)
batch = task.collate([{"pixel_values": small[:, ::2, ::2], "labels": small},
                      {"pixel_values": large[:, ::2, ::2], "labels": large}])
results["batch"] = {k: list(v.shape) for k, v in batch.items()}
results["padding"] = float((batch["labels"] == -1).float().sum())
perfect = torch.where(batch["labels"] < 0, torch.rand_like(batch["labels"]), batch["labels"])
results["loss"] = float(masked_l1(perfect, batch["labels"]))
results["loss_off"] = float(masked_l1(batch["labels"].clamp(min=0) + 0.25, batch["labels"]))
evaluated = types.SimpleNamespace(predictions=perfect, label_ids=batch["labels"])
task.compute_metrics(evaluated, compute_result=False)
results["batches"] = task.compute_metrics(evaluated, compute_result=True)
results["per_image"] = task.take_evaluation().per_image  # no dataset here: images named by position
print(json.dumps(results))
"""

#: ``STOPPED_HALF_WAY JOB``: the job's model evaluated as an epoch is (two images a batch), then an evaluation stopped
#: at its second batch (the caller catches the error), then a whole one again: its metrics and the images it lists.
STOPPED_HALF_WAY = EVALUATION_TRAINER + """
import json, sys
from transformers import TrainerCallback


class StopAtTheSecondBatch(TrainerCallback):
    armed, batches = False, 0

    def on_prediction_step(self, args, state, control, **kwargs):  # after the batch's outputs, before its metrics
        self.batches += 1
        if self.armed and self.batches == 2:
            raise RuntimeError("stopped half-way")


stop = StopAtTheSecondBatch()
adapter, trainer = evaluation_trainer(sys.argv[1], [stop])
out = {"whole": trainer.evaluate()}
stop.armed, stop.batches = True, 0
try:
    trainer.evaluate()
except RuntimeError as exc:
    out["stopped"] = str(exc)
stop.armed = False
out["next"] = trainer.evaluate()
out["images"] = [row["image"] for row in adapter.task.take_evaluation().per_image]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process):
    """The short runs, in one child process (``in_one_process``), each through the function its command line
    calls (``adapters.entrypoint.main``) or a script: predicts of each size in ``SIZES``, a model for another
    scale, the checkpoint in plain transformers, the known cases, evaluations after one stopped half-way.

    Meanwhile (a second core), ``cli``: the real command line the daemon runs, ``python -m adapters.entrypoint
    --predict``, on the odd size."""
    root = trained["root"]
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")  # each test fails alone
    for name, size in SIZES.items():
        Image.open(trained["dataset"] / "val" / "LR_x2" / "0.png").resize(size).save(root / name)
    dataset = make_sr_pairs(root / "hr-only", train=4, val=2, with_lr=False)
    x3 = hf_job.write(root / "x3", "super_resolution", trained["model"], dataset, "sr_pairs", advanced={"upscale": 3})
    halves = hf_job.write(root / "halves", "super_resolution", trained["model"], trained["dataset"], "sr_pairs",
                          training={"epochs": 1, "batch_size": 2, "learning_rate": 1e-3, "device": "cpu",
                                    "num_workers": 0, "seed": 0})
    predict = ["--spec", str(trained["job"]), "--checkpoint", last, "--predict"]
    with reporter_server() as server:
        steps = {**{f"predict {name}": {"argv": [*predict, str(root / name)]} for name in SIZES},
                 "another scale": {"argv": ["--spec", str(x3)], "env": {
                     k: v for k, v in child_env(server.address).items() if k.startswith("VISIONYARD_")}},
                 "plain transformers": {"script": PLAIN_LOAD, "argv": [last]},
                 "known cases": {"script": KNOWN_CASES},
                 "stopped half-way": {"script": STOPPED_HALF_WAY, "argv": [str(halves)]}}
        with in_one_process.start(hf_python, child_env(HF_HUB_OFFLINE="1"), steps) as running:
            cli = hf_job.run(hf_python, child_env(), *predict, root / "odd.png")
            out = running.result()
    return {"out": out, "cli": cli, "another scale": server}


def finished(step: dict) -> dict:
    """A step of ``one_process`` that ran to its end, exit code 0."""
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def assert_upscaled_x2(response: dict, size: tuple[int, int]) -> None:
    assert response["task"] == "super_resolution" and response["predictions"] == []
    assert (response["width"], response["height"]) == size
    upscaled = Image.open(io.BytesIO(base64.b64decode(response["image_png_b64"])))
    assert upscaled.mode == "RGB" and upscaled.size == (size[0] * 2, size[1] * 2)


def test_trains_on_l1_reports_psnr_ssim_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m.values) - {"model/parameters"} == {"train/loss", "val/loss", "val/psnr", "val/ssim", "lr",
                                                        "train/images_per_s"}
        assert ("model/parameters" in m.values) == (m.step == 1)
        assert 0.0 < m.values["val/loss"] < 1.0 and 0.0 < m.values["train/loss"] < 1.0  # L1 on [0, 1]
        assert 0.0 < m.values["val/psnr"] < 100.0 and -1.0 <= m.values["val/ssim"] <= 1.0
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    last = server.of_kind("result")[0].last_checkpoint
    assert last.endswith("checkpoint-4")  # 8 train pairs / 4 per batch, 2 epochs
    assert (trained["root"] / "job" / "checkpoints" / "checkpoint-4" / "preprocessor_config.json").is_file()
    assert "\r" not in done.stdout + done.stderr


@pytest.mark.parametrize("name", SIZES)
def test_predict_returns_the_image_upscaled_x2(one_process, name):
    """Any input size, window multiple or not."""
    assert_upscaled_x2(finished(one_process["out"][f"predict {name}"])["json"], SIZES[name])


def test_predict_in_the_child_prints_the_image_upscaled_x2(one_process):
    done = one_process["cli"]  # the real command line
    assert done.returncode == 0, done.stderr[-4000:]
    assert_upscaled_x2(json.loads(done.stdout.strip().splitlines()[-1]), SIZES["odd.png"])


def test_the_checkpoint_loads_in_plain_transformers(one_process):
    out = finished(one_process["out"]["plain transformers"])["stdout"]
    assert out.strip() == "Swin2SRForImageSuperResolution 2 False (1, 3, 16, 16)"


def test_a_model_for_another_scale_fails_with_what_to_do(one_process):
    done, server = one_process["out"]["another scale"], one_process["another scale"]
    assert done["code"] == 1, done["error"]
    [error] = server.of_kind("error")
    assert "upscales x2 but the dataset is x3" in error.message and "advanced.upscale: 2" in error.message


def test_psnr_ssim_and_padded_batches_on_known_cases(one_process):
    """RGB in [0, 1]: equal images score SSIM 1 and PSNR at the 100 dB cap; +0.1 everywhere is 20 dB.

    Two sizes in one batch: collate pads LR (reflect) and HR (with -1); the padding counts neither in
    the L1 loss nor in the metrics, so a perfect reconstruction of the real pixels is perfect.
    """
    results = finished(one_process["out"]["known cases"])["json"]
    assert results["equal"] == {"psnr": 100.0, "ssim": pytest.approx(1.0)}
    assert results["offset"]["psnr"] == pytest.approx(20.0, abs=1e-4)
    c1 = 0.01 ** 2  # constant images: SSIM is the luminance term alone
    assert results["offset"]["ssim"] == pytest.approx((2 * 0.5 * 0.6 + c1) / (0.5 ** 2 + 0.6 ** 2 + c1), abs=1e-4)
    assert results["mixed"]["psnr"] == pytest.approx(60.0, abs=1e-4)
    assert results["clamped"] == {"psnr": 100.0, "ssim": pytest.approx(1.0)}
    assert results["cap"] == 100.0
    # LR 6x8 and 7x11 padded to the window (4): 8x12; HR to 16x24
    assert results["batch"] == {"pixel_values": [2, 3, 8, 12], "labels": [2, 3, 16, 24]}
    assert results["padding"] == 3 * ((16 * 24 - 12 * 16) + (16 * 24 - 14 * 22))
    assert results["loss"] == 0.0 and results["loss_off"] == pytest.approx(0.25)
    assert results["batches"] == {"psnr": 100.0, "ssim": pytest.approx(1.0)}
    assert [row["image"] for row in results["per_image"]] == ["#0", "#1", "#2", "#3"]
    assert [row["psnr"] for row in results["per_image"]] == [100.0] * 4
    assert results["torchmetrics vs numpy"] < 1e-5


def test_an_evaluation_stopped_half_way_leaves_nothing_in_the_next(one_process):
    """The images of an evaluation that stopped half-way (PSNR and SSIM are summed batch by batch) are forgotten when
    the next one starts: it scores each val image once, as a whole evaluation does."""
    out = finished(one_process["out"]["stopped half-way"])["json"]
    assert out["stopped"] == "stopped half-way"
    assert sorted(out["images"]) == [f"val/HR/{i}.png" for i in range(4)]
    for name in ("eval_psnr", "eval_ssim"):
        assert out["next"][name] == pytest.approx(out["whole"][name], rel=1e-6)


def test_each_evaluation_records_every_image_worst_first(trained):
    """``results/val/``: a record per epoch with each val image's PSNR and SSIM, the lowest PSNR first; its
    metrics are what the epoch reported, the means of the images'."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    reported = {m.step: dict(m.values) for m in trained["server"].of_kind("metrics")}
    results = trained["root"] / "job" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, 2, "epoch-0001.json"), (2, 4, "epoch-0002.json")]
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"], record["per_class"]) == (
            "super_resolution", "visionyard.restoration", [], [])
        assert record["confusion_matrix"] is None
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        rows = record["per_image"]
        assert sorted(row["image"] for row in rows) == [f"val/HR/{i}.png" for i in range(4)]  # every val image once
        assert [row["psnr"] for row in rows] == sorted(row["psnr"] for row in rows)
        assert record["metrics"]["val/psnr"] == pytest.approx(sum(row["psnr"] for row in rows) / 4)
        assert record["metrics"]["val/ssim"] == pytest.approx(sum(row["ssim"] for row in rows) / 4)
