"""Custom repos through the real daemon: clone a local git repo, build its env, run its own
script, parse its stdout into metrics, collect its artifacts — and fail clearly when any of it breaks."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.client import ClientError
from tests.fixtures import COLOURS, make_imagefolder, save_image
from tests.helpers import start_daemon
from tests.repo_fixtures import (copy_shipped_spec, fake_convnext, fake_paddledetection, fake_yolov7, make_yolo,
                                 toy_repo, toy_spec)

pytestmark = pytest.mark.e2e

FIVE_CLASSES = {**COLOURS, "white": (240, 240, 240), "black": (10, 10, 10)}


def custom_job(repo: str, model: str, task: str, data: Path, fmt: str, epochs: int = 2, **over) -> dict:
    spec = {"name": f"{repo}-job", "framework": "custom", "repo": repo, "model": model, "task": task,
            "dataset": {"path": str(data), "format": fmt},
            "training": {"epochs": epochs, "batch_size": 2, "image_size": 64, "device": "cpu"}}
    spec.update(over)
    return spec


def metric_steps(events) -> list[tuple[int, dict]]:
    return [(e.metrics.step, dict(e.metrics.values)) for e in events if e.WhichOneof("kind") == "metrics"]


def test_yolov7_format_repo_end_to_end(daemon, tmp_path):
    url, sha = fake_yolov7(tmp_path / "yolov7")
    daemon.client.add_repo(copy_shipped_spec("yolov7", str(url), sha, "yolov7-local", tmp_path / "y7.yaml"))
    data = make_yolo(tmp_path / "parts")
    rounded = data / "labels" / "train" / "1.txt"  # a box touching the left edge, written to 5 decimals
    rounded.write_text(rounded.read_text() + "0 0.14062 0.5 0.28125 0.3\n")
    job = daemon.client.submit(custom_job("yolov7-local", "yolov7-tiny", "object_detection", data, "yolo"))
    events = list(daemon.client.watch(job.id, include_logs=True))
    final = daemon.client.get(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    logs = [e.log.text for e in events if e.WhichOneof("kind") == "log"]
    assert any(line.startswith(f"[visionyard] dataset warning: {data}: 1 box clipped to the image") for line in logs)
    staged = Path(final.job_dir) / "data" / "labels" / "train" / "1.txt"  # YOLOv7 drops a label below 0
    _, cx, _, w, _ = map(float, staged.read_text().splitlines()[-1].split())
    assert not staged.is_symlink() and cx - w / 2 >= 0 and cx + w / 2 == pytest.approx(0.281245, abs=2e-6)
    steps = metric_steps(events)
    assert [s for s, _ in steps if "val/mAP50-95" in _] == [1, 2]   # one set per epoch, not per \r refresh
    last = dict(steps[-1][1])
    assert {"train/loss", "train/box_loss", "val/precision", "val/recall", "val/mAP50", "val/mAP50-95"} <= set(last)
    assert abs(final.metrics["val/mAP50"] - 0.000914) < 1e-9
    progress = [e.progress for e in events if e.WhichOneof("kind") == "progress"]
    assert progress and {p.total_epochs for p in progress} == {2} and max(p.epoch for p in progress) == 2
    assert final.best_checkpoint.endswith("run/weights/best.pt") and Path(final.best_checkpoint).is_file()
    assert final.last_checkpoint.endswith("run/weights/last.pt")
    # predict: the repo's detect.py over a batch's folder, its label files read back as boxes
    image = Path(save_image(tmp_path / "photo.png", "red", size=64))
    response = daemon.client.predict(job.id, image, annotate=True)
    (box,) = response.predictions
    assert (box.label, box.score, box.index) == ("bolt", 0.875, 0)  # classes.txt names class 0
    assert (box.box.x1, box.box.y1, box.box.x2, box.box.y2) == (16, 16, 48, 48)
    assert response.task == "object_detection" and (response.width, response.height) == (64, 64)
    assert response.image_png[:8] == b"\x89PNG\r\n\x1a\n"  # what detect.py drew
    answers = list(daemon.client.predict_many(job.id, [image, tmp_path / "absent.png", image]))
    assert [bool(a.error) for a in answers] == [False, True, False]
    assert all(a.result.predictions[0].box.x2 == 48 for a in answers if not a.error)
    assert not list(Path(final.job_dir).glob("predict-batch-*")) + list(Path(final.job_dir).glob("predict-image-*"))
    # the repo's label caches and outputs stay in the job dir; the user's dataset is untouched
    assert sorted(p.name for p in data.rglob("*")) == sorted(p.name for p in make_yolo(tmp_path / "ref").rglob("*"))


def test_convnext_format_repo_end_to_end(daemon, tmp_path):
    url, sha = fake_convnext(tmp_path / "convnext")
    daemon.client.add_repo(copy_shipped_spec("convnext", str(url), sha, "convnext-local", tmp_path / "cx.yaml"))
    data = make_imagefolder(tmp_path / "five", per_class=2, val_per_class=1, classes=FIVE_CLASSES)
    job = daemon.client.submit(custom_job("convnext-local", "convnext_tiny", "image_classification", data,
                                          "imagefolder"))
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    steps = metric_steps(daemon.client.watch(job.id))
    # the epoch's test accuracy, top-5 and losses come from log.txt only (the log prints them rounded), once each
    from_file = [(s, v["val/accuracy"], v["val/loss"], v["train/loss"]) for s, v in steps if "val/accuracy" in v]
    assert from_file == [(1, 0.5333333333333333, 3.625, 5.3702), (2, 0.6, 1.7058, 3.4582)]
    assert [s for s, v in steps if "train/loss" in v] == [1, 2] and [s for s, v in steps if "lr" in v] == [1, 2]
    assert final.metrics["val/top5"] == pytest.approx(1.0) and final.metrics["model/parameters"] == 27823973
    assert final.metrics["lr"] == pytest.approx(2.6e-05)  # the parser's: log.txt's train_lr is not mapped
    assert final.best_checkpoint.endswith("checkpoint-best.pth")
    assert final.last_checkpoint.endswith("checkpoint-1.pth")


def test_paddledetection_repo_with_a_generated_config_end_to_end(daemon, tmp_path):
    url, sha = fake_paddledetection(tmp_path / "paddledetection")
    daemon.client.add_repo(copy_shipped_spec("ppyoloe", str(url), sha, "ppyoloe-local", tmp_path / "pp.yaml"))
    data = make_yolo(tmp_path / "parts")  # YOLO labels: written as COCO into the job dir at launch
    job = daemon.client.submit(custom_job("ppyoloe-local", "ppyoloe_plus_crn_s", "object_detection", data, "yolo", 5,
                                          training={"epochs": 5, "batch_size": 2, "image_size": 128, "seed": 7,
                                                    "learning_rate": 0.01, "device": "cpu"}))
    events = list(daemon.client.watch(job.id, include_logs=True))
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    logs = [e.log.text for e in events if e.WhichOneof("kind") == "log"]
    assert "[stand-in] seed 7 epochs 5 classes 2 config ppyoloe_plus_crn_s_80e_coco.yml" in logs
    config = (Path(final.job_dir) / "config" / "ppyoloe.yml").read_text()
    assert "base_lr: 0.01\n" in config
    assert "NormalizeImage: {mean: [0., 0., 0.], std: [1., 1., 1.], norm_type: none}" in config
    coco = Path(final.job_dir) / "data" / "annotations" / "instances_train.json"
    assert [c["name"] for c in __import__("json").loads(coco.read_text())["categories"]] == ["bolt", "nut"]
    steps = metric_steps(events)
    assert [s for s, v in steps if "val/mAP50-95" in v] == [1, 2, 3]  # epochs 4 and 5 found nothing: no table
    assert [s for s, v in steps if "train/loss" in v] == [1, 2, 3, 4, 5]
    assert final.metrics["val/mAP50"] == pytest.approx(0.001) and final.epoch == 5
    assert {"train/cls_loss", "train/iou_loss", "train/dfl_loss", "lr", "val/mAP75"} <= set(final.metrics)
    assert final.best_checkpoint.endswith("output/best_model.pdparams")
    assert final.last_checkpoint.endswith("output/model_final.pdparams")
    # predict: the repo's infer.py over a batch's folder, its COCO results read back as boxes
    (box,) = daemon.client.predict(job.id, Path(save_image(tmp_path / "photo.png", "red", size=64))).predictions
    assert (box.label, box.score, box.index) == ("nut", 0.875, 1)  # category 2 of the job's COCO: class 1
    assert (box.box.x1, box.box.y1, box.box.x2, box.box.y2) == (16, 16, 48, 48)


def test_a_yaml_only_repo(daemon, tmp_path, capsys):
    from runner.cli import main

    url, sha = toy_repo(tmp_path / "toy")
    spec_file = tmp_path / "toy.yaml"
    spec_file.write_text(toy_spec(f"file://{url}", sha))
    assert main(["repos", "add", str(spec_file), "--address", daemon.address]) == 0
    assert main(["repos", "list", "--address", daemon.address]) == 0
    assert "toyrepo" in capsys.readouterr().out
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    job = daemon.client.submit(custom_job("toyrepo", "anything", "image_classification", data, "imagefolder", 3))
    final = daemon.client.wait(job.id)
    assert final.state == pb.SUCCEEDED, final.error
    history = {(s, round(v["val/accuracy"], 3)) for s, v in metric_steps(daemon.client.watch(job.id))
               if "val/accuracy" in v}
    assert history == {(1, 0.5), (2, 0.6), (3, 0.7)}
    assert final.epoch == 3 and final.last_checkpoint.endswith("model_3.bin")
    with pytest.raises(ClientError) as info:  # its spec has no `predict:`: what to add is named
        daemon.client.predict(job.id, save_image(tmp_path / "red.png", "red"))
    assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "trained with repo 'toyrepo': its spec has no `predict:` section" in str(info.value)

    capsys.readouterr()
    assert main(["repos", "prepare", "toyrepo", "--address", daemon.address]) == 0
    assert "checked out at" in capsys.readouterr().out
    assert main(["repos", "show", "toyrepo", "--address", daemon.address]) == 0
    assert "validation: acc" in capsys.readouterr().out
    assert main(["repos", "rm", "yolov7", "--address", daemon.address]) == 2
    assert "ships with visionyard" in capsys.readouterr().out
    assert main(["repos", "rm", "toyrepo", "--address", daemon.address]) == 0
    assert "toyrepo" not in {r.name for r in daemon.client.repos()}


def test_custom_runs_are_tracked_in_mlflow_with_their_artifacts(daemon, tmp_path):
    from mlflow.tracking import MlflowClient

    url, sha = fake_convnext(tmp_path / "convnext")
    daemon.client.add_repo(copy_shipped_spec("convnext", str(url), sha, "convnext-tracked", tmp_path / "cx.yaml"))
    data = make_imagefolder(tmp_path / "five", per_class=2, val_per_class=1, classes=FIVE_CLASSES)
    final = daemon.client.wait(daemon.client.submit(custom_job("convnext-tracked", "convnext_tiny",
                                                               "image_classification", data, "imagefolder")).id)
    assert final.state == pb.SUCCEEDED, final.error
    deadline = time.monotonic() + 60
    while not (run_id := daemon.client.get(final.id).mlflow_run_id) and time.monotonic() < deadline:
        time.sleep(0.2)  # runs are created by the tracker's own thread
    # Only now: opening the store while the daemon still creates it races on its schema migration.
    client = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")
    while client.get_run(run_id).info.status != "FINISHED" and time.monotonic() < deadline:
        time.sleep(0.2)
    run = client.get_run(run_id)
    assert run.data.tags["repo"] == "convnext-tracked" and run.data.tags["framework"] == "custom"
    assert run.data.tags["repo.commit"] == sha
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val/accuracy")) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"output.log", "checkpoint-best.pth", "checkpoint-1.pth", "log.txt"} <= artifacts


def test_added_repos_survive_a_restart(tmp_path, shared_envs):
    url, sha = toy_repo(tmp_path / "toy")
    spec_file = tmp_path / "toy.yaml"
    spec_file.write_text(toy_spec(str(url), sha, name="kept"))
    first = start_daemon(tmp_path / "home", shared_envs)
    try:
        first.client.add_repo(spec_file)
    finally:
        first.stop()
    second = start_daemon(tmp_path / "home", shared_envs)
    try:
        repos = {r.name: r for r in second.client.repos()}
        assert {"yolov7", "convnext", "kept"} <= set(repos)
        assert repos["kept"].source == "user" and repos["yolov7"].source == "shipped"
        assert "url:" in second.client.repo("kept").spec_yaml
    finally:
        second.stop()


def test_a_failing_command_fails_the_job_with_its_tail(daemon, tmp_path):
    url, sha = toy_repo(tmp_path / "toy")
    spec_file = tmp_path / "toy.yaml"
    spec_file.write_text(toy_spec(str(url), sha, name="toyfail"))
    daemon.client.add_repo(spec_file)
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    job = daemon.client.submit(custom_job("toyfail", "m", "image_classification", data, "imagefolder", 3,
                                          advanced={"fail_at": 2}))
    final = daemon.client.wait(job.id)
    assert final.state == pb.FAILED and final.exit_code == 3
    assert "exited with code 3" in final.error and "toy trainer blew up" in final.error
    assert final.metrics["val/accuracy"] == pytest.approx(0.5)   # epoch 1 still counted


@pytest.mark.parametrize("problem", ["no_such_url", "no_such_commit", "bad_requirement"])
def test_preparation_failures_say_which(daemon, tmp_path, problem):
    url, sha = toy_repo(tmp_path / "toy")
    text = toy_spec(str(url), sha, name=f"broken-{problem.replace('_', '-')}")
    if problem == "no_such_url":
        text = text.replace(f"url: {url}", f"url: {tmp_path / 'missing-repo'}")
    elif problem == "no_such_commit":
        text = text.replace(f"commit: {sha}", "commit: 0123456789abcdef0123456789abcdef01234567")
    else:
        text = text.replace("tasks:", "requirements: [visionyard-no-such-package==9.9]\ntasks:")
    spec_file = tmp_path / "broken.yaml"
    spec_file.write_text(text)
    repo = daemon.client.add_repo(spec_file)
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    final = daemon.client.wait(daemon.client.submit(custom_job(repo.name, "m", "image_classification", data,
                                                              "imagefolder", 1)).id)
    assert final.state == pb.FAILED
    expected = {"no_such_url": "missing-repo", "no_such_commit": "0123456789ab",
                "bad_requirement": "visionyard-no-such-package"}[problem]
    assert expected in final.error
    assert final.cause == (pb.CAUSE_ENV_BUILD if problem == "bad_requirement" else pb.CAUSE_REPO)


def test_bad_custom_specs_are_rejected(daemon, tmp_path):
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    cases = [
        (custom_job("nope", "m", "image_classification", data, "imagefolder"), "repo:"),
        (custom_job("convnext", "convnext_tiny", "image_classification", data, "imagefolder"), "classes"),
        (custom_job("yolov7", "yolov7-huge", "object_detection", data, "yolo"), "model:"),
        (custom_job("yolov7", "yolov7-tiny", "object_detection", data, "yolo"), "dataset"),
        (custom_job("yolov7", "yolov7-tiny", "object_detection", make_yolo(tmp_path / "y"), "yolo",
                    advanced={"hypp": "x"}), "advanced.hypp"),
    ]
    for spec, words in cases:
        with pytest.raises(ClientError) as info:
            daemon.client.submit(spec)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert words in str(info.value), str(info.value)


def test_bad_repo_specs_are_rejected_naming_the_field(daemon, tmp_path):
    spec_file = tmp_path / "bad.yaml"
    spec_file.write_text(toy_spec("/x", "abcdef1").replace('"{epochs}"', '"{epoch}"'))
    with pytest.raises(ClientError) as info:
        daemon.client.add_repo(spec_file)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "bad.yaml" in str(info.value) and "{epoch}" in str(info.value)


def test_a_queued_job_runs_the_repo_spec_it_was_submitted_with(daemon, tmp_path):
    from tests.helpers import job_spec, wait_for

    url, sha = toy_repo(tmp_path / "toy")
    spec_file = tmp_path / "snap.yaml"
    spec_file.write_text(toy_spec(str(url), sha, name="snap"))
    daemon.client.add_repo(spec_file)
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    blocker = daemon.client.submit(job_spec(data, name="blocker", training={"epochs": 500, "batch_size": 2,
                                                                             "device": "cpu"}))
    try:
        wait_for(lambda: daemon.client.get(blocker.id).state == pb.RUNNING, timeout=120)
        queued = daemon.client.submit(custom_job("snap", "m", "image_classification", data, "imagefolder", 2))
        daemon.client.remove_repo("snap")  # gone from the registry while the job waits
    finally:
        daemon.client.cancel(blocker.id)
    final = daemon.client.wait(queued.id)
    assert final.state == pb.SUCCEEDED, final.error
    assert final.epoch == 2
