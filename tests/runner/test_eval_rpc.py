"""`EvaluateJob`, `Client.evaluate`, `visionyard eval` and `results --evals` through a real servicer on a real
gRPC server, with a stand-in evaluation child (tests/runner/predict_child.py): what is run, where the result
is kept, what a failure says, what `compare` makes of evaluations on the same data."""

from __future__ import annotations

import json

import grpc
import pytest

from runner.cli import main
from runner.client import Client, ClientError
from runner.core.store import JobState


def evals_run(s, job_dir=None) -> list[list[str]]:
    log = (job_dir or s.job_dir) / "children.log"
    return [json.loads(line.split(" ", 2)[2]) for line in log.read_text().splitlines() if line.startswith("EVAL ")]


def finish(s, job_id: str) -> str:
    for state in (JobState.PREPARING, JobState.RUNNING, JobState.SUCCEEDED):
        s.store.transition(job_id, state)
    return job_id


@pytest.fixture
def evaluated(served):
    s = served()
    finish(s, s.job_id)
    client = Client(s.address)
    yield s, client
    client.close()


def test_an_evaluation_runs_the_child_on_the_checkpoint_and_is_kept(evaluated):
    s, client = evaluated
    reply = client.evaluate(s.job_id)
    folder = s.job_dir / "evals" / "best-val"
    assert (reply.name, reply.path, reply.split, reply.images) == ("best-val", str(folder / "eval.json"), "val", 8)
    assert reply.result.metrics["val/accuracy"] == pytest.approx(7 / 8) and reply.result.source == "eval"
    assert list(reply.result.confusion_matrix.counts) == [3, 1, 0, 4]
    assert reply.checkpoint == str(s.job_dir / "best.pt") and reply.dataset_hash.startswith("blake2b:")
    assert reply.result.dataset == reply.dataset == "/data/own"  # the root of its images, on the result too
    [args] = evals_run(s)
    assert args[args.index("--checkpoint") + 1] == str(s.job_dir / "best.pt")  # a finished job: its own file
    assert {"--split", "val", "--batch", "16", "--device", "cpu"} <= set(args) and "--dataset" not in args
    assert json.loads((folder / "eval.json").read_text())["source"] == "eval"
    assert [p.name for p in (s.job_dir / "evals").iterdir()] == ["best-val"]  # no partial left


def test_another_dataset_is_named_by_its_folder_and_a_running_job_is_evaluated_on_a_copy(evaluated, tmp_path):
    s, client = evaluated
    data = tmp_path / "test set"
    data.mkdir()
    job = s.add_job()
    job_dir = s.paths.job_dir(job)
    s.store.transition(job, JobState.PREPARING)
    s.store.transition(job, JobState.RUNNING)
    reply = client.evaluate(job, dataset=str(data), format="imagefolder", split="all", batch=4)
    assert reply.name.startswith("best-all-test_set-") and reply.dataset == str(data)
    [args] = evals_run(s, job_dir)
    assert args[args.index("--dataset") + 1] == str(data) and args[args.index("--format") + 1] == "imagefolder"
    copy = args[args.index("--checkpoint") + 1]
    assert copy != str(job_dir / "best.pt") and "/.partial-" in copy  # training may replace its file meanwhile
    assert reply.checkpoint == str(job_dir / "best.pt")
    assert not list((job_dir / "evals").glob(".partial-*"))


@pytest.mark.parametrize("fields, says", [
    ({"split": "test"}, "split 'test' is not one: use val, train, all"),
    ({"dataset": "/no/such/data", "format": "yolo"}, "dataset: /no/such/data is not a folder on the daemon's machine"),
    ({"checkpoint": "middle"}, "checkpoint must be 'best' or 'last'"),
    ({"device": "gpu"}, "device 'gpu' is not one"),
])
def test_bad_requests_are_refused_naming_the_field(evaluated, fields, says):
    s, client = evaluated
    with pytest.raises(ClientError) as err:
        client.evaluate(s.job_id, **fields)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and says in str(err.value)


def test_a_dataset_without_its_format_is_refused(evaluated, tmp_path):
    s, client = evaluated
    with pytest.raises(ClientError) as err:
        client.evaluate(s.job_id, dataset=str(tmp_path))
    assert "format: say the dataset's format" in str(err.value)


def test_a_failed_evaluation_says_why_and_keeps_its_log(evaluated, monkeypatch):
    s, client = evaluated
    monkeypatch.setenv("VY_TEST_EVAL", "fail")
    with pytest.raises(ClientError) as err:
        client.evaluate(s.job_id)
    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "failed: the dataset has classes the model does not know: owl" in str(err.value)
    assert (s.job_dir / "evals" / "best-val.failed" / "eval.log").exists()
    assert not (s.job_dir / "evals" / "best-val").exists()


def test_evaluations_are_listed_and_shown(evaluated, tmp_path, capsys):
    s, client = evaluated
    assert main(["eval", s.job_id, "--address", s.address]) == 0
    out = capsys.readouterr().out
    assert f"job {s.job_id} (classification): {s.job_dir / 'best.pt'} on /data/own (val, 8 images)" in out
    assert "val/accuracy: 0.8750" in out and "confusion matrix: 8 counted" in out
    data = tmp_path / "other"
    data.mkdir()
    assert main(["eval", s.job_id, "--dataset", str(data), "--format", "imagefolder", "--json",
                 "--address", s.address]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {"job", "task", "classes", "metrics", "per_class", "confusion_matrix", "dataset", "dataset_hash",
            "checkpoint", "evaluator"} <= set(shown) and shown["dataset"] == str(data)
    listed = client.evaluations(s.job_id)
    assert [e.name for e in listed][1:] == ["best-val"] and listed[0].name.startswith("best-val-other-")
    assert not listed[0].result.per_class and not listed[0].result.curves  # a listing: no per-class rows
    assert listed[0].result.dataset == str(data)
    assert main(["results", s.job_id, "--evals", "--address", s.address]) == 0
    assert "best-val" in capsys.readouterr().out


def test_compare_uses_evaluations_on_the_same_data(evaluated, monkeypatch):
    s, client = evaluated
    other = finish(s, s.add_job())
    client.evaluate(s.job_id)
    monkeypatch.setenv("VY_TEST_EVAL_RIGHT", "5")
    client.evaluate(other)
    reply = client.compare([s.job_id, other])
    assert reply.comparable and "every job evaluated by visionyard.classification on the same data" in reply.note
    assert [j.metrics["val/accuracy"] for j in reply.jobs] == pytest.approx([7 / 8, 5 / 8])
    assert list(reply.classes) == ["red", "blue"] and reply.per_class_key == "recall"
    assert list(reply.jobs[1].per_class) == pytest.approx([0.25, 1.0])


def test_eval_plots_draw_the_evals_own_gallery_and_pr_curves(tmp_path, capsys):
    """What `visionyard eval JOB --plots DIR` draws from the EvaluateJob answer (`eval_to_proto` of the record
    the eval child wrote): its gallery from its per-image rows and dataset, its curves; no note to run eval."""
    import gc

    from PIL import Image

    gc.collect()  # an earlier test's finished gRPC server tasks are collected now, not while this test listens
    capsys.readouterr()

    from adapters.evaluation.detection import detection_results
    from adapters.evaluation.record import ValidationRecord
    from protos import visionyard_pb2 as pb
    from runner.cli.results import write_plots
    from runner.daemon.evals import eval_to_proto

    Image.new("RGB", (64, 48), "white").save(tmp_path / "a.png")
    evaluation = detection_results([{"boxes": [[4, 4, 30, 30]], "labels": [0]}],
                                   [{"boxes": [[4, 4, 30, 30]], "labels": [0], "scores": [0.9]}], ["cat"])
    evaluation.per_image = [{"image": "a.png", "predicted": [{"label": "cat", "score": 0.9, "box": [4, 4, 30, 30]}],
                             "truth": [{"label": "cat", "box": [4, 4, 30, 30]}]}]
    record = ValidationRecord.of(evaluation, task="object_detection", epoch=None, step=None, source="eval", job="j")
    record.dataset, record.split = str(tmp_path), "val"
    (tmp_path / "best-val").mkdir()
    reply = eval_to_proto(tmp_path / "best-val", record)
    written = write_plots(pb.GetResultsResponse(result=reply.result), str(tmp_path / "plots"))
    assert sorted(p.rsplit("/", 1)[1] for p in written) == [
        "confusion_matrix.png", "confusion_matrix_normalised.png", "gallery.png", "per_class_AP50-95.png",
        "pr_curves.png"]
    assert capsys.readouterr().err == ""
