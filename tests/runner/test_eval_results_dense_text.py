"""What `visionyard eval` / `results` show and draw for an evaluation of depth estimation, image captioning and
visual QA (records made by their real evaluators, through `eval_to_proto` as the daemon answers): the metrics
and the worst samples in the terminal and as JSON; `--plots` writes no gallery, saying why, and does not fail."""

from __future__ import annotations

import io

import numpy as np
import pytest

from adapters.evaluation.captions import caption_results
from adapters.evaluation.depth import depth_results
from adapters.evaluation.record import ValidationRecord
from adapters.evaluation.vqa import vqa_results
from protos import visionyard_pb2 as pb
from runner.cli.output import Output
from runner.cli.results import eval_json, show_eval, write_plots
from runner.daemon.evals import eval_to_proto

EVALUATIONS = {
    "depth_estimation": lambda: depth_results([np.full((2, 2), 2.2), np.ones((2, 2))], [np.full((2, 2), 2.0),
                                                                                       np.ones((2, 2))],
                                              ["val/images/a.png", "val/images/b.png"]),
    "image_captioning": lambda: caption_results(["a red square", "a blue circle on white"],
                                                [["a red square", "red box"], ["a blue circle"]],
                                                ["val/images/a.png", "val/images/b.png"]),
    "visual_qa": lambda: vqa_results(["red", "no"], [["red"] * 10, ["yes"] * 10], ["What colour?", "Is it blue?"],
                                     ["val/images/a.png", "val/images/a.png"]),
}
PRIMARY = {"depth_estimation": "val/abs_rel", "image_captioning": "val/cider", "visual_qa": "val/vqa_accuracy"}


def evaluated(tmp_path, task: str) -> pb.EvalResponse:
    record = ValidationRecord.of(EVALUATIONS[task](), task=task, epoch=None, step=None, source="eval", job="j")
    record.dataset, record.split, record.images = str(tmp_path), "val", 2
    (tmp_path / "best-val").mkdir()
    return eval_to_proto(tmp_path / "best-val", record)


@pytest.mark.parametrize("task", sorted(EVALUATIONS))
def test_an_eval_shows_its_metrics_and_worst_samples_and_draws_no_gallery(tmp_path, task):
    reply = evaluated(tmp_path, task)
    shown = io.StringIO()
    show_eval(reply, Output(shown, environ={}))
    text = shown.getvalue()
    worst = "questions" if task == "visual_qa" else "images"
    assert f"job j ({task})" in text and PRIMARY[task] in text and f"the 2 worst {worst}" in text
    data = eval_json(reply)
    assert data["task"] == task and PRIMARY[task] in data["metrics"] and len(data["per_image"]) == 2
    assert data["confusion_matrix"] is None and data["per_class"] == []
    notes: list[str] = []
    assert write_plots(pb.GetResultsResponse(result=reply.result), str(tmp_path / "plots"), note=notes.append) == []
    assert notes == [f"no gallery.png: an eval of {task} keeps no boxes or labels to draw, only each image's scores, "
                     "which `visionyard eval` lists (the worst first; all with --json)"]


def test_a_trainings_results_of_these_tasks_draw_their_curves_with_no_note(tmp_path):
    record = ValidationRecord.of(EVALUATIONS["visual_qa"](), task="visual_qa", epoch=1, step=3, source="training")
    from runner.daemon.results import result_to_proto

    reply = pb.GetResultsResponse(result=result_to_proto(record, best=True),
                                  epochs=[pb.ResultsEpoch(epoch=e, step=3 * e, metrics={"val/vqa_accuracy": 0.1 * e,
                                                                                        "val/loss": 1.0 / e})
                                          for e in (1, 2)])
    notes: list[str] = []
    written = write_plots(reply, str(tmp_path), note=notes.append)
    assert [p.rsplit("/", 1)[1] for p in written] == ["curves.png"] and notes == []
