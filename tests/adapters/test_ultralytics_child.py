"""The Ultralytics adapter end to end: ``python -m adapters.entrypoint`` in the ultralytics env.

Every task trains one epoch at 64 px on a tiny dataset made by code, reporting to a fake
Reporter service, with a network guard on the child's path: any attempt to reach another host
fails the run and is logged, so these tests prove a run makes none.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from adapters.catalog import defaults
from adapters.frameworks import get_catalog
from adapters.metrics import primary_metric
from tests.dataset_fixtures import EDGE_LINES, add_edge_labels, ann, make_coco, make_yolo_task

GUARD = Path(__file__).resolve().parent / "netguard"
BOX = {"val/precision", "val/recall", "val/mAP50", "val/mAP50-95"}
TASK_METRICS = {
    "object_detection": BOX | {"train/box_loss", "train/cls_loss", "train/dfl_loss"},
    "obb_detection": BOX | {"train/box_loss", "train/cls_loss", "train/dfl_loss"},
    "instance_segmentation": BOX | {"val/mask_precision", "val/mask_recall", "val/mask_mAP50", "val/mask_mAP50-95",
                                    "train/seg_loss"},
    "pose_estimation": BOX | {"val/pose_precision", "val/pose_recall", "val/pose_mAP50", "val/pose_mAP50-95",
                              "train/pose_loss", "train/kobj_loss"},
    "image_classification": {"val/accuracy", "val/top5"},
}
#: What every adapter answers to ``device: cuda`` where the child sees no GPU.
NO_CUDA = ("training.device is 'cuda' but this machine has no CUDA device (torch sees none; "
           "CUDA_VISIBLE_DEVICES=''): use device: cpu or auto")


def write_job(directory: Path, dataset: Path, task: str, fmt: str = "yolo", epochs: int = 1, **over) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = {"name": "u", "framework": "ultralytics", "task": task, "model": "yolov8n", "pretrained": False,
            "image_size": 64, "dataset": {"path": str(dataset), "format": fmt},
            "training": {"epochs": epochs, "batch_size": 4, "learning_rate": 0.01, "device": "cpu",
                         "num_workers": 0, "seed": 0},
            "advanced": defaults(get_catalog("ultralytics")), "weights": None, "resume": None}
    spec.update(over)
    job = {"job_id": "job-1", "job_dir": str(directory), "device": "cpu",
           "checkpoint_dir": str(directory / "checkpoints"), "spec": spec}
    (directory / "job.json").write_text(json.dumps(job))
    return directory / "job.json"


def run(python, env, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "adapters.entrypoint", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def guarded_env(child_env, tmp_path_factory):
    log = tmp_path_factory.mktemp("net") / "attempts.log"

    def make(address=None):
        env = child_env(address)
        env["PYTHONPATH"] = f"{GUARD}:{env['PYTHONPATH']}"
        env["VISIONYARD_TEST_NET_LOG"] = str(log)
        return env
    make.log = log
    return make


@pytest.fixture(scope="module")
def python(ultralytics_env) -> str:
    return str(ultralytics_env.python)


#: Tasks whose run trains on labels that overshoot the image by rounding (``EDGE_LINES``: a polygon
#: vertex, a keypoint, a rotated box corner); detection trains on exact labels, linked, not copied.
EDGE_TASKS = ("instance_segmentation", "pose_estimation", "obb_detection")


@pytest.fixture(scope="module")
def runs(python, guarded_env, reporter_server, tmp_path_factory):
    """One run per task, on demand and once: ``runs(task)`` -> (completed process, server, job dir)."""
    done: dict[str, tuple] = {}

    def train(task: str):
        if task not in done:
            root = tmp_path_factory.mktemp(task)
            dataset = make_yolo_task(root / "data", task)
            if task in EDGE_TASKS:
                add_edge_labels(dataset, task)
            job = write_job(root / "job", dataset, task)
            with reporter_server() as server:
                done[task] = (run(python, guarded_env(server.address), "--spec", job), server, root / "job", dataset)
        return done[task]
    return train


@pytest.mark.parametrize("task", list(TASK_METRICS))
def test_each_task_trains_and_reports_its_metrics(runs, guarded_env, task):
    completed, server, job_dir, dataset = runs(task)
    assert completed.returncode == 0, completed.stderr[-3000:]
    [epoch] = server.of_kind("metrics")
    assert epoch.step == 1
    assert TASK_METRICS[task] <= set(epoch.values), sorted(epoch.values)
    assert {"train/loss", "lr", "train/images_per_s", "model/parameters"} <= set(epoch.values)
    weights = job_dir / "checkpoints" / "weights"
    checkpoints = {(c.kind, c.epoch, c.path) for c in server.of_kind("checkpoint")}
    assert ("last", 1, str(weights / "last.pt")) in checkpoints
    assert (weights / "last.pt").is_file() and (weights / "best.pt").is_file()
    progress = server.of_kind("progress")
    assert progress and all(p.total_epochs == 1 and p.epoch == 1 for p in progress)
    assert progress[-1].step == progress[-1].total_steps
    result = server.of_kind("result")[0]
    assert server.kinds()[-1] == "result" and not server.of_kind("error")
    assert result.last_checkpoint == str(weights / "last.pt")
    assert set(result.metrics) == set(epoch.values) - {"model/parameters"}  # the size: with the first epoch only
    assert not any(dataset.rglob("*.cache"))  # label caches stay in the job dir
    assert "\r" not in completed.stdout + completed.stderr  # progress bars print lines, not refreshes
    staged = job_dir / "data" / "labels" / "train" / "0.txt"
    if task in EDGE_TASKS:  # clipped in a written copy, which Ultralytics reads whole
        assert "clipped to the image" in completed.stderr and not staged.is_symlink()
        source = (dataset / "labels" / "train" / "0.txt").read_text().splitlines()
        rows = [[float(v) for v in line.split()[1:]] for line in staged.read_text().splitlines()]
        assert len(rows) == len(source) and source[-1] == EDGE_LINES[task].strip()
        pose = task == "pose_estimation"  # values 6, 9, 12 are keypoint visibilities, not coordinates
        assert all(0 <= v <= 1 for row in rows for i, v in enumerate(row) if not (pose and i >= 6 and i % 3 == 0))
        assert "ignoring corrupt" not in completed.stdout + completed.stderr
    elif task != "image_classification":
        assert staged.is_symlink()
    assert not guarded_env.log.exists(), guarded_env.log.read_text()  # no network attempt at all


#: The keys of a validation record's per-class rows, per task (besides ``class``).
BOX_ROW = ("AP50", "AP50-95", "precision", "recall")
ROW_KEYS = {
    "object_detection": [*BOX_ROW, "support"],
    "obb_detection": [*BOX_ROW, "support"],
    "instance_segmentation": [*BOX_ROW, *(f"mask_{k}" for k in BOX_ROW), "support"],
    "pose_estimation": [*BOX_ROW, *(f"pose_{k}" for k in BOX_ROW), "support"],
    "image_classification": ["precision", "recall", "f1", "support"],
}


@pytest.mark.parametrize("task", list(TASK_METRICS))
def test_each_validation_records_per_class_results_and_its_confusion_matrix(runs, task):
    """``results/val/``: the epoch's index entry and record, with Ultralytics' per-class results, the
    metrics the epoch reported, and a matrix whose rows (ground truth) count each object (image) once."""
    completed, server, job_dir, dataset = runs(task)
    assert completed.returncode == 0, completed.stderr[-3000:]
    [reported] = server.of_kind("metrics")
    results = job_dir / "results" / "val"
    batches = server.of_kind("progress")[-1].total_steps
    [entry] = json.loads((results / "index.json").read_text())
    assert (entry["epoch"], entry["step"], entry["file"]) == (1, batches, "epoch-0001.json")
    record = json.loads((results / entry["file"]).read_text())
    assert (record["task"], record["epoch"], record["step"], record["source"], record["job"]) == (
        task, 1, batches, "training", "job-1")
    assert record["evaluator"].startswith("ultralytics 8.")
    classify = task == "image_classification"
    classes = ["blue", "red"] if classify else ["red", "blue"]
    assert record["classes"] == classes
    assert record["metrics"] == pytest.approx({k: v for k, v in reported.values.items() if k.startswith("val/")})
    assert entry["metrics"] == record["metrics"]
    rows = record["per_class"]
    assert [row["class"] for row in rows] == classes
    assert all(list(row)[1:] == ROW_KEYS[task] for row in rows), rows
    matrix = record["confusion_matrix"]
    if classify:
        assert record["confusion_labels"] == classes
        val_images = sum(1 for _ in (dataset / "val").rglob("*.png"))
        assert sum(map(sum, matrix)) == val_images == 8
        assert [sum(row) for row in matrix] == [row["support"] for row in rows] == [4, 4]
        assert sum(matrix[i][i] for i in range(2)) / val_images == pytest.approx(record["metrics"]["val/accuracy"],
                                                                                 abs=1e-5)
        assert [row["recall"] for row in rows] == pytest.approx([matrix[i][i] / 4 for i in range(2)])
        assert {"val/precision", "val/recall", "val/f1"} <= set(record["metrics"])
        return
    assert record["confusion_labels"] == [*classes, "background"]
    objects = sum(len(f.read_text().splitlines()) for f in (dataset / "labels" / "val").glob("*.txt"))
    assert sum(map(sum, matrix[:-1])) == objects == 8  # each object once, in its class's row
    assert [sum(matrix[c]) for c in range(2)] == [row["support"] for row in rows] == [4, 4]
    for row in rows:  # every class has objects: numbers in [0, 1], none missing
        assert all(0 <= row[k] <= 1 for k in ROW_KEYS[task][:-1]), row
    twin = {"instance_segmentation": "mask_", "pose_estimation": "pose_"}.get(task)
    for prefix in ("", twin) if twin else ("",):  # the epoch's means are the rows' (reported to 5 decimals)
        for key, mean in (("AP50", "mAP50"), ("AP50-95", "mAP50-95"), ("precision", "precision"), ("recall", "recall")):
            assert sum(row[prefix + key] for row in rows) / len(rows) == pytest.approx(
                record["metrics"][f"val/{prefix}{mean}"], abs=1e-5), prefix + key


EVAL_TASKS = ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection",
              "image_classification")  # `eval` scores every task Ultralytics trains
PREDICT_TASKS = ["object_detection", "instance_segmentation", "pose_estimation", "obb_detection", "image_classification"]


@pytest.fixture(scope="module")
def task_predicts(runs, python, guarded_env, in_one_process):
    """Each task's ``--predict`` of a validation image with its run's last checkpoint, as the command line
    runs it, the five in one child (each its own step: its own arguments, exit code and output)."""
    steps = {}
    for task in PREDICT_TASKS:
        completed, _, job_dir, dataset = runs(task)
        assert completed.returncode == 0, completed.stderr[-3000:]
        image = next((dataset / "val").rglob("*.png")) if task == "image_classification" \
            else dataset / "images" / "val" / "0.png"
        steps[task] = {"argv": ["--spec", str(job_dir / "job.json"), "--predict", str(image), "--checkpoint",
                                str(job_dir / "checkpoints" / "weights" / "last.pt"), "--top-k", "2"]}
        if task in EVAL_TASKS:  # `visionyard eval`'s child on the run's own validation split
            steps[f"eval {task}"] = {"argv": ["--spec", str(job_dir / "job.json"), "--eval", "--checkpoint",
                                              str(job_dir / "checkpoints" / "weights" / "best.pt"), "--out",
                                              str(job_dir / "eval"), "--batch", "4"]}
    return in_one_process.run(python, guarded_env(), steps)


@pytest.mark.parametrize("task", PREDICT_TASKS)
def test_predict_returns_the_task_shape(task_predicts, task):
    done = task_predicts[task]
    assert done["code"] == 0, done["error"] or done["stderr"][-3000:]
    out = done["json"]
    assert out["task"] == task and (out["width"], out["height"]) == (64, 64)
    if task == "image_classification":
        assert [p["label"] for p in out["predictions"]] and len(out["predictions"]) == 2
        assert {p["label"] for p in out["predictions"]} == {"red", "blue"}


@pytest.mark.parametrize("task", EVAL_TASKS)
def test_eval_scores_the_validation_split_with_the_shared_evaluators(task_predicts, runs, task):
    """The eval child on an Ultralytics run: its validation images through the adapter's predict path
    (boxes kept down to confidence 0.001, as Ultralytics' own val keeps them), scored by visionyard's
    evaluator; the model's class names; the metric names and per-class keys of the training record of the
    task (masks and keypoints beside the boxes); every validation object (image) counted once."""
    done = task_predicts[f"eval {task}"]
    assert done["code"] == 0, done["error"] or done["stderr"][-3000:]
    _, _, job_dir, _ = runs(task)
    found = json.loads((job_dir / "eval" / "eval.json").read_text())
    recorded = json.loads(next((job_dir / "results" / "val").glob("epoch-*.json")).read_text())
    assert found["source"] == "eval" and found["task"] == task and found["classes"] == recorded["classes"]
    classify = task == "image_classification"
    assert found["evaluator"] == ("visionyard.classification" if classify else "visionyard.coco")
    assert primary_metric(task).name in found["metrics"]
    assert [list(row) for row in found["per_class"]] == [list(row) for row in recorded["per_class"]]
    matrix = found["confusion_matrix"]
    if classify:
        assert sum(map(sum, matrix)) == found["images"] == sum(map(sum, recorded["confusion_matrix"]))
        return
    # rows: ground truth, the background row last
    assert sum(map(sum, matrix[:-1])) == sum(map(sum, recorded["confusion_matrix"][:-1]))
    assert [sum(row) for row in matrix[:-1]] == [row["support"] for row in found["per_class"]]
    extra = {"val/mAP75"} if task == "object_detection" else set()  # eval reports it for every detector
    assert set(found["metrics"]) == {name for name in recorded["metrics"] if not name.endswith("loss")} | extra
    assert set(found.get("curves") or {}) == set(recorded.get("curves") or {})  # pr, and mask_pr / pose_pr
    assert all(value is None or 0 <= value <= 1 for value in found["metrics"].values()), found["metrics"]
    assert found["per_image"] and {"image", "predicted", "truth"} <= set(found["per_image"][0])


#: Setup code for ``batch_vs_one``: the adapter's Ultralytics predict calls keep boxes down to 0.001.
LOW_CONF = ("adapter.model.predict = lambda source, _predict=adapter.model.predict, **kw: "
            "_predict(source, **{**kw, 'conf': 0.001})")


def test_predict_batch_gives_each_image_what_predict_gives_batching_images_of_one_size(
    runs, python, guarded_env, batch_vs_one, tmp_path
):
    """Every task; four images of three sizes: the two of one size are one batch (Ultralytics pads a
    batch of several sizes otherwise than each alone), and each image gets what ``predict`` gives it.

    A model trained one epoch scores its boxes below Ultralytics' default ``conf`` (0.25): its predict
    calls get ``conf=0.001`` here, so that boxes, polygons, keypoints and rotated boxes are compared."""
    from PIL import Image

    tasks = list(TASK_METRICS)
    cases = {}
    for task in tasks:
        completed, _, job_dir, dataset = runs(task)
        assert completed.returncode == 0, completed.stderr[-3000:]
        cases[task] = {"job": str(job_dir / "job.json"), "network": "model.model",
                       "checkpoint": str(job_dir / "checkpoints" / "weights" / "last.pt"),
                       "setup": LOW_CONF if task != "image_classification" else ""}
    val = runs("object_detection")[3] / "images" / "val"
    images = []
    for i, size in enumerate([(64, 64), (96, 72), (64, 64), (48, 80)]):
        images.append(tmp_path / f"{i}.png")
        Image.open(val / f"{i}.png").convert("RGB").resize(size).save(images[-1])
    out = batch_vs_one.run(python, guarded_env(), cases, images)
    for task in tasks:
        assert sorted(out[task]["batches"]) == ([4] if task == "image_classification" else [1, 1, 2]), task
        batch_vs_one.assert_same(out[task]["batch"], out[task]["alone"], task)
        assert all(r["predictions"] for r in out[task]["batch"]), task


def test_a_model_without_a_job_predicts_with_its_own_names(runs, python, guarded_env, without_a_job, tmp_path):
    """``load_weights``, as a warm worker for a model without a job calls it: a ``.pt`` file's names are the
    labels and its task must be the spec's; pretrained weights are ``<model>.pt`` in Ultralytics' weights dir
    (``weights/`` under the worker's folder) or a clear refusal saying where it looked, never a download. The
    spec's size (640, the catalog's) gives way to the size the file was trained at (64)."""
    import shutil

    completed, _, job_dir, dataset = runs("image_classification")
    assert completed.returncode == 0, completed.stderr[-3000:]
    trained = job_dir / "checkpoints" / "weights" / "last.pt"
    (tmp_path / "weights").mkdir()
    shutil.copyfile(trained, tmp_path / "weights" / "yolov8n-cls.pt")
    red = str(next((dataset / "val" / "red").iterdir()))

    def job(name: str, task: str = "image_classification", model: str = "yolov8n") -> str:
        return str(write_job(tmp_path / name, tmp_path / "no-dataset", task, pretrained=True, image_size=640,
                             model=model))

    cases = {"file": {"job": job("file"), "weights": str(trained), "images": [red]},
             "pretrained": {"job": job("pretrained"), "weights": None, "images": [red]},
             "not there": {"job": job("absent", "object_detection", "yolo11n.pt"), "weights": None},
             "another task": {"job": job("task", "object_detection"), "weights": str(trained)},
             "a model of another task": {"job": job("seg", "object_detection", "yolov8n-seg.pt"), "weights": None}}
    out = without_a_job(python, guarded_env(), cases, cwd=tmp_path)
    for name in ("file", "pretrained"):
        assert out[name]["names"] == ["blue", "red"] and out[name]["image_size"] == 64, out[name]
        [predictions] = out[name]["predictions"]
        assert sorted(label for label, _ in predictions) == ["blue", "red"]
    assert out["not there"]["error"] == (
        f"PretrainedWeightsUnavailable: pretrained weights yolo11n.pt are not on this machine (looked in "
        f"{tmp_path / 'weights'}) and this runner does not download them; put the file there, or pass --weights FILE")
    assert out["not there"]["seconds"] < 10
    assert out["another task"]["error"] == (f"ValueError: {trained} is an Ultralytics classify model "
                                            "(image_classification), not one for object_detection; predict it with "
                                            "--task image_classification")
    assert out["a model of another task"]["error"] == ("ValueError: 'yolov8n-seg.pt' is a model for "
                                                       "instance_segmentation, not object_detection; predict it with "
                                                       "--task instance_segmentation")
    assert not guarded_env.log.exists(), guarded_env.log.read_text()  # no network attempt at all


def test_cuda_without_a_gpu_fails_at_once_naming_the_setting(python, guarded_env, reporter_server, tmp_path):
    job = write_job(tmp_path / "job", tmp_path / "not-read", "object_detection")
    data = json.loads(job.read_text())
    data["device"] = data["spec"]["training"]["device"] = "cuda"
    job.write_text(json.dumps(data))
    with reporter_server() as server:
        env = guarded_env(server.address)
        env["CUDA_VISIBLE_DEVICES"] = ""
        done = run(python, env, "--spec", job)
    assert done.returncode == 1
    (error,) = server.of_kind("error")
    assert (error.type, error.message) == ("DeviceUnavailable", NO_CUDA)
    assert server.kinds() == ["error"]  # before the dataset is read: nothing else reported


def test_a_job_trained_on_a_gpu_predicts_where_the_predict_runs(runs, python, guarded_env, tmp_path):
    completed, _, job_dir, dataset = runs("image_classification")
    assert completed.returncode == 0, completed.stderr[-3000:]
    data = json.loads((job_dir / "job.json").read_text())
    data["device"] = data["spec"]["training"]["device"] = "cuda:0"
    (tmp_path / "job.json").write_text(json.dumps(data))
    env = guarded_env()
    env["CUDA_VISIBLE_DEVICES"] = ""  # as the daemon runs a predict
    done = run(python, env, "--spec", tmp_path / "job.json", "--predict", next((dataset / "val").rglob("*.png")),
               "--checkpoint", job_dir / "checkpoints" / "weights" / "last.pt")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["predictions"]


def test_prediction_shapes_per_task(python, tmp_path):
    """Each task's Results → our prediction dicts (a hand-built Results: no training needed)."""
    script = tmp_path / "shapes.py"
    script.write_text('''
import json, numpy as np, torch
from ultralytics.engine.results import Results
from adapters.ultralytics.predict import predictions_of as _predictions
img = np.zeros((40, 60, 3), dtype=np.uint8)
names = {0: "red", 1: "blue"}
boxes = torch.tensor([[10., 5., 30., 25., 0.9, 1.]])
out = {
  "object_detection": _predictions(Results(img, "x.png", names, boxes=boxes), "object_detection", 5),
  "instance_segmentation": _predictions(Results(img, "x.png", names, boxes=boxes,
      masks=torch.zeros(1, 40, 60).index_fill_(1, torch.arange(5, 25), 1)), "instance_segmentation", 5),
  "pose_estimation": _predictions(Results(img, "x.png", names, boxes=boxes,
      keypoints=torch.tensor([[[12., 6., .8], [28., 24., .7]]])), "pose_estimation", 5),
  "obb_detection": _predictions(Results(img, "x.png", names,
      obb=torch.tensor([[20., 15., 10., 6., 0.5, 0.8, 0.]])), "obb_detection", 5),
  "image_classification": _predictions(Results(img, "x.png", names, probs=torch.tensor([.3, .7])),
      "image_classification", 5),
}
print(json.dumps(out))
''')
    env_python = python
    done = subprocess.run([env_python, str(script)], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    [det] = out["object_detection"]
    assert det == {"label": "blue", "score": pytest.approx(0.9), "index": 1, "box": [10.0, 5.0, 30.0, 25.0]}
    [seg] = out["instance_segmentation"]
    assert len(seg["polygon"]) >= 3 and all(len(p) == 2 for p in seg["polygon"])
    [pose] = out["pose_estimation"]
    assert pose["keypoints"] == [[12.0, 6.0, pytest.approx(0.8)], [28.0, 24.0, pytest.approx(0.7)]]
    [obb] = out["obb_detection"]
    assert obb["label"] == "red" and obb["rotated_box"] == pytest.approx([20.0, 15.0, 10.0, 6.0, 0.5])
    assert len(obb["box"]) == 4
    assert [(p["label"], p["index"]) for p in out["image_classification"]] == [("blue", 1), ("red", 0)]


ORIENTATION = """
import json, torch
from types import SimpleNamespace
from ultralytics.utils.metrics import ConfusionMatrix
from adapters.ultralytics.results import ConfusionCounter, validation_results

names = {0: "cat", 1: "dog"}
theirs = []
validator = SimpleNamespace(training=True, data={"names": names}, args=SimpleNamespace(task="detect"),
                            _process_batch=lambda preds, batch: theirs.append(1) or {"tp": None})
counter = ConfusionCounter()
counter.start(validator)
counter.start(validator)  # a second validation: hooked once, a new matrix
cats = {"cls": torch.tensor([0., 0.]), "bboxes": torch.tensor([[0., 0., 10., 10.], [20., 20., 30., 30.]])}
# a cat detected as a dog, a dog where nothing is, a cat found at a score of 0.1 only
found = {"cls": torch.tensor([1., 1., 0.]), "conf": torch.tensor([0.9, 0.8, 0.1]),
         "bboxes": torch.tensor([[0., 0., 10., 10.], [40., 40., 50., 50.], [20., 20., 30., 30.]])}
validator._process_batch(found, cats)
detection = counter.take().tolist()
validator.training = False  # the final validation of best.pt: nothing counted
counter.start(validator)
validator._process_batch(found, cats)
final = counter.take()
calls = len(theirs)

same = {}  # random images, detections near objects: the counter's matrix is Ultralytics' own, transposed
torch.manual_seed(0)
for task in ("detect", "obb"):
    validator = SimpleNamespace(training=True, data={"names": {0: "a", 1: "b", 2: "c"}},
                                args=SimpleNamespace(task=task), _process_batch=lambda preds, batch: None)
    counter.start(validator)
    theirs = ConfusionMatrix(names=validator.data["names"], task=task)
    def boxes(k):
        xy, wh = torch.rand(k, 2) * 60, torch.rand(k, 2) * 30 + 3
        return torch.cat([xy, wh, torch.rand(k, 1) * 3], 1) if task == "obb" else torch.cat([xy, xy + wh], 1)
    for _ in range(300):
        n, m = int(torch.randint(0, 12, ())), int(torch.randint(0, 5, ()))
        preds = {"bboxes": boxes(n), "conf": torch.rand(n), "cls": torch.randint(0, 3, (n,)).float()}
        batch = {"bboxes": boxes(m), "cls": torch.randint(0, 3, (m,)).float()}
        k = min(m, n)
        preds["bboxes"][:k] = batch["bboxes"][:k] + torch.randn(k, batch["bboxes"].shape[1]) * 2
        validator._process_batch(preds, batch)
        theirs.process_batch(preds, batch, conf=0.25, iou_thres=0.45)
    mine = counter.take()
    same[task] = [mine.tolist() == theirs.matrix.T.tolist(), int(mine[:-1].sum())]

matrix = ConfusionMatrix(names=names, task="classify")
matrix.process_cls_preds([torch.tensor([[1, 0], [1, 0], [0, 1]])], [torch.tensor([0, 0, 1])])
evaluation = validation_results(SimpleNamespace(names=names, confusion_matrix=matrix), "image_classification", None)
print(json.dumps({"detection": detection, "calls": calls, "final": final, "same": same,
                  "ultralytics_classify": matrix.matrix.tolist(), "classify": evaluation.confusion_matrix.tolist(),
                  "rows": evaluation.per_class, "evaluator": evaluation.evaluator}))
"""


def test_validation_matrices_are_truth_by_prediction(python, tmp_path):
    """Ultralytics counts ``[predicted, true]``; a record holds ``[true, predicted]`` with background last,
    counted above a score of 0.25 (as ``eval`` counts), once per image, in training validations only, and
    equal (transposed) to what Ultralytics' ``ConfusionMatrix.process_batch`` counts of the same images."""
    done = subprocess.run([python, "-c", ORIENTATION], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin",
                               "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    #                       cat dog background (predicted)
    assert out["detection"] == [[0, 1, 1],   # cat: one taken for a dog, one missed (its 0.1 detection too weak)
                                [0, 0, 0],   # dog
                                [0, 1, 0]]   # background: a dog detected where there is none
    assert out["calls"] == 2 and out["final"] is None
    assert out["same"]["detect"][0] and out["same"]["obb"][0], out["same"]
    assert min(out["same"]["detect"][1], out["same"]["obb"][1]) > 500  # objects counted
    assert out["ultralytics_classify"] == [[0, 1], [2, 0]]  # [predicted, true]
    assert out["classify"] == [[0, 2], [1, 0]]  # two cats taken for dogs, a dog for a cat
    assert [(r["class"], r["support"], r["recall"]) for r in out["rows"]] == [("cat", 2, 0.0), ("dog", 1, 0.0)]
    assert out["evaluator"].startswith("ultralytics 8.")


def test_coco_and_dice_datasets_train_through_conversion(python, guarded_env, reporter_server, tmp_path):
    import json as _json

    from PIL import Image

    past_the_width = ann(4, 2, 7, (50, 30, 14.4, 10))  # x + w = width + 0.4
    coco = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2, 7, (5, 5, 20, 10)), past_the_width],
                                         "val": [ann(3)]}, size=(64, 48))
    dice = tmp_path / "dice"
    (dice / "images").mkdir(parents=True)
    (dice / "annotations").mkdir()
    for i in range(6):
        Image.new("RGB", (64, 48), (200, 10, 10)).save(dice / "images" / f"{i}.png")
        doc = {"imagePath": f"{i}.png", "imageData": None, "imageWidth": 64, "imageHeight": 48, "flags": {},
               "shapes": [{"label": "part", "shape_type": "rectangle", "points": [[-0.3, 4], [30, 48.6]]}]}
        (dice / "annotations" / f"{i}.json").write_text(_json.dumps(doc))
    for dataset, fmt in ((coco, "coco"), (dice, "dice")):
        job = write_job(tmp_path / f"job-{fmt}", dataset, "object_detection", fmt=fmt)
        with reporter_server() as server:
            done = run(python, guarded_env(server.address), "--spec", job)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "val/mAP50-95" in server.of_kind("metrics")[0].values
        assert (tmp_path / f"job-{fmt}" / "data" / "labels" / "train").is_dir()  # converted into the job dir
        assert f"clipped to the image by ≤ {0.6 if fmt == 'dice' else 0.4} px" in done.stderr
        assert "ignoring corrupt" not in done.stdout + done.stderr


def test_resume_continues_at_the_next_epoch(runs, python, guarded_env, reporter_server, tmp_path):
    completed, _, job_dir, dataset = runs("object_detection")
    assert completed.returncode == 0
    last = job_dir / "checkpoints" / "weights" / "last.pt"
    job = write_job(tmp_path / "resumed", dataset, "object_detection", epochs=2, resume=str(last))
    with reporter_server() as server:
        done = run(python, guarded_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [m.step for m in server.of_kind("metrics")] == [2]
    index = json.loads((tmp_path / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["file"]) for e in index] == [(2, "epoch-0002.json")]  # the epoch it trained
    weights = tmp_path / "resumed" / "checkpoints" / "weights"
    assert (weights / "last.pt").is_file() and (weights / "best.pt").is_file()
    assert {c.path for c in server.of_kind("checkpoint")} <= {str(weights / "last.pt"), str(weights / "best.pt")}

    job = write_job(tmp_path / "again", dataset, "object_detection", epochs=1, resume=str(last))
    with reporter_server() as server:
        done = run(python, guarded_env(server.address), "--spec", job)
    assert done.returncode == 1 and "set training.epochs above 1 to resume" in server.of_kind("error")[0].message


READ_LABELS = """
import json, logging, os, sys
from ultralytics.data.dataset import YOLODataset
from ultralytics.utils import LOGGER
said = []
LOGGER.addHandler(type("Grab", (logging.Handler,), {"emit": lambda self, r: said.append(r.getMessage())})())
TASKS = {"object_detection": "detect", "instance_segmentation": "segment", "pose_estimation": "pose",
         "obb_detection": "obb"}
out = {}
for task, root in json.loads(sys.argv[1]).items():
    data = {"names": {0: "red", 1: "blue"}, "nc": 2, "channels": 3, "kpt_shape": [3, 3]}
    dataset = YOLODataset(img_path=os.path.join(root, "images", "train"), imgsz=64, augment=False, data=data,
                          task=TASKS[task])
    out[task] = {os.path.basename(label["im_file"]): len(label["cls"]) for label in dataset.labels}
out["said"] = [m for m in said if "ignoring corrupt" in m or "duplicate" in m or "out of bounds" in m]
print(json.dumps(out))
"""


def test_plain_ultralytics_reads_every_label_of_a_staged_dataset_with_rounded_labels(python, tmp_path):
    """What the adapter stages, Ultralytics' own dataset class reads without dropping an image or a label
    (from the source as it is, it drops the image with the keypoint at width + 1 px as corrupt)."""
    from adapters.datasets import read_dataset
    from adapters.datasets.stage import stage

    staged, expected = {}, {}
    for task in ("object_detection", *EDGE_TASKS):
        source = add_edge_labels(make_yolo_task(tmp_path / "src" / task, task, train=2, val=1), task)
        dataset = read_dataset(source, "yolo", task)
        expected[task] = {Path(r.path).name: len(r.annotations) for r in dataset.train}
        staged[task] = str(stage(source, "yolo", "yolo", task, tmp_path / "staged" / task))
    done = subprocess.run([python, "-c", READ_LABELS, json.dumps(staged)], capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "YOLO_OFFLINE": "1",
                                            "YOLO_CONFIG_DIR": str(tmp_path / "yolo-config")})
    assert done.returncode == 0, done.stderr[-3000:]
    read = json.loads(done.stdout.strip().splitlines()[-1])
    assert read.pop("said") == []
    assert read == expected
    assert expected["object_detection"]["0.png"] == 6  # 2 drawn + 4 at the edges; the duplicate, zero-area dropped


def test_onnx_exports_match_pytorch_and_load_in_plain_ultralytics(runs, python, guarded_env, exports, tmp_path):
    """Ultralytics' own exporter: a detector in float16 with free image sizes, a segmenter (two outputs), both
    validated against PyTorch on the job's validation images; plain Ultralytics predicts with the file."""
    cases = {}
    for task, options in (("object_detection", {"half": True, "dynamic": True}), ("instance_segmentation", {})):
        completed, _, job_dir, _ = runs(task)
        assert completed.returncode == 0, completed.stderr[-3000:]
        cases[task] = {"job": str(job_dir / "job.json"), "checkpoint": str(job_dir / "checkpoints/weights/best.pt"),
                       "out": str(tmp_path / task), **options}
    found = exports(python, guarded_env(), cases)
    for task, outputs in (("object_detection", ["output0"]), ("instance_segmentation", ["output0", "output1"])):
        assert found[task]["code"] == 0, found[task]
        report = found[task]["report"]
        check = report["validation"]
        assert check["passed"] and check["agreement_kind"] == "boxes" and check["agreement"] >= 0.9
        assert check["max_abs_diff"] <= check["tolerance"] and check["images"] == 4
        assert all("/images/val/" in f for f in check["image_files"])
        assert report["inputs"] == ["images"] and report["outputs"] == outputs
        assert report["exporter"].startswith("ultralytics ") and report["image_size"] == 64
        assert sorted(p.name for p in (tmp_path / task).iterdir()) == ["export.json", "model.onnx"]  # no copy left
    detector = found["object_detection"]["report"]
    assert detector["half"] and detector["dynamic"]
    plain = subprocess.run(
        [python, "-c", "import sys, numpy as np; from ultralytics import YOLO; "
                       "r = YOLO(sys.argv[1], task='detect').predict(np.zeros((48, 80, 3), 'uint8'), imgsz=64, "
                       "verbose=False)[0]; print(r.orig_shape, sorted(r.names.values()))", detector["file"]],
        env=guarded_env(), capture_output=True, text=True, timeout=300)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert plain.stdout.strip().splitlines()[-1].startswith("(48, 80) [")


def test_training_controls_become_its_own_arguments_and_early_stopping_ends_the_run(
    python, guarded_env, reporter_server, tmp_path
):
    """Accumulation as its nominal batch, a clip of our own in its optimizer step, warmup, and visionyard's early
    stopping (min_delta 1: epoch 2 can't improve) ending a 3-epoch run after epoch 2; bf16 where the job runs on
    the CPU (device auto) fails at once with the reason (its autocast takes bf16 on CUDA only)."""
    dataset = make_yolo_task(tmp_path / "data", "object_detection")
    job = write_job(tmp_path / "job", dataset, "object_detection", epochs=3)
    spec = json.loads(job.read_text())
    spec["spec"]["training"].update(mixed_precision="no", gradient_accumulation=2, gradient_clip=0.5,
                                    warmup_epochs=0.5, early_stopping={"patience": 1, "min_delta": 1.0})
    job.write_text(json.dumps(spec))
    with reporter_server() as server:
        done = run(python, guarded_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-3000:]
    args = yaml.safe_load((tmp_path / "job" / "checkpoints" / "args.yaml").read_text())
    assert (args["amp"], args["nbs"], args["warmup_epochs"], args["patience"]) == (False, 8, 0.5, 0)
    assert "gradient norm clipped at 0.5" in done.stderr
    assert [m.step for m in server.of_kind("metrics")] == [1, 2]
    assert server.of_kind("result")[0].note == ("stopped early at epoch 2 (no improvement of val/mAP50-95 by more "
                                                "than 1 for 1 epochs)")

    spec["spec"]["training"].update(mixed_precision="bf16", device="auto", epochs=1)
    job.write_text(json.dumps(spec))
    with reporter_server() as server:
        failed = run(python, guarded_env(server.address), "--spec", job)
    assert failed.returncode == 1
    assert "Ultralytics trains in bf16 on a CUDA GPU only" in server.of_kind("error")[0].message
