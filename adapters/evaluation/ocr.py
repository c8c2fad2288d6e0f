"""Text recognition (OCR): character and word error rates, and the worst samples named.

CER and WER are torchmetrics' ``CharErrorRate`` and ``WordErrorRate``: the Levenshtein distance of
each prediction to its reference (in characters; in words split on whitespace) summed over the
set, over the references' total length. So a long text weighs more than a short one, and
insertions can take a rate past 1. A sample's own CER is its distance over its reference's length;
against an empty reference any text is an error of 1.0 (and nothing no error).

Plain Python: no torch needed, so the host can score text too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_CER, VAL_WER

EVALUATOR = "visionyard.ocr"
#: A record lists this many samples at most, the worst first (the metrics cover every sample).
PER_IMAGE_LIMIT = 100


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning ``a`` into ``b``."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rate(predicted: Sequence[str], expected: Sequence[str], split: Callable[[str], Sequence]) -> float:
    """Edits summed over all pairs / the expected texts' total length (in units of ``split``)."""
    return _rate(*_edits(predicted, expected, split))


def text_metrics(predicted: Sequence[str], expected: Sequence[str]) -> dict[str, float]:
    """Character and word error rates (``cer``, ``wer``) of ``predicted`` texts against the ``expected`` ones."""
    return {"cer": error_rate(predicted, expected, list), "wer": error_rate(predicted, expected, str.split)}


def ocr_results(predicted: Sequence[str], expected: Sequence[str], images: Sequence[str],
                limit: int = PER_IMAGE_LIMIT) -> Evaluation:
    """``val/cer`` and ``val/wer`` over every sample, and ``per_image`` rows ``{"image", "target",
    "prediction", "cer"}``: the ``limit`` worst samples, the highest CER first (then in the order given).
    No classes, no confusion matrix."""
    if not len(predicted) == len(expected) == len(images):
        raise ValueError(f"{len(predicted)} predictions, {len(expected)} references and {len(images)} images")
    char_edits, char_lengths = _edits(predicted, expected, list)
    word_edits, word_lengths = _edits(predicted, expected, str.split)
    rates = [_rate([edits], [length]) for edits, length in zip(char_edits, char_lengths, strict=True)]
    order = sorted(range(len(rates)), key=lambda i: (-rates[i], i))[:limit]
    per_image: list[dict[str, Any]] = [{"image": images[i], "target": expected[i], "prediction": predicted[i],
                                        "cer": rates[i]} for i in order]
    metrics = {VAL_CER: _rate(char_edits, char_lengths), VAL_WER: _rate(word_edits, word_lengths)}
    return Evaluation(evaluator=EVALUATOR, classes=[], metrics=metrics, per_class=[], per_image=per_image)


def _edits(predicted: Sequence[str], expected: Sequence[str],
           split: Callable[[str], Sequence]) -> tuple[list[int], list[int]]:
    """Each pair's edit distance and its reference's length, in units of ``split``."""
    edits, lengths = [], []
    for p, e in zip(predicted, expected, strict=True):
        reference = split(e)
        edits.append(edit_distance(split(p), reference))
        lengths.append(len(reference))
    return edits, lengths


def _rate(edits: Sequence[int], lengths: Sequence[int]) -> float:
    errors, total = sum(edits), sum(lengths)
    return errors / total if total else float(errors > 0)
