"""Image captioning: CIDEr-D and BLEU-4 as the COCO caption evaluation computes them, and the worst captions named.

The scores are those of ``pycocoevalcap`` (the COCO caption server's code), reimplemented in plain
Python so that no Java runs and nothing is downloaded:

- **Tokenisation** (:func:`tokenize`): pycocoevalcap runs Stanford CoreNLP 3.4.1's ``PTBTokenizer``
  (``-lowerCase``, Java) over every caption, then drops the punctuation tokens in its list. This
  module follows the PTB rules that captions meet: lowercase; ``.,;:?!`` split off words and dropped
  (a run such as ``?!`` or ``!!!`` stays one token, as in PTB, and is kept); quotes dropped; clitics
  split (``dog's`` → ``dog 's``, ``isn't`` → ``is n't``, ``cannot`` → ``can not``); ``$``, ``#`` and
  ``%`` split off as tokens, and ``am``/``pm`` off a time (``3:00pm``); hyphenated words, numbers
  (``3.5``, ``1,000``, ``10:30``) and abbreviations with inner periods (``u.s.``) or from a short
  list (``mr.``, ``st.``) kept whole;
  ``–``, ``—`` and ``…`` read as ``--`` and ``...``. Brackets become ``-lrb-``, ``-rrb-``, ...: the
  list pycocoevalcap drops names them in upper case but the tokenizer lowercases them first, so
  they stay as words there, and here too. What differs from PTB: its longer abbreviation list and
  context rules, URLs and e-mail addresses, emoticons, and a few rare contractions (``'tis``,
  ``y'all``, ``rock'n'roll``).
- **CIDEr-D** (:func:`cider_d`; pycocoevalcap's ``Cider``, which is CIDEr-D): n-grams n = 1..4 as
  TF-IDF vectors whose document frequencies come from the references of the set being evaluated
  (so a set of one image scores 0), each n-gram's candidate weight clipped to the reference's,
  cosine similarity per n, a Gaussian length penalty (sigma 6) on the difference of the two
  captions' "length" (pycocoevalcap counts the bigrams there, not the words: the same difference
  except for captions of one word or none), averaged over n and the references, times 10. The
  set's score is the mean over images.
- **BLEU-4** (:func:`bleu`; pycocoevalcap's ``Bleu(4)``): corpus-level, clipped n-gram counts and
  guesses summed over the set, the geometric mean of the four precisions with pycocoevalcap's
  smoothing constants (1e-15 over 1e-9), and a brevity penalty against the closest reference
  length (the shorter one on a tie). A sample's own BLEU-4 is the same over that sample alone.

METEOR is left out: pycocoevalcap runs METEOR 1.5 (Java) with its stemmer, WordNet synonyms and a
61 MB paraphrase table; without those files a score would not be METEOR's.

Plain Python: no torch needed, so the host can score captions too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from adapters.evaluation.record import Evaluation
from adapters.metrics import VAL_BLEU4, VAL_CIDER

EVALUATOR = "visionyard.captions"
#: A record lists this many samples at most, the worst first (the metrics cover every sample).
PER_IMAGE_LIMIT = 100
#: n-grams up to this length (CIDEr-D and BLEU-4), and CIDEr-D's length penalty's sigma.
MAX_N = 4
SIGMA = 6.0

# ---------------------------------------------------------------- tokenisation

#: The tokens pycocoevalcap drops after tokenising (its ``PUNCTUATIONS``; the bracket names are upper case there
#: and never match the lowercased tokens).
DROPPED = frozenset({"''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"})
_UNICODE = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                          "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2013": " -- ", "\u2014": " -- ",
                          "\u2026": " ... ", "\u00a0": " "})
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}
#: Words that keep their period (PTB's list is longer and looks at the next word).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr st ave jr sr vs etc inc co ltd no mt ft rd blvd prof gen gov sgt capt col lt rev hon dept est "
    "approx fig jan feb mar apr jun jul aug sep sept oct nov dec mon tue tues wed thu thur thurs fri sat sun".split())
#: Whole words PTB splits in two.
_SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"), "wanna": ("wan", "na"),
                "lemme": ("lem", "me"), "gimme": ("gim", "me")}
_CLITIC = re.compile(r"^(.*[a-z0-9])('s|'re|'ve|'ll|'d|'m)$")
_NEGATION = re.compile(r"^(.*[a-z])(n't)$")
#: Punctuation inside a word that PTB splits it at: dashes, ellipses, ``*``, ``;``, and a comma not between digits.
_INNER = re.compile(r"(--|\.\.\.|\*|;|(?<!\d),|,(?!\d))")
_TIME = re.compile(r"^(\d[\d:.]*)(am|pm)$")


def tokenize(caption: str) -> str:
    """``caption`` as pycocoevalcap scores it: PTB tokens, lowercased, punctuation dropped, joined by spaces."""
    tokens: list[str] = []
    for chunk in caption.translate(_UNICODE).lower().split():
        tokens.extend(_chunk(chunk))
    return " ".join(t for t in tokens if t not in DROPPED)


def _chunk(chunk: str) -> list[str]:
    """One whitespace-separated chunk → its PTB tokens (punctuation not yet dropped)."""
    front: list[str] = []
    back: list[str] = []
    while chunk:
        if chunk.startswith(("...", "--")):
            front.append(chunk[:3] if chunk.startswith("...") else "--")
            chunk = chunk[len(front[-1]):]
        elif chunk[0] == '"':
            front.append("``")
            chunk = chunk[1:]
        elif chunk[0] in "([{$#`":
            front.append(_BRACKETS.get(chunk[0], chunk[0]))
            chunk = chunk[1:]
        elif chunk[0] == "'" and len(chunk) > 1 and not chunk[1].isdigit() and not _CLITIC.match("x" + chunk):
            front.append("`")
            chunk = chunk[1:]
        else:
            break
    while chunk:
        run = len(chunk) - len(chunk.rstrip("?!"))
        if run:
            back.append(chunk[-run:])
            chunk = chunk[:-run]
        elif chunk.endswith(("...", "--")):
            back.append(chunk[-3:] if chunk.endswith("...") else "--")
            chunk = chunk[:-len(back[-1])]
        elif chunk[-1] == '"':
            back.append("''")
            chunk = chunk[:-1]
        elif chunk[-1] in ")]}%,;:'":
            back.append(_BRACKETS.get(chunk[-1], chunk[-1]))
            chunk = chunk[:-1]
        elif chunk[-1] == "." and not _abbreviation(chunk):
            back.append(".")
            chunk = chunk[:-1]
        else:
            break
    middle: list[str] = []
    for piece in _INNER.split(chunk):
        if piece:
            middle.extend(_word(piece))
    return front + middle + back[::-1]


def _abbreviation(word: str) -> bool:
    """A word ending in a period that PTB keeps whole: ``u.s.``, ``a.``, ``mr.``."""
    stem = word[:-1]
    return "." in stem or (len(stem) == 1 and stem.isalpha()) or stem in ABBREVIATIONS


def _word(word: str) -> list[str]:
    """A word without outer punctuation → itself, or split at its clitic."""
    if word in _SPLIT_WORDS:
        return list(_SPLIT_WORDS[word])
    time = _TIME.match(word)
    if time:
        return [time.group(1), time.group(2)]
    for pattern in (_NEGATION, _CLITIC):
        match = pattern.match(word)
        if match:
            return [*_word(match.group(1)), match.group(2)]
    return [word]


# ---------------------------------------------------------------- scores

def _ngrams(words: Sequence[str], n: int = MAX_N) -> Counter:
    return Counter(tuple(words[i:i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = MAX_N,
            sigma: float = SIGMA) -> tuple[float, list[float]]:
    """(the set's CIDEr-D, each sample's) of tokenised ``candidates`` (one per image) against tokenised
    ``references`` (one list per image), as pycocoevalcap's ``Cider().compute_score`` gives them."""
    _check(candidates, references)
    if not candidates:
        return 0.0, []
    refs = [[_ngrams(r.split(), n) for r in rs] for rs in references]
    frequency: Counter = Counter()
    for grams in refs:
        frequency.update({gram for ref in grams for gram in ref})
    log_images = math.log(len(refs))

    def vector(counts: Counter) -> tuple[list[dict], list[float], int]:
        weights: list[dict] = [{} for _ in range(n)]
        squares = [0.0] * n
        length = 0
        for gram, count in counts.items():
            k = len(gram) - 1
            weight = count * (log_images - math.log(max(1.0, frequency[gram])))
            weights[k][gram] = weight
            squares[k] += weight * weight
            if k == 1:  # pycocoevalcap's "length": the bigrams
                length += count
        return weights, [math.sqrt(s) for s in squares], length

    scores = []
    for candidate, grams in zip(candidates, refs, strict=True):
        weights, norms, length = vector(_ngrams(candidate.split(), n))
        total = [0.0] * n
        for ref in grams:
            ref_weights, ref_norms, ref_length = vector(ref)
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * sigma ** 2))
            for k in range(n):
                theirs = ref_weights[k]
                value = sum(min(w, theirs.get(g, 0.0)) * theirs.get(g, 0.0) for g, w in weights[k].items())
                if norms[k] and ref_norms[k]:
                    value /= norms[k] * ref_norms[k]
                total[k] += value * penalty
        scores.append(sum(total) / n / len(grams) * 10.0)
    return sum(scores) / len(scores), scores


#: pycocoevalcap's smoothing of BLEU's precisions: (correct + TINY) / (guessed + SMALL).
TINY, SMALL = 1e-15, 1e-9


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = MAX_N) -> tuple[list[float],
                                                                                                  list[list[float]]]:
    """(corpus BLEU-1..n, each sample's BLEU-1..n) of tokenised ``candidates`` against tokenised ``references``, as
    pycocoevalcap's ``Bleu(n).compute_score`` gives them (``closest`` reference length)."""
    _check(candidates, references)
    totals = {"test": 0, "ref": 0, "guess": [0] * n, "correct": [0] * n}
    each = []
    for candidate, refs in zip(candidates, references, strict=True):
        words = candidate.split()
        lengths, best = [], Counter()
        for ref in refs:
            ref_words = ref.split()
            lengths.append(len(ref_words))
            best |= _ngrams(ref_words, n)  # the highest count of each n-gram in any reference
        reflen = min(lengths, key=lambda length: (abs(length - len(words)), length))
        guess = [max(0, len(words) - k) for k in range(n)]
        correct = [0] * n
        for gram, count in _ngrams(words, n).items():
            correct[len(gram) - 1] += min(best.get(gram, 0), count)
        each.append(_bleu(correct, guess, len(words), reflen))
        totals["test"] += len(words)
        totals["ref"] += reflen
        for k in range(n):
            totals["guess"][k] += guess[k]
            totals["correct"][k] += correct[k]
    corpus = _bleu(totals["correct"], totals["guess"], totals["test"], totals["ref"])
    return corpus, each


def _bleu(correct: Sequence[int], guess: Sequence[int], testlen: float, reflen: float) -> list[float]:
    scores, product = [], 1.0
    for k, (right, guessed) in enumerate(zip(correct, guess, strict=True)):
        product *= (right + TINY) / (guessed + SMALL)
        scores.append(product ** (1.0 / (k + 1)))
    ratio = (testlen + TINY) / (reflen + SMALL)
    if ratio < 1:
        scores = [s * math.exp(1 - 1 / ratio) for s in scores]
    return scores


def _check(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} captions but {len(references)} reference lists")
    if any(not refs for refs in references):
        raise ValueError("every image needs at least one reference caption")


def caption_metrics(predicted: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """``cider`` and ``bleu4`` of raw ``predicted`` captions against raw ``references``, tokenised as
    pycocoevalcap does (:func:`tokenize`)."""
    return {name.removeprefix("val/"): value for name, value in _scores(predicted, references)[0].items()}


def caption_results(predicted: Sequence[str], references: Sequence[Sequence[str]], images: Sequence[str],
                    limit: int = PER_IMAGE_LIMIT) -> Evaluation:
    """``val/cider`` and ``val/bleu4`` over every sample, and ``per_image`` rows ``{"image", "prediction",
    "references", "cider", "bleu4"}``: the ``limit`` worst samples, the lowest CIDEr-D first (then in the
    order given). No classes, no confusion matrix."""
    if not len(predicted) == len(references) == len(images):
        raise ValueError(f"{len(predicted)} predictions, {len(references)} reference lists and {len(images)} images")
    metrics, ciders, bleu4s = _scores(predicted, references)
    order = sorted(range(len(ciders)), key=lambda i: (ciders[i], i))[:limit]
    per_image: list[dict[str, Any]] = [{"image": images[i], "prediction": predicted[i],
                                        "references": list(references[i]), "cider": ciders[i],
                                        "bleu4": bleu4s[i]} for i in order]
    return Evaluation(evaluator=EVALUATOR, classes=[], metrics=metrics, per_class=[], per_image=per_image)


def _scores(predicted: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[dict[str, float], list[float],
                                                                                    list[float]]:
    candidates = [tokenize(p) for p in predicted]
    refs = [[tokenize(r) for r in rs] for rs in references]
    cider, ciders = cider_d(candidates, refs)
    corpus, each = bleu(candidates, refs)
    bleu4 = corpus[MAX_N - 1] if candidates else 0.0
    return {VAL_CIDER: cider, VAL_BLEU4: bleu4}, ciders, [scores[MAX_N - 1] for scores in each]
