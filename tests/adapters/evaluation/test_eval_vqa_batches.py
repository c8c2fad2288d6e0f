"""``eval`` of visual QA (``adapters.evaluate.predict_all`` with the VQA scorer): a batch of questions, each about its
own image and most of them different, goes to the adapter's ``predict_batch`` in one call, each image with its own
question (``questions``, in order); an adapter with ``predict`` only is asked each image with its question, and
one that takes a single ``question`` a call each question apart. Stand-in adapters that answer from the question,
so the VQA accuracy is known."""

from __future__ import annotations

import io

import pytest

from adapters.datasets.records import ImageRecord
from adapters.evaluate import predict_all
from adapters.evaluation.scoring import make_scorer
from adapters.metrics import VAL_VQA_ACCURACY

#: question → the stand-in's answer
ANSWERS = {"What colour is it?": "red", "Is it red?": "yes", "How many are there?": "2", "What shape is it?": "square",
           "Is it blue?": "no"}


def records() -> list[ImageRecord]:
    """Six questions about three images (two each); the last one answered wrong."""
    asked = [("a.png", "What colour is it?", "red"), ("a.png", "Is it red?", "yes"),
             ("b.png", "How many are there?", "two"), ("b.png", "What shape is it?", "square"),
             ("c.png", "Is it blue?", "no"), ("c.png", "What colour is it?", "blue")]
    return [ImageRecord(path, 32, 32, question=question, answers=(answer,)) for path, question, answer in asked]


class Batched:
    """Each call's images and questions; each image answered from its own question."""

    def __init__(self):
        self.calls = []

    def predict_batch(self, images, top_k, annotate, questions=None):
        self.calls.append((list(images), list(questions)))
        return [{"text": ANSWERS[question], "predictions": []} for question in questions]


def test_a_batch_of_different_questions_is_one_call_each_image_with_its_question():
    adapter, scorer = Batched(), make_scorer("visual_qa", ".", [], [])
    progress = io.StringIO()
    predict_all(adapter, scorer, records(), None, 4, progress)
    assert adapter.calls == [(["a.png", "a.png", "b.png", "b.png"],
                              ["What colour is it?", "Is it red?", "How many are there?", "What shape is it?"]),
                             (["c.png", "c.png"], ["Is it blue?", "What colour is it?"])]
    evaluation = scorer.evaluation()
    assert evaluation.metrics[VAL_VQA_ACCURACY] == pytest.approx(5 / 6)  # "two" is normalised to "2"
    assert evaluation.per_image[0] == {"image": "c.png", "question": "What colour is it?", "prediction": "red",
                                       "answers": ["blue"], "score": 0.0}
    assert progress.getvalue().splitlines() == ['{"done": 4, "total": 6}', '{"done": 6, "total": 6}']


def test_an_adapter_without_predict_batch_is_asked_each_image_with_its_question():
    class OneByOne:
        def __init__(self):
            self.calls = []

        def predict(self, image, top_k, questions=None):
            self.calls.append((image, questions))
            return {"text": ANSWERS[questions[0]], "predictions": []}

    adapter, scorer = OneByOne(), make_scorer("visual_qa", ".", [], [])
    predict_all(adapter, scorer, records()[:3], None, 8, io.StringIO())
    assert adapter.calls == [("a.png", ["What colour is it?"]), ("a.png", ["Is it red?"]),
                             ("b.png", ["How many are there?"])]
    assert scorer.evaluation().metrics[VAL_VQA_ACCURACY] == pytest.approx(1.0)


def test_a_record_without_a_question_is_an_error_naming_its_file():
    lost = [*records()[:2], ImageRecord("d.png", 32, 32, question="  ", answers=("red",), label_file="q.jsonl")]
    with pytest.raises(ValueError, match="q.jsonl: a record of d.png has no question"):
        predict_all(Batched(), make_scorer("visual_qa", ".", [], []), lost, None, 8, io.StringIO())


def test_an_adapter_that_takes_one_question_a_call_is_asked_each_question_apart():
    """A predict of the first contract (``question``: one for all the images of a call): the records of a batch
    asking the same question go together."""
    class OneQuestion:
        def __init__(self):
            self.calls = []

        def predict_batch(self, images, top_k, annotate, question=None):
            self.calls.append((list(images), question))
            return [{"text": ANSWERS[question], "predictions": []} for _ in images]

    adapter, scorer = OneQuestion(), make_scorer("visual_qa", ".", [], [])
    predict_all(adapter, scorer, records(), None, 8, io.StringIO())
    assert adapter.calls == [(["a.png", "c.png"], "What colour is it?"), (["a.png"], "Is it red?"),
                             (["b.png"], "How many are there?"), (["b.png"], "What shape is it?"),
                             (["c.png"], "Is it blue?")]
    assert scorer.evaluation().metrics[VAL_VQA_ACCURACY] == pytest.approx(5 / 6)
