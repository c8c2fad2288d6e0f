"""Captioning scores (plain Python, host) against the COCO caption evaluation's own: the tokenisation against Stanford
PTBTokenizer 3.4.1's output, CIDEr-D and BLEU on a fixed example against pycocoevalcap 1.2's values, hand-made cases
with known answers, and the record's per-sample rows, the lowest CIDEr-D first.

The expected values were computed once with ``pycocoevalcap==1.2`` (``PTBTokenizer`` under Java 17, then
``Bleu(4)`` and ``Cider()``) on exactly the strings below, and are written here: no Java, no download at test time."""

from __future__ import annotations

import json
import math

import pytest

from adapters.evaluation.captions import bleu, caption_metrics, caption_results, cider_d, tokenize
from adapters.evaluation.record import ValidationRecord

#: (caption, what pycocoevalcap scores: ``PTBTokenizer -preserveLines -lowerCase`` then its punctuation dropped).
PTB_CASES = [
    ("A man riding a wave on top of a surfboard.", "a man riding a wave on top of a surfboard"),
    ('Two dogs (one black, one white) play in the "park".',
     "two dogs -lrb- one black one white -rrb- play in the park"),  # bracket names survive: lowercased first
    ("The cat's toy isn't here; it's under the couch!", "the cat 's toy is n't here it 's under the couch"),
    ("A black-and-white photo of a U.S. flag, circa 1950...", "a black-and-white photo of a u.s. flag circa 1950"),
    ("She said 'hello' to the man -- then left.", "she said hello to the man then left"),
    ("A man holding a $5 bill and a 50% off coupon.", "a man holding a $ 5 bill and a 50 % off coupon"),
    ("A plate with food / drink and a fork*knife", "a plate with food / drink and a fork * knife"),
    ("People at the [concert] {outside} can't see.",
     "people at the -lsb- concert -rsb- -lcb- outside -rcb- ca n't see"),
    ("A DOG WON'T STOP BARKING AT MR. SMITH'S HOUSE.", "a dog wo n't stop barking at mr. smith 's house"),
    ("Items: apples, oranges & bananas; 3.5 lbs total - cheap.", "items apples oranges & bananas 3.5 lbs total cheap"),
    ("An old man's hat, the kids' toys and the kids 'toys.", "an old man 's hat the kids toys and the kids toys"),
    ("A cannot gonna wanna gotta lemme", "a can not gon na wan na got ta lem me"),
    ("A man's  face  is   seen.", "a man 's face is seen"),
    ("cafe naïve résumé – em—dash … ellipsis “curly” ‘single’", "cafe naïve résumé em dash ellipsis curly single"),
    ("A street sign at 5th ave. and 42nd st.", "a street sign at 5th ave. and 42nd st."),
    ("a 2x4 board, 10:30 am, 1,000 people, #1 fan, @home", "a 2x4 board 10:30 am 1,000 people # 1 fan @home"),
    ("what?! no!!! really??", "what ?! no !!! really ??"),  # a run of ?/! is one token, not in the dropped list
    ("dog,cat and food/drink and 1/2 cup", "dog cat and food/drink and 1/2 cup"),
    ("it’s a dog’s life and they’re “happy”", "it 's a dog 's life and they 're happy"),
    ("a sign with the letter a.", "a sign with the letter a."),
    ("don't. toys'. ok.", "do n't toys ok"),
    ("at 3:00pm a x-ray shows -5 degrees", "at 3:00 pm a x-ray shows -5 degrees"),
    ("apples, oranges, etc. on a table vs. chairs no. 5", "apples oranges etc. on a table vs. chairs no. 5"),
    ("the dog. the cat. the end", "the dog the cat the end"),
    ("two--three dogs...and cats", "two three dogs and cats"),
    ("A black and white photo of a street in the 1940's.", "a black and white photo of a street in the 1940 's"),
    ("Flowers in a vase (roses and tulips) on a table.", "flowers in a vase -lrb- roses and tulips -rrb- on a table"),
    ("A cake that says 'Happy Birthday' on it.", "a cake that says happy birthday on it"),
    ("Pizza! Pizza! Pizza!", "pizza pizza pizza"),
    ("hello , world .", "hello world"),
]


@pytest.mark.parametrize(("caption", "tokens"), PTB_CASES, ids=[c[:30] for c, _ in PTB_CASES])
def test_tokenisation_matches_what_pycocoevalcap_scores(caption, tokens):
    assert tokenize(caption) == tokens


# ---------------------------------------------------------------- a fixed example, pycocoevalcap's values

REFERENCES = [
    ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.",
     "A person on a surfboard riding a wave.", "Man surfing on a big, blue wave!"],
    ["Two dogs playing with a frisbee in the park.", "A couple of dogs run on the grass (with a toy).",
     "Dogs chasing a red frisbee across a field."],
    ["A plate of food with broccoli, carrots and rice.", "A dish of rice and vegetables on a white plate.",
     "Broccoli and carrots next to rice on a plate.", "A healthy meal: rice, broccoli & carrots."],
    ["The cat's sleeping on the laptop keyboard.", "A cat lying on top of an open laptop.",
     "A grey cat naps on a computer's keys."],
    ["A red double-decker bus driving down the street.", "A big red bus on a city street.",
     "A double decker bus stopped at a bus stop."],
    ["A stop sign at the corner of 5th Ave. and Main St.", "A red stop sign on a street corner.",
     "A street sign and a stop sign on a pole."],
]
CANDIDATES = ["A man riding a wave on a surfboard.", "Two dogs playing in the grass.",
              "A plate of rice, broccoli and carrots.", "A cat sleeping on a laptop.", "Bus.",
              "A pizza with cheese on a table."]
#: pycocoevalcap 1.2: ``Cider().compute_score`` and ``Bleu(4).compute_score`` (per image, then the set).
PYCOCOEVALCAP_CIDER = [3.158393191145723, 1.3164774461356787, 2.469073113235885, 1.4459913432126916,
                       0.6919228346800099, 0.002875526451001351]
PYCOCOEVALCAP_CIDER_SET = 1.5141222424768317
PYCOCOEVALCAP_BLEU_SET = [0.6286264990030183, 0.5684031916933535, 0.42438849184689115, 0.304221127156977]
PYCOCOEVALCAP_BLEU4 = [0.8408964150152106, 6.47459127621983e-05, 9.999999996672622e-05, 1.07146422154031e-08,
                       2.8836239647789742e-08, 6.701444468735928e-09]
PYCOCOEVALCAP_BLEU1 = [0.9999999997500004, 0.7165313103349458, 0.9999999997142859, 0.7165313103349458,
                       0.0009118819637307612, 0.3715190997867868]


def tokenised():
    return [tokenize(c) for c in CANDIDATES], [[tokenize(r) for r in refs] for refs in REFERENCES]


def test_cider_d_matches_pycocoevalcap_on_the_fixed_example():
    score, each = cider_d(*tokenised())
    assert score == pytest.approx(PYCOCOEVALCAP_CIDER_SET, rel=1e-12)
    assert each == pytest.approx(PYCOCOEVALCAP_CIDER, rel=1e-12)


def test_bleu_matches_pycocoevalcap_on_the_fixed_example():
    corpus, each = bleu(*tokenised())
    assert corpus == pytest.approx(PYCOCOEVALCAP_BLEU_SET, rel=1e-12)
    assert [scores[3] for scores in each] == pytest.approx(PYCOCOEVALCAP_BLEU4, rel=1e-9)
    assert [scores[0] for scores in each] == pytest.approx(PYCOCOEVALCAP_BLEU1, rel=1e-12)


def test_the_evaluation_reports_the_sets_scores_and_each_sample_lowest_cider_first():
    evaluation = caption_results(CANDIDATES, REFERENCES, [f"{i}.jpg" for i in range(6)])
    assert evaluation.metrics == {"val/cider": pytest.approx(PYCOCOEVALCAP_CIDER_SET, rel=1e-12),
                                  "val/bleu4": pytest.approx(PYCOCOEVALCAP_BLEU_SET[3], rel=1e-12)}
    assert caption_metrics(CANDIDATES, REFERENCES) == {"cider": pytest.approx(PYCOCOEVALCAP_CIDER_SET, rel=1e-12),
                                                       "bleu4": pytest.approx(PYCOCOEVALCAP_BLEU_SET[3], rel=1e-12)}
    assert [row["image"] for row in evaluation.per_image] == ["5.jpg", "4.jpg", "1.jpg", "3.jpg", "2.jpg", "0.jpg"]
    row = evaluation.per_image[1]
    assert row == {"image": "4.jpg", "prediction": "Bus.", "references": REFERENCES[4],
                   "cider": pytest.approx(PYCOCOEVALCAP_CIDER[4], rel=1e-12),
                   "bleu4": pytest.approx(PYCOCOEVALCAP_BLEU4[4], rel=1e-9)}
    assert (evaluation.evaluator, evaluation.classes, evaluation.per_class, evaluation.confusion_matrix) == (
        "visionyard.captions", [], [], None)
    data = json.loads(ValidationRecord.of(evaluation, task="image_captioning", epoch=1, step=3,
                                          source="training").to_json())
    assert data["per_image"][1]["references"] == REFERENCES[4] and data["metrics"]["val/cider"] == pytest.approx(
        PYCOCOEVALCAP_CIDER_SET)
    assert len(caption_results(CANDIDATES, REFERENCES, list("abcdef"), limit=2).per_image) == 2


# ---------------------------------------------------------------- hand-made cases with known answers

def test_cider_d_on_known_cases():
    # one image: every n-gram is in all (one) images' references, so its IDF is log(1/1) = 0
    assert cider_d(["a dog"], [["a dog"]]) == (0.0, [0.0])
    # two images, each caption exactly its one reference, no n-gram shared between them: a cosine of 1 for each n
    # the caption has (3 of 4 for three words, 2 of 4 for two), the mean over n = 1..4, times 10
    score, each = cider_d(["a red bus", "two cats"], [["a red bus"], ["two cats"]])
    assert (score, each) == (pytest.approx(6.25), [pytest.approx(7.5), pytest.approx(5)])
    # 4-grams that don't exist (two words) score 0 for n = 3, 4: the mean over n = 1..4 halves it
    score, each = cider_d(["a dog", "a cat"], [["a dog"], ["a cat"]])
    assert each == [pytest.approx(10.0 * 2 / 4)] * 2  # "a" is in both: IDF 0, so only "dog"/"cat" and the bigram
    # nothing in common, or nothing said: 0
    assert cider_d(["x y", ""], [["a dog"], ["a cat"]])[1] == [0.0, 0.0]
    # the Gaussian length penalty, sigma 6: pycocoevalcap's "length" counts the bigrams (5 vs 2 here: delta 3).
    # Every n-gram weighs log(2) (in one image's references of two, or in none), so each n's cosine is the shared
    # n-grams over the root of the two captions' counts: 1-grams 3 / sqrt(6 * 3), 2-grams 2 / sqrt(5 * 2), 3-grams
    # 1 / sqrt(4 * 1), 4-grams none in the reference
    expected = 10 / 4 * math.exp(-(5 - 2) ** 2 / 72) * (3 / math.sqrt(18) + 2 / math.sqrt(10) + 1 / math.sqrt(4))
    assert cider_d(["p q r s t u", "z"], [["p q r"], ["z"]])[1] == [pytest.approx(expected), pytest.approx(2.5)]


def test_bleu_on_known_cases():
    # a perfect match scores 1 (up to pycocoevalcap's smoothing constants)
    corpus, each = bleu(["a man on a red bus"], [["a man on a red bus", "someone riding"]])
    assert corpus == pytest.approx([1.0] * 4) and each == [pytest.approx([1.0] * 4)]
    # clipped counts: "the the the" against "the cat": 1 correct unigram of 3; brevity: 3 words vs the closest 2
    corpus, _ = bleu(["the the the"], [["the cat"]])
    assert corpus[0] == pytest.approx(1 / 3)
    # the brevity penalty takes the closest reference length, the shorter on a tie (1 and 3 words for 2: 1)
    assert bleu(["a dog"], [["a dog is", "x"]])[0][0] == pytest.approx(1.0)
    assert bleu(["a dog"], [["a dog is here"]])[0][0] == pytest.approx(math.exp(1 - 4 / 2))  # 2 words for 4
    # corpus level: counts summed over the set before the ratio (not a mean of sentence scores)
    corpus, each = bleu(["a b", "c d e f"], [["a b"], ["c x y z"]])
    assert corpus[0] == pytest.approx((2 + 1) / (2 + 4))
    assert [s[0] for s in each] == pytest.approx([1.0, 1 / 4])


def test_mismatched_inputs_are_refused():
    with pytest.raises(ValueError, match="2 captions but 1 reference lists"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one reference"):
        bleu(["a"], [[]])
    with pytest.raises(ValueError, match="1 predictions, 1 reference lists and 2 images"):
        caption_results(["a"], [["a"]], ["x", "y"])
