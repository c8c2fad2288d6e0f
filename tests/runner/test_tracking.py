"""MLflow catches up with the job store: a tracking store that is down loses no run and no point."""

from __future__ import annotations

import time

import pytest

from runner.core import tracking
from runner.core.tracking import Tracker, prepare_sqlite_store


@pytest.mark.slow  # MLflow creates its tables: seconds on a small box
def test_a_tracking_store_that_was_down_gets_the_run_every_point_and_the_end(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setattr(tracking, "RETRY_INITIAL", 0.2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    down = [True]
    real = Tracker._mlflow

    def unreachable(self):
        if down[0]:
            raise ConnectionError("the tracking server does not answer")
        return real(self)

    monkeypatch.setattr(Tracker, "_mlflow", unreachable)
    now = time.time()
    points = [("val/accuracy", 1, 0.5, now), ("val/accuracy", 2, 0.75, now), ("train/loss", 2, 0.3, now)]
    created, ended = [], []
    tracker = Tracker(uri, tmp_path / "artifacts", lambda job, run: created.append(run),
                      metric_points=lambda job: points, on_ended=ended.append)
    try:
        tracker.start_run("job-1", "a run", {"training.epochs": "2"}, {"framework": "timm"})
        tracker.log_metrics("job-1", 1, {"val/accuracy": 0.5})  # no run to log to: caught up at the end
        time.sleep(1.0)
        assert not created
        down[0] = False  # the store is back
        tracker.log_metrics("job-1", 2, {"val/accuracy": 0.75})
        tracker.end_run("job-1", "SUCCEEDED", [])
        deadline = time.monotonic() + 90
        while not ended and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ended == ["job-1"] and len(created) == 1
    finally:
        tracker.close()
    client = MlflowClient(uri)
    run = client.get_run(created[0])
    assert run.info.status == "FINISHED" and run.data.params["training.epochs"] == "2"
    history = client.get_metric_history(created[0], "val/accuracy")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.5), (2, 0.75)]  # each point once
    assert [m.step for m in client.get_metric_history(created[0], "train/loss")] == [2]


@pytest.mark.slow  # MLflow creates its tables: seconds on a small box
def test_a_sweep_run_made_by_a_daemon_that_died_before_storing_it_is_taken_up_not_made_again(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    told = []  # the ids handed to the sweep table; its row never gets one: each daemon dies first

    def sweep_of(job_id):
        return {"sweep_id": "5feb1c2a9d0e", "run_id": "", "name": "lr-search", "on_created": told.append,
                "params": {"sampler": "grid", "trials": "4"}}

    runs = {}
    for job in ("job-1", "job-2"):  # a daemon each; the second starts after the first died
        tracker = Tracker(uri, tmp_path / "artifacts", runs.__setitem__)
        tracker.sweep_of = sweep_of
        try:
            tracker.start_run(job, f"lr-search trial {job[-1]}", {}, {})
            assert tracker.flush(120)
        finally:
            tracker.close()
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT).experiment_id
    parents = client.search_runs([experiment], "tags.`visionyard.sweep_id` = '5feb1c2a9d0e'")
    assert len(parents) == 1 and told == [parents[0].info.run_id] * 2
    assert parents[0].data.params == {"sampler": "grid", "trials": "4"}
    assert {client.get_run(runs[job]).data.tags["mlflow.parentRunId"] for job in runs} == {parents[0].info.run_id}


def test_a_half_created_store_is_moved_aside(tmp_path):
    import sqlite3

    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as db:  # tables, but no schema version: MLflow stopped half-way
        db.execute("CREATE TABLE experiments (id INTEGER)")
    db.close()
    prepare_sqlite_store(f"sqlite:///{path}")
    assert list(tmp_path.glob("mlflow.db.incomplete-*"))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()
    db.close()
    assert not list(tmp_path.glob("mlflow.db.creating-*"))


def test_a_store_left_with_a_hot_journal_by_a_killed_writer_is_kept_whole(tmp_path):
    """A daemon killed in the middle of an MLflow write leaves a hot journal: the store is complete,
    its runs are kept, and the unfinished write is rolled back."""
    import os
    import signal
    import sqlite3

    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num TEXT)")
        db.execute("INSERT INTO alembic_version VALUES ('abc')")
        db.execute("CREATE TABLE runs (run_uuid TEXT)")
        db.execute("INSERT INTO runs VALUES ('kept')")
    db.close()
    pid = os.fork()
    if pid == 0:  # a writer killed mid-transaction, its journal left behind
        db = sqlite3.connect(path)
        db.execute("BEGIN")
        db.executemany("INSERT INTO runs VALUES (?)", [(os.urandom(200).hex(),) for _ in range(20000)])  # spills to the file
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    assert (tmp_path / "mlflow.db-journal").exists()
    prepare_sqlite_store(f"sqlite:///{path}")
    assert not list(tmp_path.glob("mlflow.db.incomplete-*"))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT run_uuid FROM runs").fetchall() == [("kept",)]
    db.close()


@pytest.mark.slow  # MLflow creates its tables: seconds on a small box
def test_a_runs_validation_results_land_in_mlflow_with_the_best_epochs_table_and_figures(tmp_path):
    import json

    import numpy as np
    from mlflow.tracking import MlflowClient

    from adapters.evaluation.classification import classification_results
    from adapters.evaluation.record import ResultsWriter, ValidationRecord

    job_dir = tmp_path / "job"
    writer = ResultsWriter(job_dir, "image_classification")
    for epoch, right in ((1, 5), (2, 9), (3, 7)):  # epoch 2 is the best
        matrix = np.array([[right, 10 - right], [0, 10]])
        evaluation = classification_results(matrix, ["cat", "dog"])
        writer.write(ValidationRecord.of(evaluation, task="image_classification", epoch=epoch, step=epoch,
                                         source="training", job="job-1"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    created, ended = [], []
    tracker = Tracker(uri, tmp_path / "artifacts", lambda job, run: created.append(run), on_ended=ended.append)
    try:
        tracker.start_run("job-1", "a run", {}, {"framework": "timm"})
        tracker.end_run("job-1", "SUCCEEDED", [], results=(job_dir, "image_classification"))
        assert tracker.flush(120) and ended == ["job-1"]
    finally:
        tracker.close()
    client = MlflowClient(uri)
    files = {f.path for folder in ("results", "results/val") for f in client.list_artifacts(created[0], folder)}
    assert {"results/val/epoch-0001.json", "results/val/epoch-0003.json", "results/val/index.json",
            "results/per_class.json", "results/confusion_matrix.png", "results/confusion_matrix_normalised.png",
            "results/per_class_f1.png"} <= files
    table = json.loads(open(client.download_artifacts(created[0], "results/per_class.json", str(tmp_path))).read())
    rows = dict(zip(table["columns"], zip(*table["data"])))
    assert rows["class"] == ("cat", "dog") and rows["recall"][0] == pytest.approx(0.9)  # epoch 2's
