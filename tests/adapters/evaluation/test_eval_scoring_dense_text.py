"""``eval``'s scorers of depth estimation, image captioning and visual QA (``adapters.evaluation.scoring``,
``scoring_text``) on hand-made records and predict results with known answers; host only, no torch."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from adapters.datasets.captions import CaptionRecord
from adapters.datasets.records import ImageRecord
from adapters.evaluation.record import ValidationRecord
from adapters.evaluation.scoring import SCORERS, DepthScorer, make_scorer
from adapters.evaluation.scoring_text import CaptionScorer, VQAScorer
from adapters.metrics import PRIMARY_METRICS, VAL_ABS_REL, VAL_BLEU4, VAL_CIDER, VAL_DELTA1, VAL_RMSE, VAL_VQA_ACCURACY


def test_every_task_with_a_primary_metric_has_a_scorer_that_reports_it_under_its_training_name():
    """The names a scorer reports are those training reports (``adapters.metrics``): a depth, captioning and VQA
    evaluation's primary metric is there."""
    for task in ("depth_estimation", "image_captioning", "visual_qa", "zero_shot_classification",
                 "zero_shot_detection"):
        assert task in SCORERS, task
    assert (SCORERS["depth_estimation"], SCORERS["image_captioning"], SCORERS["visual_qa"]) == (
        DepthScorer, CaptionScorer, VQAScorer)
    assert [PRIMARY_METRICS[t].name for t in ("depth_estimation", "image_captioning", "visual_qa")] == [
        VAL_ABS_REL, VAL_CIDER, VAL_VQA_ACCURACY]


# ---------------------------------------------------------------- depth


def depth_record(root, name: str, metres: np.ndarray) -> ImageRecord:
    (root / "depth").mkdir(parents=True, exist_ok=True)
    np.save(root / "depth" / f"{name}.npy", metres.astype(np.float32))
    return ImageRecord(str(root / "images" / f"{name}.png"), depth=str(root / "depth" / f"{name}.npy"))


def millimetres_png(metres: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(metres * 1000).clip(1, 65535).astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def metric(depth_m=None, png=None, kind="metric") -> dict:
    out = {"predictions": [], "depth": {"kind": kind, "unit": "m"}}
    if depth_m is not None:
        out["depth_m"] = np.asarray(depth_m, dtype=np.float32)
    if png is not None:
        out["depth_png"] = png
    return out


def test_depth_is_scored_per_image_over_valid_pixels_then_averaged(tmp_path):
    """Image a: truth 1, 2, 4 m and an invalid 0 (predicted 7 m there: not scored), everything predicted 1.25 x too
    deep: AbsRel 0.25, δ1 0 (a ratio of 1.25 is not under 1.25), RMSE sqrt((0.25² + 0.5² + 1²) / 3). Image b exact."""
    truth_a, truth_b = np.array([[1.0, 2.0], [4.0, 0.0]]), np.array([[2.0, 3.0], [1.5, 0.5]])
    records = [depth_record(tmp_path, "a", truth_a), depth_record(tmp_path, "b", truth_b)]
    scorer = make_scorer("depth_estimation", str(tmp_path), [], [])
    scorer.update(records, [metric(np.where(truth_a > 0, truth_a * 1.25, 7.0)), metric(truth_b)])
    evaluation = scorer.evaluation()
    rmse_a = math.sqrt((0.25 ** 2 + 0.5 ** 2 + 1.0 ** 2) / 3)
    assert evaluation.metrics == pytest.approx({VAL_ABS_REL: 0.125, VAL_RMSE: rmse_a / 2, VAL_DELTA1: 0.5})
    assert [(r["image"], r["pixels"]) for r in evaluation.per_image] == [("images/a.png", 3), ("images/b.png", 4)]
    assert evaluation.per_image[0]["abs_rel"] == pytest.approx(0.25) and evaluation.classes == []
    record = ValidationRecord.of(evaluation, task="depth_estimation", epoch=None, step=None, source="eval")
    assert ValidationRecord.from_json(record.to_json()).metrics == pytest.approx(evaluation.metrics)


def test_depth_from_the_millimetre_png_when_no_float_map_is_given(tmp_path):
    truth = np.array([[1.2344, 2.0], [0.0, 0.8]])  # the PNG holds 1234 mm: 0.4 mm short
    scorer = DepthScorer(str(tmp_path), [], [])
    scorer.update([depth_record(tmp_path, "a", truth)], [metric(png=millimetres_png(truth))])
    got = scorer.evaluation().metrics
    assert got[VAL_ABS_REL] == pytest.approx((abs(1.234 - 1.2344) / 1.2344) / 3, rel=1e-3)  # the .npy is float32
    assert got[VAL_DELTA1] == 1.0


@pytest.mark.parametrize(("result", "says"), [
    (metric(np.ones((2, 2)), kind="relative"), "predicts relative depth"),
    (metric(np.ones((3, 2))), "is 2x3 px but its depth map"),
    ({"predictions": [], "depth": {"kind": "metric"}}, "returned no depth map for"),
])
def test_depth_refuses_what_it_cannot_score(tmp_path, result, says):
    scorer = DepthScorer(str(tmp_path), [], [])
    with pytest.raises(ValueError, match=says):
        scorer.update([depth_record(tmp_path, "a", np.ones((2, 2)))], [result])


# ---------------------------------------------------------------- captions


def test_captions_are_scored_against_every_reference_of_their_image(tmp_path):
    """Each caption is one of its image's references (a's second one), none shares a word with the other image's:
    BLEU-4 is 1 (with a's first reference alone it would not be), CIDEr-D what the evaluator gives for them."""
    refs_a = ("a red square on white", "one small red block sits here")
    refs_b = ("two blue circles near green grass",)
    records = [CaptionRecord(str(tmp_path / "images" / "a.png"), captions=refs_a),
               CaptionRecord(str(tmp_path / "images" / "b.png"), captions=refs_b)]
    scorer = make_scorer("image_captioning", str(tmp_path), [], [])
    scorer.update(records[:1], [{"text": " One small red block sits here. "}])
    scorer.update(records[1:], [{"text": "two blue circles near green grass"}])
    evaluation = scorer.evaluation()
    assert evaluation.metrics[VAL_BLEU4] == pytest.approx(1.0)
    assert evaluation.metrics[VAL_CIDER] == pytest.approx((cider_of_a := evaluation.per_image[0]["cider"]) / 2 + 5.0)
    assert 0 < cider_of_a < 10.0  # averaged over a's two references, one of them unlike the caption
    assert [(r["image"], r["references"]) for r in evaluation.per_image] == [("images/a.png", list(refs_a)),
                                                                             ("images/b.png", list(refs_b))]
    assert evaluation.per_image[1]["cider"] == pytest.approx(10.0)  # the caption is its only reference


def test_a_result_without_text_is_an_error_naming_the_image(tmp_path):
    scorer = CaptionScorer(str(tmp_path), [], [])
    with pytest.raises(ValueError, match="returned no text for .*a.png"):
        scorer.update([CaptionRecord(str(tmp_path / "a.png"), captions=("x",))], [{"predictions": []}])


# ---------------------------------------------------------------- visual QA


def qa(name: str, question: str, answers: list[str]) -> ImageRecord:
    return ImageRecord(f"/data/val/images/{name}.png", question=question, answers=tuple(answers),
                       label_file="/data/val/questions.jsonl")


def test_each_answer_scores_the_vqa_accuracy_against_the_answers_people_gave():
    """Ten answers each: "2" was given by two people ("two" and "2" are one answer once normalised): 0.6; "yes" by
    four: 1.0; "blue" by none: 0."""
    records = [qa("0", "How many dogs?", ["two", "2", *["3"] * 8]), qa("0", "Is it a dog?", ["yes"] * 4 + ["no"] * 6),
               qa("1", "What colour?", ["red"] * 10)]
    scorer = make_scorer("visual_qa", "/data", [], [])
    assert scorer.per_image_options(records) == {"questions": ["How many dogs?", "Is it a dog?", "What colour?"]}
    assert [scorer.options(r) for r in records] == [{"question": "How many dogs?"}, {"question": "Is it a dog?"},
                                                    {"question": "What colour?"}]
    scorer.update(records, [{"text": "Two"}, {"text": "yes"}, {"text": "blue", "predictions": []}])
    evaluation = scorer.evaluation()
    assert evaluation.metrics == pytest.approx({VAL_VQA_ACCURACY: (0.6 + 1.0 + 0.0) / 3})
    assert [(r["image"], r["question"], r["score"]) for r in evaluation.per_image] == [
        ("val/images/1.png", "What colour?", 0.0), ("val/images/0.png", "How many dogs?", pytest.approx(0.6)),
        ("val/images/0.png", "Is it a dog?", 1.0)]


def test_a_record_without_a_question_is_an_error_naming_its_file():
    with pytest.raises(ValueError, match="questions.jsonl: a record of /data/val/images/0.png has no question"):
        VQAScorer("/data", [], []).per_image_options([qa("1", "Is it?", ["yes"]), qa("0", " ", ["yes"])])
    with pytest.raises(ValueError, match="questions.jsonl: a record of /data/val/images/0.png has no question"):
        VQAScorer("/data", [], []).options(qa("0", " ", ["yes"]))
