"""The scorers of ``eval`` whose predictions are text: image captioning and visual question answering (the
table of every task's scorer is ``adapters.evaluation.scoring.SCORERS``).

- image captioning: each image's caption (the predict result's ``text``) against every reference caption of
  its record → ``caption_results`` (CIDEr-D, whose n-gram weights come from the references of the images
  evaluated, and corpus BLEU-4), as a training validation of the same images scores them;
- visual QA: a record is one question about an image; each record's question goes to predict with its image
  (``per_image_options``: ``questions``, one per image, so a whole batch is one call; to a predict that takes
  one ``question`` a call, ``options``: records asking the same question are predicted together), and the
  answer (``text``) is scored against the answers people gave → ``vqa_results`` (the VQA accuracy, answers
  normalised as the VQA evaluation does).

``per_image`` is what those evaluators list: the worst samples first, at most 100.

Host-importable: numpy at import (the validation record).
"""

from __future__ import annotations

from typing import Any

from adapters.evaluation.captions import caption_results
from adapters.evaluation.record import Evaluation
from adapters.evaluation.scorer import Scorer
from adapters.evaluation.vqa import vqa_results


def _text(record, result: Any) -> str:
    if not isinstance(result, dict) or "text" not in result:
        raise ValueError(f"the predict path returned no text for {record.path}")
    return str(result.get("text") or "").strip()


def _question(record) -> str:
    question = (record.question or "").strip()
    if not question:
        raise ValueError(f"{record.label_file or record.path}: a record of {record.path} has no question")
    return question


class CaptionScorer(Scorer):
    """Captions against all of each image's references."""

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.predicted: list[str] = []
        self.references: list[list[str]] = []
        self.names: list[str] = []

    def update(self, records, results) -> None:
        for record, result in zip(records, results, strict=True):
            references = [str(c) for c in (getattr(record, "captions", None) or (record.text,)) if c]
            if not references:
                raise ValueError(f"{record.label_file or record.path}: {record.path} has no reference caption")
            self.predicted.append(_text(record, result))
            self.references.append(references)
            self.names.append(self.name(record))

    def evaluation(self) -> Evaluation:
        return caption_results(self.predicted, self.references, self.names)


class VQAScorer(Scorer):
    """Each question's answer against the answers people gave to it."""

    def __init__(self, root, dataset_classes, model_classes, scale=None) -> None:
        super().__init__(root, dataset_classes, model_classes, scale)
        self.predicted: list[str] = []
        self.answers: list[list[str]] = []
        self.questions: list[str] = []
        self.names: list[str] = []

    def per_image_options(self, records) -> dict[str, list[str]]:
        """``questions``: each record's question, in order, for a predict that answers each image its own."""
        return {"questions": [_question(record) for record in records]}

    def options(self, record) -> dict[str, Any]:
        """``question``: the record's, for a predict that takes one question a call."""
        return {"question": _question(record)}

    def update(self, records, results) -> None:
        for record, result in zip(records, results, strict=True):
            self.predicted.append(_text(record, result))
            self.answers.append([str(a) for a in record.answers])
            self.questions.append(record.question or "")
            self.names.append(self.name(record))

    def evaluation(self) -> Evaluation:
        return vqa_results(self.predicted, self.answers, self.questions, self.names)
