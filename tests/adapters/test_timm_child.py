"""The timm adapter end to end: ``python -m adapters.entrypoint`` in a child env with torch.

Each test runs the real entrypoint as a subprocess with ``VISIONYARD_TEST_CHILD_PYTHON``,
reporting to a fake Reporter service in this process, exactly as it runs under the daemon.
"""

from __future__ import annotations

import io
import json
import pickle
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from adapters.catalog import defaults
from adapters.frameworks import get_catalog

MODEL = "resnet10t"  # 5M parameters: a real timm CNN that trains at 32 px in well under a second
EPOCH_METRICS = {"train/loss", "val/loss", "val/accuracy", "val/f1", "lr"}
#: What every adapter answers to ``device: cuda`` where the child sees no GPU.
NO_CUDA = ("training.device is 'cuda' but this machine has no CUDA device (torch sees none; "
           "CUDA_VISIBLE_DEVICES=''): use device: cpu or auto")


def write_job(
    directory: Path, dataset: Path, fmt: str = "imagefolder", epochs: int = 2, **spec_overrides
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "test",
        "framework": "timm",
        "task": "image_classification",
        "model": MODEL,
        "pretrained": False,
        "image_size": 32,
        "num_classes": 0,
        "dataset": {"path": str(dataset), "format": fmt},
        "training": {
            "epochs": epochs,
            "batch_size": 8,
            "learning_rate": 0.003,
            "device": "cpu",
            "num_workers": 0,
            "seed": 0,
        },
        "advanced": defaults(get_catalog("timm")),
        "weights": None,
        "resume": None,
    }
    spec.update(spec_overrides)
    job = {
        "job_id": "job-1",
        "job_dir": str(directory),
        "device": "cpu",
        "checkpoint_dir": str(directory / "checkpoints"),
        "spec": spec,
    }
    path = directory / "job.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def read_checkpoint(path: Path) -> dict:
    """The plain values of a ``torch.save`` file, read without torch (tensors become None)."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.split(".")[0] == "torch":
                return lambda *args, **kwargs: None
            return super().find_class(module, name)

        def persistent_load(self, pid):
            return None

    with zipfile.ZipFile(path) as archive:
        data = next(name for name in archive.namelist() if name.endswith("/data.pkl"))
        return Unpickler(io.BytesIO(archive.read(data))).load()


def run_entrypoint(python, env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, "-m", "adapters.entrypoint", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def trained(child_python, child_env, reporter_server, make_imagefolder, tmp_path_factory):
    """One 2-epoch run on 3 colour classes, shared by the tests that need a trained model."""
    root = tmp_path_factory.mktemp("trained")
    dataset = make_imagefolder(root / "colours", per_class=14)
    job = write_job(root / "job", dataset)
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "job_dir": root / "job", "dataset": dataset}


def test_training_reports_epochs_checkpoints_and_result(trained, child_python, child_env):
    done, server, ckpts = trained["done"], trained["server"], trained["job_dir"] / "checkpoints"
    assert done.returncode == 0, done.stderr
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for event in metrics:
        assert set(event.values) == EPOCH_METRICS  # 3 classes: no val/top5
        assert 0.0 <= event.values["val/accuracy"] <= 1.0 and event.values["lr"] > 0
    assert metrics[1].values["lr"] < metrics[0].values["lr"]  # cosine decay, stepped per epoch

    checkpoints = [(c.kind, c.epoch, c.path) for c in server.of_kind("checkpoint")]
    assert ("last", 1, str(ckpts / "last.pt")) in checkpoints and (
        "last",
        2,
        str(ckpts / "last.pt"),
    ) in checkpoints
    assert ("best", 1, str(ckpts / "best.pt")) in checkpoints
    assert (ckpts / "last.pt").is_file() and (ckpts / "best.pt").is_file()

    progress = server.of_kind("progress")
    assert progress and {(p.epoch, p.step) for p in progress} >= {(1, 4), (2, 4)}  # 33 train images / 8
    assert all(p.total_epochs == 2 and p.total_steps == 4 for p in progress)

    assert server.kinds()[-1] == "result" and not server.of_kind("error")
    result = server.of_kind("result")[0]
    assert result.last_checkpoint == str(ckpts / "last.pt") and result.best_checkpoint == str(
        ckpts / "best.pt"
    )
    assert set(result.metrics) == EPOCH_METRICS
    assert server.job_ids == {"job-1"}

    best, last = read_checkpoint(ckpts / "best.pt"), read_checkpoint(ckpts / "last.pt")
    assert {
        "model",
        "optimizer",
        "scheduler",
        "epoch",
        "best_metric",
        "class_names",
        "model_name",
        "num_classes",
        "image_size",
        "mean",
        "std",
    } <= set(best)
    assert last["epoch"] == 2 and last["class_names"] == ["blue", "green", "red"]
    assert (last["model_name"], last["num_classes"], last["image_size"]) == (MODEL, 3, 32)
    assert len(last["mean"]) == 3 and last["best_metric"] == best["best_metric"] == 1.0


def test_resume_continues_at_the_next_epoch(trained, child_python, child_env, reporter_server, tmp_path):
    assert trained["done"].returncode == 0
    last = trained["job_dir"] / "checkpoints" / "last.pt"
    job = write_job(tmp_path / "resumed", trained["dataset"], epochs=3, resume=str(last))
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr
    assert [m.step for m in server.of_kind("metrics")] == [3]
    assert {p.epoch for p in server.of_kind("progress")} == {3}
    assert [(c.kind, c.epoch) for c in server.of_kind("checkpoint") if c.kind == "last"] == [("last", 3)]
    assert server.of_kind("result")[0].last_checkpoint == str(
        tmp_path / "resumed" / "checkpoints" / "last.pt"
    )


def test_predict_prints_top_k_json(trained, child_python, child_env, tmp_path):
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (225, 25, 30)).save(image)
    ckpt = trained["job_dir"] / "checkpoints" / "best.pt"
    job = trained["job_dir"] / "job.json"
    done = run_entrypoint(
        child_python, child_env(), "--spec", job, "--predict", image, "--checkpoint", ckpt, "--top-k", 2,
        "--annotate",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["task"] == "image_classification" and (result["width"], result["height"]) == (50, 40)
    assert {"preprocess", "inference", "postprocess", "total", "load"} <= set(result["timings_ms"])
    assert "image_png_b64" not in result and "mask_png_b64" not in result
    predictions = result["predictions"]
    assert len(predictions) == 2
    assert set(predictions[0]) == {"label", "score", "index"}
    assert predictions[0]["score"] >= predictions[1]["score"]
    assert (
        predictions[0]["label"] == "red" and predictions[0]["index"] == 2
    )  # classes sorted: blue, green, red

    missing = run_entrypoint(
        child_python, child_env(), "--spec", job, "--predict", image, "--checkpoint", tmp_path / "nope.pt"
    )
    assert missing.returncode == 1 and missing.stdout.strip() == ""
    assert "nope.pt does not exist" in missing.stderr


def test_predict_batch_gives_each_image_what_predict_gives_in_one_forward_pass(
    trained, child_python, child_env, batch_vs_one, tmp_path
):
    from PIL import Image

    images = []
    for name, size, rgb in (("red", (50, 40), (225, 25, 30)), ("green", (24, 24), (30, 200, 30)),
                            ("blue", (37, 61), (30, 30, 220))):
        images.append(tmp_path / f"{name}.png")
        Image.new("RGB", size, rgb).save(images[-1])
    case = {"job": str(trained["job_dir"] / "job.json"), "network": "model",
            "checkpoint": str(trained["job_dir"] / "checkpoints" / "best.pt")}
    out = batch_vs_one.run(child_python, child_env(), {"timm": case}, images)["timm"]
    assert out["batches"] == [3]
    batch_vs_one.assert_same(out["batch"], out["alone"], "timm")
    assert [len(r["predictions"]) for r in out["batch"]] == [2, 2, 2]
    assert {"preprocess", "inference", "postprocess"} == set(out["batch"][0]["timings_ms"])


#: Run first in the timm env (``__DIR__``: the test's folder): weights files as people save them (a
#: 1000-class state dict as safetensors; a 4-class one under 'state_dict' with DataParallel's 'module.'
#: prefixes), and a Hugging Face cache holding resnet10t's pretrained weights in the layout timm reads offline.
WEIGHT_FILES = """
from pathlib import Path
import timm, torch
from safetensors.torch import save_file
root = Path(__DIR__)
save_file(timm.create_model("resnet10t").state_dict(), str(root / "imagenet.safetensors"))
four = timm.create_model("resnet10t", num_classes=4).state_dict()
torch.save({"state_dict": {"module." + k: v for k, v in four.items()}, "epoch": 3}, root / "four.pth")
repo = root / "hf" / "hub" / "models--timm--resnet10t.c3_in1k"
(repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
(repo / "refs").mkdir()
(repo / "refs" / "main").write_text("0" * 40)
save_file(timm.create_model("resnet10t").state_dict(), str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
"""


def test_a_model_without_a_job_predicts_with_its_own_labels(trained, child_python, child_env, without_a_job,
                                                            tmp_path):
    """``load_weights``, as a warm worker for a model without a job calls it: a checkpoint of ours keeps its
    classes and size; a state dict gets ImageNet's names for 1000 classes, else 'class N'; pretrained weights
    come from the local cache only (never downloaded: a model not cached fails in seconds with what to do).
    The spec's size (224, the default for a model the catalog lacks) gives way to the weights' own."""
    from PIL import Image

    assert trained["done"].returncode == 0
    red = tmp_path / "red.png"
    Image.new("RGB", (50, 40), (225, 25, 30)).save(red)
    best = str(trained["job_dir"] / "checkpoints" / "best.pt")

    def job(name: str, **over) -> str:
        return str(write_job(tmp_path / name, tmp_path / "no-dataset", **{"pretrained": True, "image_size": 224,
                                                                          **over}))

    cases = {"ours": {"job": job("ours"), "weights": best, "images": [str(red)]},
             "imagenet": {"job": job("imagenet"), "weights": str(tmp_path / "imagenet.safetensors"),
                          "images": [str(red)]},
             "four": {"job": job("four"), "weights": str(tmp_path / "four.pth"), "images": [str(red)]},
             "cached": {"job": job("cached"), "weights": None, "images": [str(red)]},
             "asked size": {"job": job("asked", image_size=96), "weights": None},
             "not cached": {"job": job("not-cached", model="resnet18"), "weights": None},
             "another model": {"job": job("other", model="resnet18"), "weights": best},
             "another task": {"job": job("task", task="object_detection"), "weights": best}}
    env = child_env(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="", https_proxy="")
    env.pop("HF_HUB_OFFLINE", None)  # never downloaded, whatever the environment says
    out = without_a_job(child_python, env, cases, WEIGHT_FILES.replace("__DIR__", repr(str(tmp_path))))

    assert out["ours"]["names"] == ["blue", "green", "red"] and out["ours"]["image_size"] == 32
    assert out["ours"]["predictions"][0][0] == ["red", 2]
    for name in ("imagenet", "cached"):
        names, (predictions,) = out[name]["names"], out[name]["predictions"]
        assert len(names) == 1000 and names[:2] == ["tench, Tinca tinca", "goldfish, Carassius auratus"], name
        assert all(names[index] == label for label, index in predictions) and len(predictions) == 3
        assert out[name]["image_size"] == 176, name  # resnet10t's pretrained size
    assert out["four"]["names"] == ["class 0", "class 1", "class 2", "class 3"]
    assert out["asked size"]["image_size"] == 96
    assert out["not cached"]["error"] == (
        f"PretrainedWeightsUnavailable: pretrained weights for 'resnet18' are not in the local cache "
        f"({tmp_path / 'hf' / 'hub'}) and a model without a job is never downloaded; pass --weights FILE (a state "
        "dict: .pth, .pt, .bin, .safetensors), or run once where huggingface.co is reachable to cache them (a job "
        "with `pretrained: true` does)")
    assert out["not cached"]["seconds"] < 10, out["not cached"]  # no retries against an unreachable hub
    assert out["another model"]["error"] == (f"ValueError: {best} is a checkpoint of timm model '{MODEL}', not "
                                             f"'resnet18'; predict with --model {MODEL}")
    assert out["another task"]["error"] == ("ValueError: timm does not do task 'object_detection'. "
                                            "Valid: image_classification")


def on_device(job: Path, device: str, to: Path) -> Path:
    """A copy of ``job`` that asks for ``device``, both as the daemon assigns it and in the spec."""
    data = json.loads(job.read_text())
    data["device"] = data["spec"]["training"]["device"] = device
    to.write_text(json.dumps(data))
    return to


def test_cuda_without_a_gpu_fails_at_once_naming_the_setting(child_python, child_env, reporter_server, tmp_path):
    job = on_device(write_job(tmp_path / "job", tmp_path / "not-read"), "cuda", tmp_path / "job" / "cuda.json")
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address, CUDA_VISIBLE_DEVICES=""), "--spec", job)
    assert done.returncode == 1
    (error,) = server.of_kind("error")
    assert (error.type, error.message) == ("DeviceUnavailable", NO_CUDA)
    assert server.kinds() == ["error"]  # before the dataset is read: nothing else reported


def test_a_job_trained_on_a_gpu_predicts_where_the_predict_runs(trained, child_python, child_env, tmp_path):
    job = on_device(trained["job_dir"] / "job.json", "cuda:0", tmp_path / "job.json")
    image = next((trained["dataset"] / "train" / "red").iterdir())
    done = run_entrypoint(child_python, child_env(CUDA_VISIBLE_DEVICES=""), "--spec", job, "--predict", image,
                          "--checkpoint", trained["job_dir"] / "checkpoints" / "best.pt")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["predictions"]


def test_dice_dataset_from_local_weights_of_another_head(
    trained, child_python, child_env, reporter_server, make_dice, tmp_path
):
    """5 dice classes, initialised from the 3-class run's weights: the mismatched head is dropped."""
    assert trained["done"].returncode == 0
    weights = trained["job_dir"] / "checkpoints" / "best.pt"
    dataset = make_dice(tmp_path / "dice", per_class=6)
    job = write_job(tmp_path / "job", dataset, fmt="dice", epochs=1, pretrained=True, weights=str(weights))
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address, HF_HUB_OFFLINE="1"), "--spec", job)
    assert done.returncode == 0, done.stderr
    (metrics,) = server.of_kind("metrics")
    assert set(metrics.values) == EPOCH_METRICS | {"val/top5"}
    assert metrics.values["val/top5"] == 1.0  # 5 classes: the top 5 always hold the answer
    assert read_checkpoint(tmp_path / "job" / "checkpoints" / "last.pt")["class_names"] == [
        "blue",
        "green",
        "magenta",
        "red",
        "yellow",
    ]


def test_pretrained_offline_fails_fast_with_a_clear_message(
    child_python, child_env, reporter_server, make_imagefolder, tmp_path
):
    dataset = make_imagefolder(tmp_path / "colours", per_class=3)
    job = write_job(tmp_path / "job", dataset, pretrained=True)
    offline = {
        "HF_HOME": str(tmp_path / "hf"),
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HTTPS_PROXY": "",
        "https_proxy": "",
    }
    with reporter_server() as server:
        started = time.monotonic()
        env = child_env(server.address, **offline)
        env.pop("HF_HUB_OFFLINE", None)
        done = run_entrypoint(child_python, env, "--spec", job, timeout=60)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert elapsed < 40, f"took {elapsed:.1f}s"  # imports only; the hub's retry storm alone is ~46 s
    (error,) = server.of_kind("error")
    assert error.type == "PretrainedWeightsUnavailable"
    assert f"pretrained weights for '{MODEL}' are not in the local cache" in error.message
    assert "`pretrained: false`" in error.message and "`weights: PATH`" in error.message
    assert "Traceback" in done.stderr and not server.of_kind("result")


def test_a_bad_dataset_exits_1_with_an_error_report(child_python, child_env, reporter_server, tmp_path):
    (tmp_path / "empty").mkdir()
    job = write_job(tmp_path / "job", tmp_path / "empty")
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address), "--spec", job)
    assert done.returncode == 1
    (error,) = server.of_kind("error")
    assert error.type == "DatasetError" and "has no train/ folder" in error.message
    assert str(tmp_path / "empty") in error.message and "Traceback" in error.traceback
    assert "DatasetError" in done.stderr
    assert server.kinds() == ["error"]


def test_sigterm_stops_training_promptly(
    child_python, child_env, reporter_server, make_imagefolder, tmp_path
):
    dataset = make_imagefolder(tmp_path / "colours", per_class=14)
    job = write_job(tmp_path / "job", dataset, epochs=500)
    with reporter_server() as server:
        proc = subprocess.Popen(
            [child_python, "-m", "adapters.entrypoint", "--spec", str(job)],
            env=child_env(server.address),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert server.wait_for(lambda s: s.of_kind("progress"), timeout=90), "training never started"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == -signal.SIGTERM
        finally:
            proc.kill()
            proc.wait()


def test_model_names_file_matches_the_env_timm(child_python, child_env):
    done = subprocess.run(
        [child_python, "-m", "adapters.timm.model_names", "--check"],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
