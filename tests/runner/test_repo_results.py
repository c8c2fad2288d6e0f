"""A custom repo's per-class table becomes the job's validation records (runner/core/repo_results.py).

End to end through the in-process daemon: a stand-in YOLOv7 (a local git repo whose train.py prints
what test.py prints, with its own print formats) runs under the shipped yolov7 spec, its log is
parsed, and `results/val/` ends with a record per validated epoch that `GetResults` and
`visionyard results` serve. No env is built: the repo's `{python}` is this interpreter. Then the
record writer alone: a restart's replay, a late line of an older epoch, a write that fails.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from adapters.evaluation.record import read_index, read_record
from log_parsers import ClassRow, MetricUpdate
from protos import visionyard_pb2 as pb
from runner.core.repo_results import RepoResults
from tests.repo_fixtures import copy_shipped_spec, make_git_repo, make_yolo

# train.py and test.py of WongKinYiu/yolov7 @ a207844 as far as the log goes: the train row (tqdm's
# last repaint), the validation header, `all`, and on the last epoch (verbose=nc < 50 and
# final_epoch) a row per class, with the repo's print formats. One row is malformed.
STAND_IN = r'''
import argparse
p = argparse.ArgumentParser()
for flag in ("--weights", "--cfg", "--data", "--hyp", "--device", "--project", "--name"):
    p.add_argument(flag)
p.add_argument("--epochs", type=int)
p.add_argument("--batch-size", type=int)
p.add_argument("--img-size", type=int, nargs=2)
p.add_argument("--workers", type=int)
p.add_argument("--exist-ok", action="store_true")
a = p.parse_args()
pf = "%20s" + "%12i" * 2 + "%12.3g" * 4
for epoch in range(a.epochs):
    print(("\n" + "%10s" * 8) % ("Epoch", "gpu_mem", "box", "obj", "cls", "total", "labels", "img_size"))
    s = ("%10s" * 2 + "%10.4g" * 6) % ("%g/%g" % (epoch, a.epochs - 1), "0G", 0.05, 0.01, 0.02, 0.08, 3, 64)
    print(s + ": 100%|##########| 2/2 [00:01<00:00,  1.00it/s]")
    print(("%20s" + "%12s" * 6) % ("Class", "Images", "Labels", "P", "R", "mAP@.5", "mAP@.5:.95")
          + ": 100%|##########| 1/1 [00:00<00:00,  5.00it/s]")
    print(pf % ("all", 2, 3, 0.5, 0.25 * (epoch + 1), 0.3, 0.1 * (epoch + 1)))
    if epoch == a.epochs - 1:
        print(pf % ("bolt", 2, 2, 0.6, 0.5, 0.4, 0.25))
        print(pf % ("wing nut", 2, 1, 0.4, 1, 0.2, 0.05))
        print(("%20s" + "%12i" * 2 + "%12s" * 4) % ("ghost", 2, 1, "0.1.2", "0.5", "0.5", "0.5"))
print("%g epochs completed in %.3f hours." % (a.epochs, 0.001))
'''


def plain_python_env(folder: Path) -> Path:
    """An env folder whose `bin/python` is this interpreter (the repo's stand-in needs only the stdlib)."""
    python = folder / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return folder


def test_a_repos_per_class_table_becomes_its_validation_records(serve, tmp_path, capsys):
    from runner.cli import main

    daemon = serve()
    daemon.launcher.env = plain_python_env(tmp_path / "python-env")
    url, sha = make_git_repo(tmp_path / "yolov7", {"train.py": STAND_IN, "requirements.txt": "# stdlib only\n"})
    daemon.client.add_repo(copy_shipped_spec("yolov7", str(url), sha, "yolov7-local", tmp_path / "y7.yaml"))
    data = make_yolo(tmp_path / "parts")
    (data / "classes.txt").write_text("bolt\nwing nut\n")
    job = daemon.client.submit({
        "name": "per-class", "framework": "custom", "repo": "yolov7-local", "model": "yolov7-tiny",
        "task": "object_detection", "dataset": {"path": str(data), "format": "yolo"},
        "training": {"epochs": 2, "batch_size": 2, "image_size": 64, "device": "cpu"}})
    final = daemon.wait_final(job.id, timeout=30)
    assert final.state == pb.SUCCEEDED, final.error

    job_dir = daemon.job_dir(job.id)
    index = read_index(job_dir)
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, None, "epoch-0001.json"),
                                                                    (2, None, "epoch-0002.json")]
    assert index[1]["metrics"] == pytest.approx({"val/precision": 0.5, "val/recall": 0.5, "val/mAP50": 0.3,
                                                 "val/mAP50-95": 0.2})
    first, last = read_record(job_dir, 1), read_record(job_dir, 2)
    assert first.per_class == [] and first.classes == ["bolt", "wing nut"]  # validated without a table
    assert (last.job, last.task, last.source, last.evaluator) == (job.id, "object_detection", "training",
                                                                   f"yolov7-local {sha[:7]}")
    assert last.classes == ["bolt", "wing nut"] and last.confusion_matrix is None
    assert last.per_class == [
        {"class": "bolt", "AP50": 0.4, "AP50-95": 0.25, "precision": 0.6, "recall": 0.5, "support": 2},
        {"class": "wing nut", "AP50": 0.2, "AP50-95": 0.05, "precision": 0.4, "recall": 1.0, "support": 1},
    ]  # the malformed row is skipped; the keys are an Ultralytics record's

    reply = daemon.client.results(job.id)  # GetResults: the best epoch by val/mAP50-95
    assert reply.result.epoch == 2 and reply.result.best and [e.epoch for e in reply.epochs] == [1, 2]
    assert [(c.name, c.support, round(c.values["AP50"], 3)) for c in reply.result.per_class] == \
        [("bolt", 2, 0.4), ("wing nut", 1, 0.2)]
    assert reply.epochs[1].metrics["train/loss"] == pytest.approx(0.08)  # what the parser reported besides
    capsys.readouterr()
    assert main(["results", job.id, "--address", f"unix://{daemon.daemon.paths.socket}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"job {job.id} (object_detection): epoch 2 (best) of 2 validated, by yolov7-local {sha[:7]}"
    table = [line.split() for line in out[out.index("per class") + 1:]]
    assert table == [["class", "precision", "recall", "AP50", "AP50-95", "support"],
                     ["bolt", "0.6000", "0.5000", "0.4000", "0.2500", "2"],
                     ["wing", "nut", "0.4000", "1.0000", "0.2000", "0.0500", "1"]]


# ------------------------------------------------------------------ the record writer alone


def writer(job_dir: Path, notes: list[str] | None = None, classes=("cat", "dog")) -> RepoResults:
    return RepoResults(job_dir, "j1", "object_detection", "toy 1234567", list(classes),
                       note=None if notes is None else notes.append)


def val(step: int, value: float) -> MetricUpdate:
    return MetricUpdate(step, {"train/loss": 1.0, "val/mAP50-95": value})


def test_a_restart_replays_without_writing_and_goes_on_with_the_same_validation(tmp_path):
    cat, dog = ClassRow(2, "cat", {"AP50": 0.5}), ClassRow(2, "dog", {"AP50": 0.25})
    before = writer(tmp_path)
    before.add([val(1, 0.1)])
    before.flush()
    before.add([val(2, 0.2), cat])
    before.flush()
    folder = tmp_path / "results" / "val"
    for path in folder.iterdir():
        path.chmod(0o444)  # a write would replace the file: its mode would change
    after = writer(tmp_path)  # a new daemon: the log's lines up to its stored offset, replayed
    after.add([val(1, 0.1)], replay=True)
    after.add([val(2, 0.2), cat], replay=True)
    after.flush()
    assert {path.stat().st_mode & 0o777 for path in folder.iterdir()} == {0o444}
    after.add([dog])  # the rest of epoch 2's table, read live
    after.flush()
    assert [row["class"] for row in read_record(tmp_path, 2).per_class] == ["cat", "dog"]
    assert read_record(tmp_path, 2).metrics == {"val/mAP50-95": 0.2}  # val/ metrics only


def test_a_late_line_of_an_older_epoch_adds_to_its_record(tmp_path):
    results = writer(tmp_path, classes=())
    results.add([val(1, 0.1), ClassRow(1, "cat", {"AP50": 0.5}), val(2, 0.2)])
    results.flush()
    results.add([ClassRow(1, "dog", {"AP50": 0.25})])
    results.flush()
    record = read_record(tmp_path, 1)
    assert [row["class"] for row in record.per_class] == ["cat", "dog"] == record.classes  # as printed
    assert record.metrics == {"val/mAP50-95": 0.1}
    assert [e["epoch"] for e in read_index(tmp_path)] == [1, 2]


def test_a_record_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    (tmp_path / "results").write_text("a file where the folder goes")
    notes: list[str] = []
    results = writer(tmp_path, notes)
    with caplog.at_level(logging.WARNING, logger="visionyard.jobs"):
        for step in (1, 2):
            results.add([val(step, 0.1 * step), ClassRow(step, "cat", {"AP50": 0.5})])
            results.flush()
    assert "could not write the validation record of epoch 1" in caplog.text
    assert len(notes) == 1 and notes[0].startswith("[visionyard] could not write the validation record of epoch 1")
