"""The timm adapter end to end: ``python -m adapters.entrypoint`` in a child env with torch.

Training runs (and one predict) run the real entrypoint as a subprocess with ``VISIONYARD_TEST_CHILD_PYTHON``,
reporting to a fake Reporter service in this process, exactly as it runs under the daemon. The short runs
(predicts, a model without a job, runs that fail before training) share one child process (``one_process``),
which calls what the command line calls, so torch and timm are imported once for all of them.
"""

from __future__ import annotations

import io
import json
import pickle
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest

from adapters.catalog import defaults
from adapters.frameworks import get_catalog

MODEL = "resnet10t"  # 5M parameters: a real timm CNN that trains at 32 px in well under a second
EPOCH_METRICS = {"train/loss", "val/loss", "val/accuracy", "val/precision", "val/recall", "val/f1", "lr",
                 "train/images_per_s"}
#: Reported once, with the first epoch: what `visionyard compare` shows as the model's size.
FIRST_EPOCH = {"model/parameters"}
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


def reporter_variables(child_env, address: str) -> dict[str, str]:
    """What the daemon puts in a child's environment to report to ``address``."""
    return {k: v for k, v in child_env(address).items() if k.startswith("VISIONYARD_")}


@pytest.fixture(scope="module")
def one_process(trained, child_python, child_env, reporter_server, make_imagefolder, in_one_process,
                tmp_path_factory):
    """The short runs, in one child process (``in_one_process``), each through the function its command line
    calls (``adapters.entrypoint.main``): predicts with the trained checkpoint, a model without a job, and the
    runs that fail before training. Every GPU is hidden (as the daemon runs predictions) and the hub
    unreachable; the pretrained run goes first, so it meets the hub as a fresh child does.

    Meanwhile (a second core), ``cli``: the real command line the daemon runs, ``python -m adapters.entrypoint
    --predict`` with the top 2 and ``--annotate``, on ``red`` (50x40)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("one-process")
    images = []
    for name, size, rgb in (("red", (50, 40), (225, 25, 30)), ("green", (24, 24), (30, 200, 30)),
                            ("blue", (37, 61), (30, 30, 220))):
        images.append(root / f"{name}.png")
        Image.new("RGB", size, rgb).save(images[-1])
    red, job = str(images[0]), trained["job_dir"] / "job.json"
    best = str(trained["job_dir"] / "checkpoints" / "best.pt")

    def no_job(name: str, **over) -> str:  # a model without a job: no dataset, the catalog's size for the model
        return str(write_job(root / name, root / "no-dataset", **{"pretrained": True, "image_size": 224, **over}))

    without_a_job = {
        "ours": {"job": no_job("ours"), "weights": best, "images": [red]},
        "imagenet": {"job": no_job("imagenet"), "weights": str(root / "imagenet.safetensors"), "images": [red]},
        "four": {"job": no_job("four"), "weights": str(root / "four.pth"), "images": [red]},
        "cached": {"job": no_job("cached"), "weights": None, "images": [red]},
        "asked size": {"job": no_job("asked", image_size=96), "weights": None},
        "not cached": {"job": no_job("not-cached", model="resnet18"), "weights": None},
        "another model": {"job": no_job("other", model="resnet18"), "weights": best},
        "another task": {"job": no_job("task", task="object_detection"), "weights": best}}
    (root / "empty").mkdir()
    offline_job = write_job(root / "offline", make_imagefolder(root / "colours", per_class=3), pretrained=True)
    # eval: a dataset of two of the model's three classes (class ids not the model's), and one with a class the
    # model does not know
    subset = make_imagefolder(root / "subset", classes=("red", "blue"), per_class=1, val_per_class=2)
    unknown = make_imagefolder(root / "unknown", classes=("red", "magenta"), per_class=1, val_per_class=1)

    def evaluate(name: str, *args) -> dict:
        return {"argv": ["--spec", str(job), "--eval", "--checkpoint", best, "--out", str(root / name), *map(str, args)]}
    cuda_job = on_device(write_job(root / "cuda", root / "not-read"), "cuda", root / "cuda" / "cuda.json")
    env = child_env(HF_HOME=str(root / "hf"), HF_ENDPOINT="http://127.0.0.1:9", HTTPS_PROXY="", https_proxy="",
                    CUDA_VISIBLE_DEVICES="")
    env.pop("HF_HUB_OFFLINE", None)  # never downloaded, whatever the environment says
    with reporter_server() as offline, reporter_server() as cuda, reporter_server() as bad:
        steps = {
            # Before anything touches the hub, and before WEIGHT_FILES caches resnet10t's pretrained weights.
            "pretrained offline": {"argv": ["--spec", str(offline_job)],
                                   "env": reporter_variables(child_env, offline.address)},
            "cuda": {"argv": ["--spec", str(cuda_job)], "env": reporter_variables(child_env, cuda.address)},
            "bad dataset": {"argv": ["--spec", str(write_job(root / "bad", root / "empty"))],
                            "env": reporter_variables(child_env, bad.address)},
            "missing checkpoint": {"argv": ["--spec", str(job), "--predict", red, "--checkpoint",
                                            str(root / "nope.pt")]},
            "trained on a gpu": {"argv": ["--spec", str(on_device(job, "cuda:0", root / "gpu-job.json")), "--predict",
                                          str(next((trained["dataset"] / "train" / "red").iterdir())),
                                          "--checkpoint", best]},
            "batch vs one": {"script": in_one_process.BATCH_VS_ONE, "argv": [json.dumps(
                {"timm": {"job": str(job), "checkpoint": best, "network": "model"}}), *map(str, images)]},
            "without a job": {"script": in_one_process.WITHOUT_A_JOB, "argv": [
                json.dumps(without_a_job), WEIGHT_FILES.replace("__DIR__", repr(str(root)))]},
            "model names": {"module": "adapters.timm.model_names", "argv": ["--check"]},
            "eval": evaluate("eval", "--batch", 4),
            "eval a subset": evaluate("subset-eval", "--dataset", subset, "--format", "imagefolder", "--split", "all"),
            "eval unknown classes": evaluate("unknown-eval", "--dataset", unknown, "--format", "imagefolder"),
            "eval no checkpoint": {"argv": ["--spec", str(job), "--eval", "--checkpoint", str(root / "gone.pt"),
                                            "--out", str(root / "gone")]},
        }
        with in_one_process.start(child_python, env, steps) as running:
            cli = run_entrypoint(child_python, child_env(), "--spec", job, "--predict", red, "--checkpoint", best,
                                 "--top-k", 2, "--annotate")
            out = running.result()
    return {"out": out, "cli": cli, "root": root, "best": best, "offline": offline, "cuda": cuda, "bad": bad}


def finished(step: dict) -> dict:
    """A step of ``one_process`` that ran to its end, exit code 0."""
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_training_reports_epochs_checkpoints_and_result(trained, child_python, child_env):
    done, server, ckpts = trained["done"], trained["server"], trained["job_dir"] / "checkpoints"
    assert done.returncode == 0, done.stderr
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for event in metrics:
        assert set(event.values) == EPOCH_METRICS | (FIRST_EPOCH if event.step == 1 else set())  # 3 classes: no top5
        assert event.values["train/images_per_s"] > 0
        assert 0.0 <= event.values["val/accuracy"] <= 1.0 and event.values["lr"] > 0
    assert 4e6 < metrics[0].values["model/parameters"] < 6e6  # resnet10t
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


def test_each_validation_records_its_confusion_matrix_and_per_class_results(trained):
    """``results/val/``: an index entry and a record per epoch, whose matrix counts every validation
    image once and gives the accuracy the epoch reported."""
    from adapters.datasets import read_dataset, split_options
    from adapters.job import Job

    assert trained["done"].returncode == 0, trained["done"].stderr
    spec = Job.from_file(trained["job_dir"] / "job.json").spec
    data = read_dataset(spec.dataset.path, spec.dataset.format, spec.task,
                        split=split_options(spec.dataset.as_dict(), spec.training.seed, spec.setting("data.val_split")))
    reported = {m.step: dict(m.values) for m in trained["server"].of_kind("metrics")}
    results = trained["job_dir"] / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, 4, "epoch-0001.json"), (2, 8, "epoch-0002.json")]
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        values = reported[entry["epoch"]]
        assert (record["task"], record["source"], record["evaluator"], record["job"]) == (
            "image_classification", "training", "visionyard.classification", "job-1")
        assert record["classes"] == record["confusion_labels"] == ["blue", "green", "red"]
        matrix = record["confusion_matrix"]
        total = sum(map(sum, matrix))
        assert total == len(data.val) == 9
        assert sum(matrix[i][i] for i in range(3)) / total == pytest.approx(values["val/accuracy"])
        assert [row["support"] for row in record["per_class"]] == [sum(row) for row in matrix]
        assert record["metrics"] == pytest.approx({k: v for k, v in values.items() if k.startswith("val/")})
        assert entry["metrics"] == record["metrics"]


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


def test_predict_prints_top_k_json(one_process):
    done = one_process["cli"]  # the real command line
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


def test_eval_of_the_best_checkpoint_gives_what_training_recorded_for_its_epoch(one_process, trained):
    """``--eval`` on the job's own dataset: the very validation images training split off (9, 3 per class), the
    accuracy and the confusion matrix of the best epoch's record, a progress line per batch of 4."""
    from adapters.datasets import read_dataset, split_options
    from adapters.job import Job

    done = finished(one_process["out"]["eval"])
    assert [json.loads(line) for line in done["stdout"].splitlines()[:-1]] == [
        {"done": 4, "total": 9}, {"done": 8, "total": 9}, {"done": 9, "total": 9}]
    written = json.loads((one_process["root"] / "eval" / "eval.json").read_text())
    assert done["json"] == {"eval": str(one_process["root"] / "eval" / "eval.json"), "metrics": written["metrics"]}
    epoch = read_checkpoint(Path(one_process["best"]))["epoch"]
    recorded = json.loads((trained["job_dir"] / "results" / "val" / f"epoch-{epoch:04d}.json").read_text())
    assert written["metrics"]["val/accuracy"] == recorded["metrics"]["val/accuracy"]
    assert written["confusion_matrix"] == recorded["confusion_matrix"]
    assert written["per_class"] == recorded["per_class"]
    assert (written["source"], written["epoch"], written["step"], written["job"], written["evaluator"]) == (
        "eval", None, None, "job-1", recorded["evaluator"])
    assert written["classes"] == written["confusion_labels"] == ["blue", "green", "red"]
    assert (written["split"], written["images"], written["checkpoint"], written["dataset"]) == (
        "val", 9, one_process["best"], str(trained["dataset"]))
    assert written["dataset_hash"].startswith("blake2b:") and len(written["dataset_hash"]) == 8 + 64
    assert 0 < written["seconds"] < 60
    spec = Job.from_file(trained["job_dir"] / "job.json").spec
    data = read_dataset(spec.dataset.path, spec.dataset.format, spec.task,
                        split=split_options(spec.dataset.as_dict(), spec.training.seed, spec.setting("data.val_split")))
    val = {str(Path(r.path).relative_to(trained["dataset"])) for r in data.val}
    assert {row["image"] for row in written["per_image"]} == val
    assert all(set(row) == {"image", "predicted", "score", "truth"} for row in written["per_image"])


def test_eval_maps_a_datasets_classes_to_the_models_by_name(one_process):
    """Red and blue images, class ids 1 and 0 there, 2 and 0 in the model; all of them (``--split all``)."""
    done = finished(one_process["out"]["eval a subset"])
    written = json.loads((one_process["root"] / "subset-eval" / "eval.json").read_text())
    assert done["json"]["metrics"]["val/accuracy"] == 1.0
    assert written["confusion_matrix"] == [[3, 0, 0], [0, 0, 0], [0, 0, 3]]
    assert (written["split"], written["images"]) == ("all", 6)
    assert {(row["truth"], row["predicted"]) for row in written["per_image"]} == {("red", "red"), ("blue", "blue")}


def test_eval_refuses_classes_the_model_does_not_know_and_a_missing_checkpoint(one_process):
    unknown, gone = one_process["out"]["eval unknown classes"], one_process["out"]["eval no checkpoint"]
    assert unknown["code"] == 1 and unknown["stdout"] == "", unknown["error"]
    assert ("eval failed: the dataset's class(es) 'magenta' are not classes of the model, whose classes are 'blue', "
            "'green', 'red': evaluate on a dataset whose class names are the model's") in unknown["stderr"]
    assert gone["code"] == 1 and gone["stdout"] == "", gone["error"]
    assert f"eval failed: checkpoint {one_process['root'] / 'gone.pt'} does not exist" in gone["stderr"]
    assert not (one_process["root"] / "unknown-eval").exists() and not (one_process["root"] / "gone").exists()


def test_predict_with_a_missing_checkpoint_exits_1_naming_it(one_process):
    missing = one_process["out"]["missing checkpoint"]
    assert missing["code"] == 1 and missing["stdout"].strip() == "", missing["error"]
    assert "nope.pt does not exist" in missing["stderr"]


def test_predict_batch_gives_each_image_what_predict_gives_in_one_forward_pass(one_process, batch_vs_one):
    out = finished(one_process["out"]["batch vs one"])["json"]["timm"]
    assert out["batches"] == [3]
    batch_vs_one.assert_same(out["batch"], out["alone"], "timm")
    assert [len(r["predictions"]) for r in out["batch"]] == [2, 2, 2]
    assert {"preprocess", "inference", "postprocess"} == set(out["batch"][0]["timings_ms"])


#: Run in the timm env before the models without a job (``__DIR__``: their folder): weights files as people
#: save them (a 1000-class state dict as safetensors; a 4-class one under 'state_dict' with DataParallel's
#: 'module.' prefixes), and a Hugging Face cache holding resnet10t's pretrained weights in the layout timm
#: reads offline (written after the pretrained run of ``one_process``, which must find it empty).
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


def test_a_model_without_a_job_predicts_with_its_own_labels(one_process):
    """``load_weights``, as a warm worker for a model without a job calls it: a checkpoint of ours keeps its
    classes and size; a state dict gets ImageNet's names for 1000 classes, else 'class N'; pretrained weights
    come from the local cache only (never downloaded: a model not cached fails in seconds with what to do).
    The spec's size (224, the default for a model the catalog lacks) gives way to the weights' own."""
    out, root, best = finished(one_process["out"]["without a job"])["json"], one_process["root"], one_process["best"]

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
        f"({root / 'hf' / 'hub'}) and a model without a job is never downloaded; pass --weights FILE (a state "
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


def test_cuda_without_a_gpu_fails_at_once_naming_the_setting(one_process):
    done, server = one_process["out"]["cuda"], one_process["cuda"]
    assert done["code"] == 1, done["error"]
    (error,) = server.of_kind("error")
    assert (error.type, error.message) == ("DeviceUnavailable", NO_CUDA)
    assert server.kinds() == ["error"]  # before the dataset is read: nothing else reported


def test_a_job_trained_on_a_gpu_predicts_where_the_predict_runs(one_process):
    assert finished(one_process["out"]["trained on a gpu"])["json"]["predictions"]


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
    assert set(metrics.values) == EPOCH_METRICS | FIRST_EPOCH | {"val/top5"}
    assert metrics.values["val/top5"] == 1.0  # 5 classes: the top 5 always hold the answer
    assert read_checkpoint(tmp_path / "job" / "checkpoints" / "last.pt")["class_names"] == [
        "blue",
        "green",
        "magenta",
        "red",
        "yellow",
    ]


def test_pretrained_offline_fails_fast_with_a_clear_message(one_process):
    done, server = one_process["out"]["pretrained offline"], one_process["offline"]
    assert done["code"] == 1, done["error"]
    # the first step: torch's and timm's imports included; the hub's retry storm alone is ~46 s
    assert done["seconds"] < 40, f"took {done['seconds']:.1f}s"
    (error,) = server.of_kind("error")
    assert error.type == "PretrainedWeightsUnavailable"
    assert f"pretrained weights for '{MODEL}' are not in the local cache" in error.message
    assert "`pretrained: false`" in error.message and "`weights: PATH`" in error.message
    assert "Traceback" in done["stderr"] and not server.of_kind("result")


def test_a_bad_dataset_exits_1_with_an_error_report(one_process):
    done, server = one_process["out"]["bad dataset"], one_process["bad"]
    assert done["code"] == 1, done["error"]
    (error,) = server.of_kind("error")
    assert error.type == "DatasetError" and "has no train/ folder" in error.message
    assert str(one_process["root"] / "empty") in error.message and "Traceback" in error.traceback
    assert "DatasetError" in done["stderr"]
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


def test_model_names_file_matches_the_env_timm(one_process):
    finished(one_process["out"]["model names"])
