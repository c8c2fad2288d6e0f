"""The VQA accuracy on hand-made cases with known answers: the official leave-one-out definition (checked against a
literal transcription of the official evaluation's loop), the answer normalisation, the soft targets and the
record's rows, worst first."""

from __future__ import annotations

import pytest

from adapters.evaluation.vqa import answer_scores, normalize_answer, vqa_results, vqa_score
from adapters.metrics import VAL_VQA_ACCURACY


def official_accuracy(prediction: str, answers: list[str]) -> float:
    """The official ``vqaEval.py`` loop, on answers already normalised: each human answer left out in turn (its
    ``answer_id`` makes it unique), ``min(1, matches among the others / 3)``, averaged."""
    people = [{"answer": answer, "answer_id": i} for i, answer in enumerate(answers)]
    accuracies = []
    for left_out in people:
        others = [item for item in people if item != left_out]
        accuracies.append(min(1, len([item for item in others if item["answer"] == prediction]) / 3))
    return sum(accuracies) / len(accuracies)


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)])
def test_ten_answers_score_as_the_official_evaluation(matches, expected):
    """VQA v2's ten answers: 1, 2, 3 people → 0.3, 0.6, 0.9; 4 or more → 1 (not the 1/3, 2/3, 1 of the plain
    min(#/3, 1): the official score averages over the ten subsets of nine)."""
    answers = ["cat"] * matches + ["dog"] * (10 - matches)
    assert vqa_score("cat", answers) == pytest.approx(expected)
    assert vqa_score("cat", answers) == pytest.approx(official_accuracy("cat", answers))


@pytest.mark.parametrize("answers", [["a1", "a1", "b", "c"], ["x", "y", "x", "x", "z"], ["p"] * 6 + ["q"] * 3])
def test_four_or_more_answers_follow_the_official_loop(answers):
    for prediction in set(answers) | {"none of them"}:
        assert vqa_score(prediction, answers) == pytest.approx(official_accuracy(prediction, answers))


@pytest.mark.parametrize("answers, prediction, expected", [
    (["yes"], "yes", 1.0),  # one answer: exact match
    (["yes"], "no", 0.0),
    (["red", "blue"], "red", 0.5),
    (["red", "red"], "red", 1.0),
    (["red", "red", "blue"], "red", 2 / 3),
    ([], "red", 0.0),
])
def test_fewer_than_four_answers_score_the_share_that_matches(answers, prediction, expected):
    assert vqa_score(prediction, answers) == pytest.approx(expected)


@pytest.mark.parametrize("text, normalised", [
    ("Yes", "yes"),
    ("  Yes\n", "yes"),
    ("Two", "2"),
    ("none", "0"),
    ("ten", "10"),
    ("the dog", "dog"),
    ("A Dog.", "dog"),  # a period before no digit goes
    ("an apple", "apple"),
    ("3.5", "3.5"),  # a period before a digit stays
    ("2.", "2"),
    ("10,000", "10000"),  # a comma between digits: every punctuation mark goes
    ("red, white", "red white"),  # a mark touching a space goes
    ("t-shirt", "t shirt"),  # a mark inside a word becomes a space
    ("hot dog?", "hot dog"),
    ("dont", "don't"),  # contractions get their apostrophe back
    ("isnt it", "isn't it"),
    ("it's", "it's"),
    ("The  two   cats", "2 cats"),
    ("somebody'd", "somebodyd"),  # the evaluation's own quirk, kept
])
def test_answers_are_normalised_as_the_vqa_evaluation_does(text, normalised):
    assert normalize_answer(text) == normalised


def test_normalisation_applies_to_the_prediction_and_the_answers():
    assert vqa_score("Two.", ["2", "two", "the two", "2"]) == pytest.approx(1.0)
    assert vqa_score("a Dog", ["dog"]) == 1.0


def test_soft_targets_are_each_answers_score_most_common_first():
    assert answer_scores(["red", "Red", "the red", "white"]) == {"red": pytest.approx(0.75),
                                                                  "white": pytest.approx(0.25)}
    assert answer_scores(["yes"]) == {"yes": 1.0}
    ten = answer_scores(["cat"] * 5 + ["dog"] * 3 + ["cow"] * 2)
    assert list(ten) == ["cat", "dog", "cow"]
    assert ten == {"cat": pytest.approx(1.0), "dog": pytest.approx(0.9), "cow": pytest.approx(0.6)}


def test_results_average_every_question_and_list_the_worst_first():
    predicted = ["red", "no", "blue", "yes"]
    answers = [["red"] * 3 + ["white"], ["yes"], ["blue"] * 10, ["yes"]]
    questions = ["colour?", "red?", "colour?", "red?"]
    images = ["a.png", "a.png", "b.png", "b.png"]
    evaluation = vqa_results(predicted, answers, questions, images)
    assert (evaluation.evaluator, evaluation.classes, evaluation.per_class) == ("visionyard.vqa", [], [])
    assert evaluation.confusion_matrix is None
    assert evaluation.metrics == {VAL_VQA_ACCURACY: pytest.approx((0.75 + 0.0 + 1.0 + 1.0) / 4)}
    assert [(row["image"], row["question"], row["score"]) for row in evaluation.per_image] == [
        ("a.png", "red?", 0.0), ("a.png", "colour?", pytest.approx(0.75)), ("b.png", "colour?", 1.0),
        ("b.png", "red?", 1.0)]
    assert evaluation.per_image[0] == {"image": "a.png", "question": "red?", "prediction": "no", "answers": ["yes"],
                                       "score": 0.0}
    assert len(vqa_results(predicted, answers, questions, images, limit=2).per_image) == 2
    assert vqa_results([], [], [], []).metrics == {VAL_VQA_ACCURACY: 0.0}
    with pytest.raises(ValueError, match="2 predictions, 1 answer lists"):
        vqa_results(["a", "b"], [["a"]], ["q"], ["i"])
