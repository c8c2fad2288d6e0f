"""What `visionyard eval` and `results --evals` say an evaluation counted: a visual QA evaluation's records are
questions (several to an image), so it says questions, in the terminal, its listing and its JSON; every other
task's records are images."""

from __future__ import annotations

import io

from protos import visionyard_pb2 as pb
from runner.cli.output import Output
from runner.cli.results import eval_json, show_eval, show_evals


def evaluation(task: str, count: int, metric: str) -> pb.EvalResponse:
    return pb.EvalResponse(name="best-val", dataset="/data/own", split="val", images=count, seconds=2.5,
                           dataset_hash="blake2b:0123456789abcdef", checkpoint="/jobs/j/best", path="/jobs/j/eval.json",
                           result=pb.ValidationResult(job_id="j", task=task, evaluator=f"visionyard.{task}",
                                                      source="eval", metrics={metric: 0.5}))


def shown(show, *args) -> str:
    text = io.StringIO()
    show(*args, Output(text, environ={}))
    return text.getvalue()


def test_a_visual_qa_evaluation_counts_questions():
    reply = evaluation("visual_qa", 22, "val/vqa_accuracy")
    assert "/jobs/j/best on /data/own (val, 22 questions) by visionyard.visual_qa" in shown(show_eval, reply)
    header = shown(show_evals, "j", [reply]).splitlines()[1]
    assert "questions" in header and "images" not in header
    data = eval_json(reply)
    assert data["questions"] == 22 and data["images"] is None


def test_other_evaluations_count_images():
    reply = evaluation("classification", 8, "val/accuracy")
    assert "(val, 8 images)" in shown(show_eval, reply)
    assert "images" in shown(show_evals, "j", [reply]).splitlines()[1]
    data = eval_json(reply)
    assert data["images"] == 8 and "questions" not in data
