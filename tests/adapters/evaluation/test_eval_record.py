"""The validation record as JSON, and the results folder ``ResultsWriter`` keeps in a job folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from adapters.evaluation.classification import classification_results
from adapters.evaluation.record import (INDEX_FILE, RESULTS_FOLDER, Evaluation, ResultsWriter, ValidationRecord,
                                        pr_curve, read_index, read_record)


def record(epoch: int, accuracy: float, classes: int = 3, task: str = "image_classification") -> ValidationRecord:
    names = [f"c{i}" for i in range(classes)]
    evaluation = classification_results(np.eye(classes, dtype=int) * 2, names)
    return ValidationRecord.of(evaluation, task=task, epoch=epoch, step=epoch * 10, source="training", job="job-1",
                               metrics={**evaluation.metrics, "val/accuracy": accuracy, "val/loss": 1.0 / epoch})


def test_a_record_round_trips_through_json_with_nan_as_null():
    original = record(3, 0.5)
    original.per_class[0]["precision"] = float("nan")
    original.metrics["val/top5"] = float("nan")
    data = json.loads(original.to_json())
    assert list(data) == ["version", "job", "task", "epoch", "step", "source", "evaluator", "classes", "metrics",
                          "per_class", "confusion_matrix", "confusion_labels"]
    assert data["version"] == 1 and data["source"] == "training" and data["evaluator"] == "visionyard.classification"
    assert data["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert data["metrics"]["val/top5"] is None and data["per_class"][0]["precision"] is None
    again = ValidationRecord.from_json(original.to_json())
    assert again.to_dict() == data and again.epoch == 3 and again.job == "job-1"


def test_per_image_results_are_written_only_when_given():
    with_images = record(1, 0.5)
    with_images.per_image = [{"image": "a.png", "psnr": np.float32(31.5)}]
    assert json.loads(with_images.to_json())["per_image"] == [{"image": "a.png", "psnr": 31.5}]


def test_an_eval_records_what_it_evaluated_and_a_training_record_stays_as_it_was():
    """An ``eval`` run's record adds dataset, hash, checkpoint, split, image count and seconds after the rest;
    a record without them (every training validation, older records) neither writes nor needs them."""
    evaluation = classification_results(np.eye(2, dtype=int), ["a", "b"])
    evaluated = ValidationRecord(**{**vars(ValidationRecord.of(evaluation, task="image_classification", epoch=None,
                                                               step=None, source="eval", job="job-1")),
                                    "dataset": "/data/x", "dataset_hash": "blake2b:00", "checkpoint": "/c/best.pt",
                                    "split": "val", "images": np.int64(2), "seconds": 1.5})
    data = json.loads(evaluated.to_json())
    assert list(data)[-6:] == ["dataset", "dataset_hash", "checkpoint", "split", "images", "seconds"]
    assert (data["epoch"], data["step"], data["images"], data["seconds"]) == (None, None, 2, 1.5)
    assert ValidationRecord.from_dict(data).to_dict() == data
    older = record(1, 0.5).to_dict()
    assert not {"dataset", "dataset_hash", "checkpoint", "split", "images", "seconds"} & set(older)
    assert ValidationRecord.from_dict(older).dataset_hash is None


def test_curves_take_the_mean_over_classes_with_ground_truth_and_round_trip_with_nan_as_null():
    """cat: precision 1 then 0.5; dog: 0.5, then undefined at the last point; owl: no ground truth (no curve)."""
    precision = np.full((3, 101), np.nan)
    precision[0] = np.where(np.arange(101) <= 50, 1.0, 0.5)
    precision[1, :100] = 0.5
    curve = pr_curve(precision, ["cat", "dog", "owl"])
    assert curve["iou"] == 0.5 and curve["recall"][:3] == [0.0, 0.01, 0.02] and curve["recall"][-1] == 1.0
    assert list(curve["per_class"]) == ["cat", "dog"]
    assert (curve["mean"][0], curve["mean"][99], curve["mean"][100]) == (0.75, 0.5, 0.5)  # the last: cat's alone
    evaluation = Evaluation(evaluator="visionyard.coco", classes=["cat", "dog", "owl"], metrics={"val/mAP50": 0.6},
                            per_class=[], curves={"pr": curve})
    original = ValidationRecord.of(evaluation, task="object_detection", epoch=1, step=1, source="training")
    data = json.loads(original.to_json())
    assert list(data)[-1] == "curves" and data["curves"]["pr"]["per_class"]["dog"][100] is None
    again = ValidationRecord.from_json(original.to_json())
    assert again.curves == data["curves"] and again.to_dict() == data
    without = record(1, 0.5).to_dict()
    assert "curves" not in without and ValidationRecord.from_dict(without).curves is None


def test_above_100_classes_a_curve_keeps_only_its_mean_and_a_curve_of_nothing_is_none():
    curve = pr_curve(np.ones((101, 101)), [f"c{i}" for i in range(101)])
    assert "per_class" not in curve and set(curve["mean"]) == {1.0}
    assert pr_curve(np.full((2, 101), np.nan), ["a", "b"]) is None


def test_a_record_of_another_version_or_without_its_fields_is_refused():
    data = record(1, 0.5).to_dict()
    with pytest.raises(ValueError, match="version 2; this code reads version 1"):
        ValidationRecord.from_dict({**data, "version": 2})
    with pytest.raises(ValueError, match="without metrics, task"):
        ValidationRecord.from_dict({k: v for k, v in data.items() if k not in ("metrics", "task")})
    with pytest.raises(ValueError, match="Unknown source 'test'"):
        ValidationRecord.of(classification_results(np.eye(2), ["a", "b"]), task="image_classification", epoch=1,
                            step=1, source="test")


def test_every_epoch_is_kept_for_a_small_matrix(tmp_path):
    writer = ResultsWriter(tmp_path, "image_classification")
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6], start=1):
        path = writer.write(record(epoch, accuracy))
        assert path == tmp_path / "results" / "val" / f"epoch-{epoch:04d}.json"
    index = read_index(tmp_path)
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [
        (1, 10, "epoch-0001.json"), (2, 20, "epoch-0002.json"), (3, 30, "epoch-0003.json")]
    assert [e["metrics"]["val/accuracy"] for e in index] == [0.5, 0.7, 0.6]
    assert read_record(tmp_path, 2).metrics["val/accuracy"] == 0.7
    assert sorted(p.name for p in (tmp_path / RESULTS_FOLDER).iterdir()) == [
        "epoch-0001.json", "epoch-0002.json", "epoch-0003.json", INDEX_FILE]  # no partial files left


def test_a_validation_written_again_replaces_its_entry(tmp_path):
    writer = ResultsWriter(tmp_path, "image_classification")
    writer.write(record(1, 0.5))
    writer.write(record(2, 0.6))
    writer.write(record(2, 0.9))  # a resumed run validating epoch 2 again
    assert [(e["epoch"], e["metrics"]["val/accuracy"]) for e in read_index(tmp_path)] == [(1, 0.5), (2, 0.9)]


def test_a_large_matrix_keeps_only_the_best_and_the_last_epochs_file(tmp_path):
    writer = ResultsWriter(tmp_path, "image_classification")
    kept = []
    for epoch, accuracy in enumerate([0.5, 0.7, 0.6, 0.65, 0.8], start=1):
        writer.write(record(epoch, accuracy, classes=101))
        kept.append(sorted(p.name for p in (tmp_path / RESULTS_FOLDER).glob("epoch-*.json")))
    assert kept == [["epoch-0001.json"], ["epoch-0002.json"], ["epoch-0002.json", "epoch-0003.json"],
                    ["epoch-0002.json", "epoch-0004.json"], ["epoch-0005.json"]]
    index = read_index(tmp_path)
    assert [e["file"] for e in index] == [None, None, None, None, "epoch-0005.json"]
    assert [e["metrics"]["val/accuracy"] for e in index] == [0.5, 0.7, 0.6, 0.65, 0.8]  # every epoch's metrics
    with pytest.raises(FileNotFoundError, match="no validation record of epoch 3"):
        read_record(tmp_path, 3)


def test_the_best_follows_the_tasks_primary_metric_lower_is_better_too(tmp_path):
    writer = ResultsWriter(tmp_path, "ocr", keep_every_epoch_up_to=0)
    for epoch, cer in enumerate([0.4, 0.2, 0.3], start=1):
        writer.write(ValidationRecord(task="ocr", epoch=epoch, step=epoch, source="training", evaluator="test",
                                      classes=["x"], metrics={"val/cer": cer}, per_class=[]))
    assert [e["file"] for e in read_index(tmp_path)] == [None, "epoch-0002.json", "epoch-0003.json"]


def test_an_index_before_any_validation_is_empty(tmp_path):
    assert read_index(tmp_path) == [] and ResultsWriter(tmp_path, "ocr").index() == []
