"""The generic ``TrainingAdapter.fit`` loop with a scripted adapter (host env: no torch needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from adapters.base import TrainingAdapter
from adapters.job import Job
from adapters.reporter import Reporter


class ScriptedAdapter(TrainingAdapter):
    """Validation accuracy follows a script; checkpoints are small JSON files."""

    def __init__(self, job, reporter, accuracies):
        super().__init__(job, reporter)
        self.accuracies = accuracies
        self.trained: list[int] = []

    def prepare_dataset(self):
        self.prepared = ["dataset"]

    def prepare_model(self):
        self.prepared.append("model")

    def train_epoch(self, epoch):
        self.trained.append(epoch)
        return {"train/loss": 1.0 / epoch, "lr": 0.1 / epoch}

    def validate(self, epoch):
        return {"val/loss": 1.0, "val/accuracy": self.accuracies[epoch - 1]}

    def save_checkpoint(self, kind, epoch, metrics):
        path = self.checkpoint_path(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metrics": metrics,
        }
        path.write_text(json.dumps(state))
        return path

    def load_checkpoint(self, path):
        return json.loads(Path(path).read_text())


def make_job(tmp_path: Path, epochs: int, patience: int = 0, resume: str | None = None, min_delta: float = 0.0) -> Job:
    spec = {
        "framework": "timm",
        "task": "image_classification",
        "model": "scripted",
        "dataset": {"path": str(tmp_path), "format": "imagefolder"},
        "training": {"epochs": epochs, "batch_size": 1, "learning_rate": 0.1,
                     "early_stopping": {"patience": patience, "min_delta": min_delta} if patience else None},
        "resume": resume,
    }
    return Job.from_dict({"job_id": "j", "job_dir": str(tmp_path), "spec": spec})


def run(tmp_path, server, accuracies, **job_options):
    reporter = Reporter(server.address, "j", "test-token", linger=0.0)
    adapter = ScriptedAdapter(make_job(tmp_path, len(accuracies), **job_options), reporter, accuracies)
    result = adapter.fit()
    assert reporter.close(timeout=5)
    return adapter, result


def test_best_follows_the_primary_metric_and_last_is_every_epoch(tmp_path, reporter_server):
    with reporter_server() as server:
        adapter, result = run(tmp_path, server, [0.5, 0.7, 0.6, 0.8])
    assert adapter.prepared == ["dataset", "model"]
    events = [(c.kind, c.epoch) for c in server.of_kind("checkpoint")]
    assert [e for e in events if e[0] == "last"] == [("last", 1), ("last", 2), ("last", 3), ("last", 4)]
    assert [e for e in events if e[0] == "best"] == [("best", 1), ("best", 2), ("best", 4)]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2, 3, 4]
    assert set(metrics[0].values) == {"train/loss", "val/accuracy", "val/loss", "lr"}
    assert result["best_checkpoint"].endswith("best.pt") and result["metrics"]["val/accuracy"] == 0.8
    reported = server.of_kind("result")[0]
    assert reported.last_checkpoint == str(tmp_path / "checkpoints" / "last.pt")
    assert json.loads((tmp_path / "checkpoints" / "best.pt").read_text())["epoch"] == 4


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path, reporter_server):
    with reporter_server() as server:
        adapter, result = run(tmp_path, server, [0.5, 0.6, 0.6, 0.55, 0.9, 0.95], patience=2)
    assert adapter.trained == [1, 2, 3, 4]
    assert [m.step for m in server.of_kind("metrics")] == [1, 2, 3, 4]
    assert server.kinds()[-1] == "result"
    assert result["metrics"]["val/accuracy"] == 0.55
    note = "stopped early at epoch 4 (no improvement of val/accuracy for 2 epochs)"
    assert result["note"] == server.of_kind("result")[0].note == note
    assert result["best_checkpoint"].endswith("best.pt")
    assert json.loads((tmp_path / "checkpoints" / "best.pt").read_text())["epoch"] == 2  # the best epoch's


def test_early_stopping_counts_only_improvements_above_min_delta(tmp_path, reporter_server):
    """0.5 → 0.505 → 0.509 improves by less than 0.01 each time: stopped at epoch 3, best stays epoch 1's
    for the stopper (the recorder's best checkpoint still follows every improvement)."""
    with reporter_server() as server:
        adapter, result = run(tmp_path, server, [0.5, 0.505, 0.509, 0.9], patience=2, min_delta=0.01)
    assert adapter.trained == [1, 2, 3]
    assert result["note"] == ("stopped early at epoch 3 (no improvement of val/accuracy by more than 0.01 for "
                              "2 epochs)")


def test_a_run_that_reaches_its_last_epoch_has_no_note(tmp_path, reporter_server):
    with reporter_server() as server:
        adapter, result = run(tmp_path, server, [0.5, 0.4, 0.3], patience=2)
    assert adapter.trained == [1, 2, 3] and "note" not in result and server.of_kind("result")[0].note == ""


def test_resume_starts_after_the_saved_epoch_and_keeps_the_best(tmp_path, reporter_server):
    saved = tmp_path / "old.pt"
    saved.write_text(
        json.dumps({"epoch": 2, "best_metric": 0.7, "best_epoch": 2, "metrics": {"val/accuracy": 0.7}})
    )
    with reporter_server() as server:
        adapter, _ = run(tmp_path, server, [0.0, 0.0, 0.65, 0.75], resume=str(saved))
    assert adapter.trained == [3, 4]
    assert [(c.kind, c.epoch) for c in server.of_kind("checkpoint")] == [
        ("last", 3),
        ("last", 4),
        ("best", 4),
    ]


def test_resume_into_a_new_dir_carries_the_best_checkpoint_over(tmp_path, reporter_server):
    old = tmp_path / "old-job"
    old.mkdir()
    (old / "best.pt").write_text(json.dumps({"epoch": 1, "best_metric": 0.9}))
    state = {"epoch": 2, "best_metric": 0.9, "best_epoch": 1, "metrics": {"val/accuracy": 0.5}}
    (old / "last.pt").write_text(json.dumps(state))
    with reporter_server() as server:
        _, result = run(tmp_path / "new-job", server, [0.0, 0.0, 0.6], resume=str(old / "last.pt"))
    copied = tmp_path / "new-job" / "checkpoints" / "best.pt"
    assert json.loads(copied.read_text())["best_metric"] == 0.9
    assert [(c.kind, c.epoch) for c in server.of_kind("checkpoint")] == [("best", 1), ("last", 3)]
    assert result["best_checkpoint"] == str(copied)


def test_resume_of_a_finished_run_reports_its_result(tmp_path, reporter_server):
    saved = tmp_path / "done.pt"
    saved.write_text(
        json.dumps({"epoch": 2, "best_metric": 0.7, "best_epoch": 2, "metrics": {"val/accuracy": 0.7}})
    )
    with reporter_server() as server:
        adapter, result = run(tmp_path, server, [0.1, 0.2], resume=str(saved))
    assert adapter.trained == []
    assert result["last_checkpoint"] == str(saved) and result["metrics"] == {"val/accuracy": 0.7}
    assert server.kinds() == ["result"]


def test_nan_never_becomes_best(tmp_path, reporter_server):
    with reporter_server() as server:
        run(tmp_path, server, [math.nan, math.nan])
    assert [c.kind for c in server.of_kind("checkpoint")] == ["last", "last"]
    assert server.of_kind("result")[0].best_checkpoint == ""
