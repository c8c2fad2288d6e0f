"""Visual question answering: the VQA accuracy, with answers normalised as the VQA evaluation does.

The official evaluation (``vqaEval.py`` of the VQA challenge, the GT-Vision-Lab/VQA tools that
VQA v2 results are reported with) scores a predicted answer against the answers people gave to
the question (ten in VQA v2, repeats included) as

    accuracy = mean over each answer h of  min(1, #(the other answers equal to the prediction) / 3)

that is, ``min(#humans who gave that answer / 3, 1)`` averaged over the 10-choose-9 subsets of the
ten answers: an answer three people gave is fully right. For ten answers a prediction given by
1, 2, 3 and 4+ people scores 0.3, 0.6, 0.9 and 1.0. The same leave-one-out mean is what the
official code computes for any count of answers, and ``vqa_score`` does so from four answers on.
With three answers or fewer no leave-one-out subset can hold three matches (one answer would
always score 0), so there a prediction scores ``min(#matches / #answers, 1)``: with a single
answer, exact match.

Answers are compared after ``normalize_answer``, the evaluation's ``processPunctuation`` and
``processDigitArticle``: newlines and tabs become spaces; punctuation is removed (when it touches
a space, or anywhere in a text with a comma between digits) or becomes a space; a period not
before a digit goes; then lowercase, number words ``none``/``zero`` … ``ten`` become digits,
the articles ``a``, ``an``, ``the`` go, and contractions written without their apostrophe get
it back (``dont`` → ``don't``). The official code normalises only the prediction (VQA v2's
answers were normalised when the dataset was made) and the people's answers by punctuation when
they disagree; a dataset of ours is not normalised, so every answer gets the whole normalisation.

Plain Python: no torch, so the host can score answers too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_VQA_ACCURACY

EVALUATOR = "visionyard.vqa"
#: A record lists this many questions at most, the worst first (the metric covers every one).
PER_IMAGE_LIMIT = 100
#: An answer given by this many people is fully right.
HUMANS_FOR_FULL_SCORE = 3
#: From this many answers on the score is the official leave-one-out mean (below, see the module).
LEAVE_ONE_OUT_FROM = HUMANS_FOR_FULL_SCORE + 1

NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?",
               "!")
COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
#: The evaluation's ``periodStrip``: a period that no digit follows (its look-behind is written as a look-ahead,
#: so a period after a digit goes too: "2." → "2").
PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
#: The evaluation's contractions: each written without its apostrophe(s) → with them. Space-separated pairs
#: ``bare=written``; the evaluation's own quirks are kept (``somebody'd`` → ``somebodyd``), so scores match its.
CONTRACTIONS = dict(pair.split("=", 1) for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't
havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's Id've=I'd've
I'dve=I'd've Im=I'm Ive=I've isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll let's=let's maam=ma'am
mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've mustnt=mustn't mustve=must've
neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at
shant=shan't shed've=she'd've she'dve=she'd've she's=she's shouldve=should've shouldnt=shouldn't
shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've
somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd someoned've=someone'd've
someone'dve=someone'd've someonell=someone'll someones=someone's somethingd=something'd
somethingd've=something'd've something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd theyd've=they'd've
they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've
we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's
whered=where'd wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's
whove=who've whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't
wouldnt've=wouldn't've wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've
y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll youre=you're
youve=you've
""".split())


def normalize_answer(text: str) -> str:
    """``text`` as the VQA evaluation compares answers (see the module)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    out = text
    comma_in_number = COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in PUNCTUATION:
        if mark + " " in text or " " + mark in text or comma_in_number:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    out = PERIOD.sub("", out)
    words = [NUMBER_WORDS.get(word, word) for word in out.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def vqa_score(prediction: str, answers: Sequence[str]) -> float:
    """The VQA accuracy of one predicted answer against the people's ``answers`` (see the module); 0.0 without
    answers."""
    if not answers:
        return 0.0
    predicted = normalize_answer(prediction)
    matches = sum(normalize_answer(answer) == predicted for answer in answers)
    return _score(matches, len(answers))


def answer_scores(answers: Sequence[str]) -> dict[str, float]:
    """Each distinct normalised answer's :func:`vqa_score` against ``answers``: the soft targets a classifier
    over an answer vocabulary trains with (ViLT's), the most common answer first."""
    counts = Counter(normalize_answer(answer) for answer in answers)
    return {answer: _score(count, len(answers)) for answer, count in counts.most_common()}


def _score(matches: int, total: int) -> float:
    if total < LEAVE_ONE_OUT_FROM:
        return min(1.0, matches / total)
    # leave-one-out: a left-out matching answer leaves matches - 1, each other one leaves matches
    left = matches * min(1.0, (matches - 1) / HUMANS_FOR_FULL_SCORE) if matches else 0.0
    kept = (total - matches) * min(1.0, matches / HUMANS_FOR_FULL_SCORE)
    return (left + kept) / total


def vqa_results(predicted: Sequence[str], answers: Sequence[Sequence[str]], questions: Sequence[str],
                images: Sequence[str], limit: int = PER_IMAGE_LIMIT) -> Evaluation:
    """``val/vqa_accuracy``, the mean of every question's :func:`vqa_score`, and ``per_image`` rows ``{"image",
    "question", "prediction", "answers", "score"}``: the ``limit`` worst questions, the lowest score first (then in
    the order given). No classes, no confusion matrix."""
    if not len(predicted) == len(answers) == len(questions) == len(images):
        raise ValueError(f"{len(predicted)} predictions, {len(answers)} answer lists, {len(questions)} questions and "
                         f"{len(images)} images")
    scores = [vqa_score(p, a) for p, a in zip(predicted, answers, strict=True)]
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))[:limit]
    per_image: list[dict[str, Any]] = [{"image": images[i], "question": questions[i], "prediction": predicted[i],
                                        "answers": list(answers[i]), "score": scores[i]} for i in order]
    metrics = {VAL_VQA_ACCURACY: sum(scores) / len(scores) if scores else 0.0}
    return Evaluation(evaluator=EVALUATOR, classes=[], metrics=metrics, per_class=[], per_image=per_image)
