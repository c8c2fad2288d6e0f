"""Transformers super-resolution in the real env: a tiny Swin2SR saved to a folder, trained on L1 from
HR/LR_x2 pairs, predicted with (any input size), reloaded by plain transformers; a model/dataset
scale mismatch fails clearly; PSNR/SSIM and the padded batches on known cases."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from tests.dataset_fixtures import make_sr_pairs
from tests.hf_models import SWIN2SR

def _predict(hf_python, hf_job, child_env, job, image, checkpoint) -> dict:
    done = hf_job.run(hf_python, child_env(), "--spec", job, "--predict", image, "--checkpoint", checkpoint)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(hf_script, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfsr")
    hf_script(SWIN2SR, root / "swin2sr")
    dataset = make_sr_pairs(root / "data")
    # image_size 8: training takes random 8x8 LR patches (16x16 HR) of the 16x16 LR images
    job = hf_job.write(root / "job", "super_resolution", root / "swin2sr", dataset, "sr_pairs", epochs=2, image_size=8)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset, "job": job}


def test_trains_on_l1_reports_psnr_ssim_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert set(m.values) == {"train/loss", "val/loss", "val/psnr", "val/ssim", "lr"}
        assert 0.0 < m.values["val/loss"] < 1.0 and 0.0 < m.values["train/loss"] < 1.0  # L1 on [0, 1]
        assert 0.0 < m.values["val/psnr"] < 100.0 and -1.0 <= m.values["val/ssim"] <= 1.0
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    last = server.of_kind("result")[0].last_checkpoint
    assert last.endswith("checkpoint-4")  # 8 train pairs / 4 per batch, 2 epochs
    assert (trained["root"] / "job" / "checkpoints" / "checkpoint-4" / "preprocessor_config.json").is_file()
    assert "\r" not in done.stdout + done.stderr


@pytest.mark.parametrize(("size", "name"), [((16, 16), "lr.png"), ((18, 13), "odd.png")])
def test_predict_returns_the_image_upscaled_x2(trained, hf_python, hf_job, child_env, size, name):
    """Any input size, window multiple or not (13 and 18 are not multiples of the window, 4)."""
    image = trained["root"] / name
    Image.open(trained["dataset"] / "val" / "LR_x2" / "0.png").resize(size).save(image)
    response = _predict(hf_python, hf_job, child_env, trained["job"], image,
                        trained["server"].of_kind("result")[0].last_checkpoint)
    assert response["task"] == "super_resolution" and response["predictions"] == []
    assert (response["width"], response["height"]) == size
    upscaled = Image.open(io.BytesIO(base64.b64decode(response["image_png_b64"])))
    assert upscaled.mode == "RGB" and upscaled.size == (size[0] * 2, size[1] * 2)


def test_the_checkpoint_loads_in_plain_transformers(trained, hf_script):
    last = trained["server"].of_kind("result")[0].last_checkpoint
    out = hf_script("""
import sys, torch
from transformers import AutoImageProcessor, AutoModelForImageToImage
model = AutoModelForImageToImage.from_pretrained(sys.argv[1])
processor = AutoImageProcessor.from_pretrained(sys.argv[1])
print(type(model).__name__, model.config.upscale, processor.do_pad,
      tuple(model(pixel_values=torch.zeros(1, 3, 8, 8)).reconstruction.shape))
""", last)
    assert out.strip() == "Swin2SRForImageSuperResolution 2 False (1, 3, 16, 16)"


def test_a_model_for_another_scale_fails_with_what_to_do(trained, hf_python, hf_job, child_env, reporter_server):
    dataset = make_sr_pairs(trained["root"] / "hr-only", train=4, val=2, with_lr=False)
    job = hf_job.write(trained["root"] / "x3", "super_resolution", trained["root"] / "swin2sr", dataset, "sr_pairs",
                       advanced={"upscale": 3})
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    assert done.returncode == 1
    [error] = server.of_kind("error")
    assert "upscales x2 but the dataset is x3" in error.message and "advanced.upscale: 2" in error.message


def test_psnr_ssim_and_padded_batches_on_known_cases(hf_script):
    """RGB in [0, 1]: equal images score SSIM 1 and PSNR at the 100 dB cap; +0.1 everywhere is 20 dB.

    Two sizes in one batch: collate pads LR (reflect) and HR (with -1); the padding counts neither in
    the L1 loss nor in the metrics, so a perfect reconstruction of the real pixels is perfect.
    """
    out = hf_script("""
import json, types, torch
from adapters.transformers.tasks.super_resolution import PSNR_CAP_DB, SRMetrics, SuperResolutionTask, masked_l1

def metrics(*pairs):
    m = SRMetrics()
    for predicted, target in pairs:
        m.update(predicted, target)
    return m.compute()

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
print(json.dumps(results))
""")
    results = json.loads(out.strip().splitlines()[-1])
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
