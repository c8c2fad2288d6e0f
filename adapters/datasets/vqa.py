"""``vqa``: visual question answering. ``{train,val}/images/<image>`` + ``{train,val}/questions.jsonl``, one
JSON object per line: ``{"file": "<path relative to images/>", "question": "...", "answers": ["...", ...]}``.

Each line is one question about one image, and becomes one record (``question``, ``answers``): an
image may have several questions, on as many lines. ``answers`` are what people answered, repeats
included (VQA v2 has ten per question: how many people gave an answer weighs its score,
``adapters.evaluation.vqa``); one answer is enough. Blank lines are skipped; every other line must
be a JSON object naming an existing image, with a non-empty question and a non-empty list of
non-empty answers, each problem reported with the file and line. Images under ``images/`` that no
line asks about are warned about and not used. No image is opened (the record has no size).

Without a ``val/`` split on disk, the split divides questions, not images: an image's questions may
land in both splits (give a ``val/`` folder, or ``split: file``, to keep images apart).
"""

from __future__ import annotations

from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.jsonl import entries, image_key, missing_image, present_images, read_splits, warn_unlisted
from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord

LAYOUT = ('{train,val}/images/<image> + {train,val}/questions.jsonl ({"file": ..., "question": ..., "answers": '
          '[...]} per line)')
LINE_SHAPE = '{"file": "<path relative to images/>", "question": "<question>", "answers": ["<answer>", ...]}'
QUESTIONS = "questions.jsonl"


@register_format("vqa", tasks=("visual_qa",), layout=LAYOUT)
def read_vqa(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    return read_splits(root, problems, listing=QUESTIONS, layout=LAYOUT, read_split=_read_split,
                       missing="write one line per question about {split}/images/, " + LINE_SHAPE)


def _read_split(images_dir: Path, questions: Path, problems: Problems) -> list[ImageRecord]:
    present = present_images(images_dir)
    records, asked = [], set()
    for where, name, entry in entries(questions, problems, LINE_SHAPE):
        record = _read_line(entry, name, where, images_dir, questions, present, problems)
        if record is not None:
            records.append(record)
            asked.add(image_key(name))
    warn_unlisted(present, asked, questions, problems,
                  "no question in {listing} is about it; it is not used (add a line for it or remove it)")
    return records


def _read_line(entry: dict, name: str, where: str, images_dir: Path, questions: Path, present: dict[str, str],
               problems: Problems) -> ImageRecord | None:
    """The line's record, or None after reporting what is wrong with it."""
    question = entry.get("question")
    if not isinstance(question, str):
        problems.error(questions, f'needs "question": the question about {name} as a string ({LINE_SHAPE})',
                       where=where, kind="bad-question")
        return None
    if not question.strip():
        problems.error(questions, f'has an empty "question" for {name}; write the question or remove the line',
                       where=where, kind="empty-question")
        return None
    answers = entry.get("answers")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        problems.error(questions, f'needs "answers": a list of the answers as strings ({LINE_SHAPE})', where=where,
                       kind="bad-answers")
        return None
    if not answers or not any(a.strip() for a in answers):
        problems.error(questions, f'the question "{_short(question)}" has no answers; give at least one in "answers"',
                       where=where, kind="no-answers")
        return None
    if not all(a.strip() for a in answers):
        problems.error(questions, f'the question "{_short(question)}" has an empty answer; remove it from "answers"',
                       where=where, kind="empty-answer")
        return None
    key = image_key(name)
    image = present.get(key)
    if image is None:
        problems.error(questions, missing_image(images_dir, name, key, present), where=where, kind="missing-image")
        return None
    return ImageRecord(str(image), question=question.strip(), answers=tuple(a.strip() for a in answers),
                       label_file=str(questions))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
