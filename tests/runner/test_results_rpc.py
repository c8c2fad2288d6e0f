"""`GetResults`, `Client.results` and `visionyard results` over the records a job's validations wrote
(``adapters.evaluation.record``), through a real servicer on a real gRPC server."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from adapters.evaluation.classification import classification_results
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from runner import plots
from runner.cli import main
from runner.client import Client, ClientError

CLASSES = ["cat", "dog", "fox"]
#: Per epoch, the confusion matrix (rows: ground truth); epoch 2's accuracy is the best.
MATRICES = {1: [[3, 1, 0], [2, 2, 0], [1, 0, 1]],
            2: [[4, 0, 0], [1, 3, 0], [0, 1, 1]],
            3: [[4, 0, 0], [2, 2, 0], [1, 0, 1]]}


def add_job(s, task: str = "image_classification", framework: str = "timm") -> tuple[str, object]:
    job = s.store.create_job({"framework": framework, "task": task, "model": "m"}, "j", 3)
    job_dir = s.paths.job_dir(job.id)
    job_dir.mkdir(parents=True)
    s.store.update(job.id, job_dir=str(job_dir))
    return job.id, job_dir


def record_epochs(job_id, job_dir, matrices=MATRICES, classes=CLASSES, keep_up_to=100, store=None) -> None:
    """Each epoch's validation record, and (with `store`) its training loss reported as a job reports it."""
    if store is not None:
        for epoch in matrices:
            store.add_metrics(job_id, epoch, {"train/loss": 2.0 / epoch, "lr": 0.01})
    writer = ResultsWriter(job_dir, "image_classification", keep_every_epoch_up_to=keep_up_to)
    for epoch, matrix in matrices.items():
        evaluation = classification_results(np.array(matrix), classes)
        writer.write(ValidationRecord.of(evaluation, task="image_classification", epoch=epoch, step=epoch * 10,
                                         source="training", job=job_id,
                                         metrics={**evaluation.metrics, "val/loss": 1.0 / epoch}))


@pytest.fixture
def results(served):
    s = served()
    job_id, job_dir = add_job(s)
    record_epochs(job_id, job_dir, store=s.store)
    client = Client(s.address)
    yield s, job_id, client
    client.close()


def test_the_best_epoch_by_the_primary_metric_is_the_default(results):
    s, job_id, client = results
    reply = client.results(job_id)
    result = reply.result
    assert (result.epoch, result.best, result.task, result.job_id) == (2, True, "image_classification", job_id)
    assert result.metrics["val/accuracy"] == pytest.approx(8 / 10)
    assert list(result.confusion_matrix.labels) == CLASSES
    assert list(result.confusion_matrix.counts) == [v for row in MATRICES[2] for v in row]
    dog = next(row for row in result.per_class if row.name == "dog")
    assert dog.support == 4 and dog.values["recall"] == pytest.approx(3 / 4)
    assert dog.values["precision"] == pytest.approx(3 / 4)
    assert [(e.epoch, e.best, e.kept) for e in reply.epochs] == [(1, False, True), (2, True, True), (3, False, True)]
    assert reply.epochs[2].metrics["val/loss"] == pytest.approx(1 / 3)
    assert reply.epochs[2].metrics["train/loss"] == pytest.approx(2 / 3)  # as the job reported it


def test_last_and_a_numbered_epoch_are_answered(results):
    s, job_id, client = results
    assert client.results(job_id, "last").result.epoch == 3
    first = client.results(job_id, 1).result
    assert first.epoch == 1 and not first.best and first.metrics["val/accuracy"] == pytest.approx(6 / 10)


def test_missing_things_are_named(results):
    s, job_id, client = results
    with pytest.raises(ClientError) as err:
        client.results(job_id, 7)
    assert err.value.code.name == "NOT_FOUND" and "no validation of epoch 7: it validated epochs 1-3" in str(err.value)
    with pytest.raises(ClientError) as err:
        client.results(job_id, "middle")
    assert err.value.code.name == "INVALID_ARGUMENT" and "give best, last or an epoch number" in str(err.value)
    empty, _ = add_job(s, task="object_detection", framework="ultralytics")
    with pytest.raises(ClientError) as err:
        client.results(empty)
    assert err.value.code.name == "FAILED_PRECONDITION"
    assert f"job {empty} (ultralytics, object_detection, queued) has no validation results" in str(err.value)
    with pytest.raises(ClientError) as err:
        client.results("nosuchjob")
    assert err.value.code.name == "NOT_FOUND"


def test_with_many_classes_only_the_best_and_last_epochs_keep_their_matrix(served):
    s = served()
    job_id, job_dir = add_job(s)
    record_epochs(job_id, job_dir, keep_up_to=2)  # 3 classes count as many here
    client = Client(s.address)
    assert [(e.epoch, e.kept) for e in client.results(job_id).epochs] == [(1, False), (2, True), (3, True)]
    with pytest.raises(ClientError) as err:
        client.results(job_id, 1)
    assert "kept only its metrics" in str(err.value) and "best and last epochs (2-3)" in str(err.value)
    client.close()


def test_cli_json_has_the_documented_shape_and_the_matrix_gives_the_accuracy(results, capsys):
    s, job_id, client = results
    assert main(["results", job_id, "--address", s.address, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"job", "task", "epoch", "classes", "metrics", "per_class", "confusion_matrix"} <= set(data)
    matrix = np.array(data["confusion_matrix"])
    assert matrix.sum() == 10 and np.trace(matrix) / matrix.sum() == pytest.approx(data["metrics"]["val/accuracy"])
    assert [row["class"] for row in data["per_class"]] == CLASSES and data["per_class"][0]["support"] == 4


def test_cli_table_shows_per_class_rows_and_both_matrices(results, capsys):
    s, job_id, client = results
    assert main(["results", job_id, "--address", s.address, "--epoch", "3"]) == 0
    out = capsys.readouterr().out
    assert f"job {job_id} (image_classification): epoch 3 (last) of 3 validated" in out
    assert "val/accuracy" in out and "0.7000" in out
    assert "confusion matrix: 10 counted" in out and "normalised by row" in out
    assert "class  precision  recall      f1  support" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == ["dog"]]
    assert rows == [["dog", "1.0000", "0.5000", "0.6667", "4"], ["dog", "2", "2", "0"], ["dog", "0.50", "0.50", "0.00"]]


def test_a_thousand_classes_do_not_flood_the_terminal(served, capsys):
    s = served()
    job_id, job_dir = add_job(s)
    n = 1000
    classes = [f"class {i}" for i in range(n)]
    matrix = np.diag(np.random.default_rng(0).integers(20, 50, n)) + np.eye(n, k=1, dtype=int)
    evaluation = classification_results(matrix, classes)
    writer = ResultsWriter(job_dir, "image_classification")
    for epoch in (1, 2):
        writer.write(ValidationRecord.of(evaluation, task="image_classification", epoch=epoch, step=epoch,
                                         source="training", job=job_id))
    client = Client(s.address)
    reply = client.results(job_id)
    assert len(reply.result.confusion_matrix.counts) == n * n and len(reply.result.per_class) == n
    client.close()
    assert main(["results", job_id, "--address", s.address]) == 0
    out = capsys.readouterr().out
    assert "per class: the 25 lowest f1 of 1000 classes" in out and "975 more classes" in out
    assert "confusion matrix: 1000 x 1000" in out and "most confused" in out
    assert len(out.splitlines()) < 80


def test_plots_are_written_as_pngs_a_viewer_opens(results, tmp_path, capsys):
    s, job_id, client = results
    folder = tmp_path / "plots"
    assert main(["results", job_id, "--address", s.address, "--plots", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    written = json.loads(captured.out)["plots"]
    names = sorted(p.rsplit("/", 1)[1] for p in written)
    assert names == ["confusion_matrix.png", "confusion_matrix_normalised.png", "curves.png", "per_class_f1.png"]
    for path in written:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 200 and image.height > 200
            # not blank: a drawn figure has many colours
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20
    assert f"no gallery.png: training keeps no predictions; `visionyard eval {job_id}`" in captured.err


# ---------------------------------------------------------------- curves and the gallery of an eval

BOXES = ["cat", "dog"]


def detection_job(s, tmp_path, evals: dict | None = None):
    """A detection job whose training record has PR curves (cat: found; dog: a false positive above its hit),
    and (`evals`: name → split) evaluations of it whose galleries show one image of `tmp_path / "data"`."""
    from adapters.evaluation.detection import detection_results

    job_id, job_dir = add_job(s, task="object_detection", framework="transformers")
    evaluation = detection_results([{"boxes": [[10, 10, 50, 50], [60, 60, 100, 100]], "labels": [0, 1]}],
                                   [{"boxes": [[10, 10, 50, 50], [150, 150, 190, 190], [60, 60, 100, 100]],
                                     "labels": [0, 1, 1], "scores": [0.9, 0.8, 0.7]}], BOXES)
    ResultsWriter(job_dir, "object_detection").write(ValidationRecord.of(
        evaluation, task="object_detection", epoch=1, step=1, source="training", job=job_id))
    data = tmp_path / "data"
    (data / "val").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (256, 256), (20, 40, 80)).save(data / "val" / "1.png")
    row = {"image": "val/1.png", "predicted": [{"label": "cat", "score": 0.9, "box": [10, 10, 50, 50]},
                                               {"label": "dog", "score": 0.8, "box": [150, 150, 190, 190]}],
           "truth": [{"label": "cat", "box": [10, 10, 50, 50]}, {"label": "dog", "box": [60, 60, 100, 100]},
                     {"label": "dog", "box": [0, 200, 40, 240], "crowd": True}]}
    for name, split in (evals or {}).items():
        evaluated = ValidationRecord(**{**vars(ValidationRecord.of(evaluation, task="object_detection", epoch=None,
                                                                   step=None, source="eval", job=job_id)),
                                        "per_image": [row], "dataset": str(data), "split": split,
                                        "dataset_hash": "blake2b:00", "images": 1})
        folder = job_dir / "evals" / name
        folder.mkdir(parents=True)
        (folder / "eval.json").write_text(evaluated.to_json())
    return job_id


def test_curves_and_the_newest_gallery_of_the_val_split_are_served(served, tmp_path):
    s = served()
    job_id = detection_job(s, tmp_path, {"best-val": "val", "best-train": "train"})
    client = Client(s.address)
    reply = client.results(job_id)
    client.close()
    curves = {(c.kind, c.name, c.mean): c for c in reply.result.curves}
    assert list(curves) == [("pr", "mean", True), ("pr", "cat", False), ("pr", "dog", False)]
    cat, dog, mean = curves["pr", "cat", False], curves["pr", "dog", False], curves["pr", "mean", True]
    assert cat.iou == 0.5 and len(cat.recall) == 101 and cat.recall[50] == 0.5
    assert set(cat.precision) == {1.0} and set(dog.precision) == {0.5} and set(mean.precision) == {0.75}
    assert not reply.result.per_image  # training keeps no predictions
    gallery = reply.gallery
    assert gallery.name == "best-val" and gallery.result.dataset == str(tmp_path / "data")
    assert not gallery.result.per_class and not gallery.result.HasField("confusion_matrix")
    [image] = gallery.result.per_image
    assert image.image == "val/1.png" and [b.label for b in image.predicted_boxes] == ["cat", "dog"]
    assert (image.predicted_boxes[1].score, image.predicted_boxes[1].box.x1) == (pytest.approx(0.8), 150.0)
    assert [(b.label, b.crowd, b.box.y2) for b in image.true_boxes] == [("cat", False, 50.0), ("dog", False, 100.0),
                                                                      ("dog", True, 240.0)]


def test_results_plots_write_the_pr_curves_and_the_gallery(served, tmp_path, capsys):
    s = served()
    job_id = detection_job(s, tmp_path, {"best-val": "val"})
    folder = tmp_path / "plots"
    assert main(["results", job_id, "--address", s.address, "--plots", str(folder), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert sorted(p.rsplit("/", 1)[1] for p in data["plots"]) == [
        "confusion_matrix.png", "confusion_matrix_normalised.png", "curves.png", "gallery.png", "per_class_AP50-95.png",
        "pr_curves.png"]
    assert "no gallery" not in captured.err
    assert data["curves"]["pr"]["per_class"]["dog"] == [0.5] * 101 and data["curves"]["pr"]["iou"] == 0.5
    with Image.open(folder / "gallery.png") as image:
        x, y = plots.tile_origin(0, 1)
        assert image.convert("RGB").getpixel((x + 11, y + 30)) == plots.COLOURS["tp"]  # the cat found
    with Image.open(folder / "pr_curves.png") as image:
        assert image.format == "PNG" and image.width > 500
    assert main(["results", job_id, "--address", s.address, "--plots", str(folder)]) == 0
    assert f"wrote {folder / 'gallery.png'}" in capsys.readouterr().out


def test_without_an_eval_of_the_val_split_results_plots_say_how_to_get_the_gallery(served, tmp_path, capsys):
    s = served()
    job_id = detection_job(s, tmp_path, {"best-train": "train"})
    client = Client(s.address)
    assert not client.results(job_id).HasField("gallery")
    client.close()
    assert main(["results", job_id, "--address", s.address, "--plots", str(tmp_path / "plots")]) == 0
    captured = capsys.readouterr()
    assert "gallery.png" not in captured.out and f"wrote {tmp_path / 'plots' / 'pr_curves.png'}" in captured.out
    assert f"`visionyard eval {job_id}`" in captured.err


# ---------------------------------------------------------------- compare


def two_jobs(s):
    """Two classification jobs with records: the second is better on dog and fox."""
    first, first_dir = add_job(s)
    record_epochs(first, first_dir, store=s.store)
    second, second_dir = add_job(s, framework="transformers")
    better = {1: [[4, 0, 0], [0, 4, 0], [0, 0, 2]], 2: [[3, 1, 0], [1, 3, 0], [0, 1, 1]]}
    record_epochs(second, second_dir, matrices=better, store=s.store)
    # the second's adapter reports its size with its first epoch and its throughput every epoch
    s.store.add_metrics(second, 1, {"model/parameters": 5_300_000.0, "train/images_per_s": 10.0})
    s.store.add_metrics(second, 2, {"train/images_per_s": 30.0})
    return first, second


def test_compare_puts_each_jobs_best_epoch_and_per_class_values_side_by_side(served):
    s = served()
    first, second = two_jobs(s)
    client = Client(s.address)
    reply = client.compare([first, second])
    client.close()
    assert (reply.task, reply.primary_metric, reply.higher_is_better) == ("image_classification", "val/accuracy", True)
    a, b = reply.jobs
    assert (a.job_id, a.best_epoch, a.epochs, a.framework) == (first, 2, 3, "timm")
    assert (b.job_id, b.best_epoch, b.epochs, b.framework) == (second, 1, 2, "transformers")
    assert a.metrics["val/accuracy"] == pytest.approx(0.8) and b.metrics["val/accuracy"] == pytest.approx(1.0)
    assert a.metrics["train/loss"] == pytest.approx(1.0)  # epoch 2's, as the job reported it
    assert [c.epoch for c in a.curve] == [1, 2, 3] and [c.best for c in a.curve] == [False, True, False]
    assert list(reply.classes) == CLASSES and reply.per_class_key == "f1"
    assert list(b.per_class) == pytest.approx([1.0, 1.0, 1.0])
    assert a.source == b.source == "visionyard.classification" and not reply.comparable
    assert (a.parameters, a.images_per_second) == (0, 0.0)  # not reported
    assert (b.parameters, b.images_per_second) == (5_300_000, pytest.approx(20.0))  # median of its epochs
    assert "each job's numbers come from its own validation" in reply.note


def test_compare_in_the_terminal_as_json_and_as_a_plot(served, capsys, tmp_path):
    s = served()
    first, second = two_jobs(s)
    assert main(["compare", first, second, "--address", s.address, "--plot", str(tmp_path / "curves.png")]) == 0
    out = capsys.readouterr().out
    assert "image_classification: 2 jobs (* the best val/accuracy)" in out
    line = next(line for line in out.splitlines() if line.startswith(second))
    assert "1.0000 *" in line and "1/2" in line and "5.3M" in line and "20.0" in line
    fox = next(line.split() for line in out.splitlines() if line.split()[:1] == ["fox"])
    assert fox[1:] == ["0.6667", "1.0000", "+0.3333"]
    assert "note: each job's numbers come from its own validation" in out
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG" and image.width > 500
    assert main(["compare", first, second, "--address", s.address, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["job"] for r in rows] == [first, second]
    assert {"job", "framework", "model", "metrics", "source"} <= set(rows[0])
    assert rows[1]["per_class"]["fox"] == pytest.approx(1.0) and rows[0]["best_epoch"] == 2
    assert (rows[0]["parameters"], rows[1]["parameters"], rows[1]["images_per_second"]) == (None, 5_300_000, 20.0)


def test_compare_refuses_jobs_of_other_tasks_other_classes_or_one_job(served):
    s = served()
    first, second = two_jobs(s)
    detection, _ = add_job(s, task="object_detection", framework="ultralytics")
    other, other_dir = add_job(s)
    record_epochs(other, other_dir, matrices={1: MATRICES[1]}, classes=["cat", "dog", "owl"])
    client = Client(s.address)
    for ids, says in (([first, detection], f"{first} image_classification, {detection} object_detection"),
                      ([first, other], "class lists differ: " + f"{first} has 3 classes, {other} 3; in one only: "
                                       "fox, owl"),
                      ([first, first], "two or more different jobs")):
        with pytest.raises(ClientError) as err:
            client.compare(ids)
        assert err.value.code.name == "INVALID_ARGUMENT" and says in str(err.value), str(err.value)
    client.close()


def test_a_job_without_records_compares_on_what_it_reported(served):
    s = served()
    first, _ = two_jobs(s)
    repo_job = s.store.create_job({"framework": "custom", "repo": "yolov7", "task": "image_classification",
                                   "model": "yolov7-tiny"}, "repo", 2)
    for epoch, accuracy in ((1, 0.4), (2, 0.9)):
        s.store.add_metrics(repo_job.id, epoch, {"val/accuracy": accuracy})
    client = Client(s.address)
    reply = client.compare([first, repo_job.id])
    client.close()
    repo = reply.jobs[1]
    assert (repo.framework, repo.best_epoch, repo.metrics["val/accuracy"]) == ("yolov7", 2, pytest.approx(0.9))
    assert repo.source == "yolov7's log, read by its parser" and not repo.per_class
    assert list(reply.classes) == [] and "different evaluators" in reply.note


def test_per_image_results_of_ocr_are_served_and_shown_worst_first(served, capsys):
    from adapters.evaluation.record import Evaluation

    s = served()
    job_id, job_dir = add_job(s, task="ocr", framework="transformers")
    worst = [{"image": "val/images/3.png", "target": "cat", "prediction": "cut", "cer": 1 / 3},
             {"image": "val/images/1.png", "target": "dog", "prediction": "dog", "cer": 0.0}]
    ResultsWriter(job_dir, "ocr").write(ValidationRecord.of(
        Evaluation(evaluator="visionyard.ocr", classes=[], metrics={"val/cer": 1 / 6}, per_class=[], per_image=worst),
        task="ocr", epoch=1, step=4, source="training", job=job_id))
    client = Client(s.address)
    result = client.results(job_id).result
    client.close()
    assert [(r.image, r.target, r.prediction, r.values["cer"]) for r in result.per_image] == [
        ("val/images/3.png", "cat", "cut", pytest.approx(1 / 3)), ("val/images/1.png", "dog", "dog", 0.0)]
    assert not result.HasField("confusion_matrix")
    assert main(["results", job_id, "--address", s.address]) == 0
    out = capsys.readouterr().out
    assert "the 2 worst images" in out
    assert next(line for line in out.splitlines() if "3.png" in line).split() == ["val/images/3.png", "0.3333", "cat",
                                                                                  "cut"]
    assert main(["results", job_id, "--address", s.address, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_image"][0] == worst[0]
