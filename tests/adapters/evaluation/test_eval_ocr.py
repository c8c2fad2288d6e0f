"""Text recognition error rates (plain Python, host): edit distances, CER/WER over a set and per sample, the
worst samples first in the record. torchmetrics agrees (``tests/adapters/transformers/test_hf_ocr.py``)."""

from __future__ import annotations

import json

import pytest

from adapters.evaluation.ocr import edit_distance, ocr_results, text_metrics
from adapters.evaluation.record import ValidationRecord


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0), ("abc", "abc", 0), ("abc", "abd", 1), ("abc", "", 3), ("", "ab", 2),
    ("kitten", "sitting", 3), ("flaw", "lawn", 2), (["the", "cat"], ["the", "dog", "sat"], 2),
])
def test_edit_distance_on_known_cases(a, b, distance):
    assert edit_distance(a, b) == distance == edit_distance(b, a)


@pytest.mark.parametrize(("predicted", "expected", "rates"), [
    (["abd"], ["abc"], {"cer": pytest.approx(1 / 3), "wer": 1.0}),
    (["abc", "the cat"], ["abc", "the cat"], {"cer": 0.0, "wer": 0.0}),
    (["the cat sit"], ["the cat sat"], {"cer": pytest.approx(1 / 11), "wer": pytest.approx(1 / 3)}),
    # summed over the set, not averaged per text: 1 edit in 2 chars + 0 in 8 chars = 1/10
    (["a", "abcdefgh"], ["ab", "abcdefgh"], {"cer": pytest.approx(1 / 10), "wer": pytest.approx(1 / 2)}),
    # insertions can take an error rate past 1
    (["abcd"], ["a"], {"cer": 3.0, "wer": 1.0}),
])
def test_error_rates_on_known_cases(predicted, expected, rates):
    assert text_metrics(predicted, expected) == rates


def test_each_sample_has_its_own_cer_the_worst_first():
    predicted = ["kitten", "abc", "hello wrld", "x", ""]
    expected = ["sitting", "abc", "hello world", "", ""]
    evaluation = ocr_results(predicted, expected, [f"{i}.png" for i in range(5)])
    assert evaluation.per_image == [
        {"image": "3.png", "target": "", "prediction": "x", "cer": 1.0},  # any text against nothing
        {"image": "0.png", "target": "sitting", "prediction": "kitten", "cer": pytest.approx(3 / 7)},
        {"image": "2.png", "target": "hello world", "prediction": "hello wrld", "cer": pytest.approx(1 / 11)},
        {"image": "1.png", "target": "abc", "prediction": "abc", "cer": 0.0},
        {"image": "4.png", "target": "", "prediction": "", "cer": 0.0}]
    # the set's rates: edits over the references' total length, as text_metrics gives them
    assert evaluation.metrics == {"val/cer": pytest.approx((3 + 0 + 1 + 1 + 0) / (7 + 3 + 11)),
                                  "val/wer": pytest.approx((1 + 0 + 1 + 1 + 0) / (1 + 1 + 2))}
    assert evaluation.metrics == {f"val/{k}": v for k, v in text_metrics(predicted, expected).items()}
    assert (evaluation.evaluator, evaluation.classes, evaluation.per_class, evaluation.confusion_matrix) == (
        "visionyard.ocr", [], [], None)
    data = json.loads(ValidationRecord.of(evaluation, task="ocr", epoch=2, step=8, source="training").to_json())
    assert data["per_image"][1] == {"image": "0.png", "target": "sitting", "prediction": "kitten",
                                    "cer": pytest.approx(3 / 7)}


def test_the_record_keeps_the_worst_samples_up_to_its_limit():
    expected = ["abcd"] * 6
    predicted = ["abcd", "abc", "a", "ab", "", "abcd"]
    evaluation = ocr_results(predicted, expected, list("uvwxyz"), limit=3)
    assert [(row["image"], row["cer"]) for row in evaluation.per_image] == [("y", 1.0), ("w", 0.75), ("x", 0.5)]
    assert evaluation.metrics["val/cer"] == pytest.approx((0 + 1 + 3 + 2 + 4 + 0) / 24)  # every sample counts


def test_predictions_references_and_images_must_pair_up():
    with pytest.raises(ValueError, match="2 predictions, 2 references and 1 images"):
        ocr_results(["a", "b"], ["a", "b"], ["0.png"])
