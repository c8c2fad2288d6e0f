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

import json
import posixpath
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import list_images
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, ImageRecord

LAYOUT = ('{train,val}/images/<image> + {train,val}/questions.jsonl ({"file": ..., "question": ..., "answers": '
          '[...]} per line)')
LINE_SHAPE = '{"file": "<path relative to images/>", "question": "<question>", "answers": ["<answer>", ...]}'
QUESTIONS = "questions.jsonl"


@register_format("vqa", tasks=("visual_qa",), layout=LAYOUT)
def read_vqa(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    if not (root / "train").is_dir():
        problems.error(root, f"has no train/ folder (expected {LAYOUT})", kind="layout")
        return None
    raw = RawDataset(())
    for split in SPLITS:
        split_dir = root / split
        if split == "val" and not split_dir.is_dir():
            continue
        images_dir, questions = split_dir / "images", split_dir / QUESTIONS
        if not images_dir.is_dir():
            problems.error(split_dir, f"has no images/ folder (expected {LAYOUT})", kind="layout")
            continue
        if not questions.is_file():
            problems.error(questions, f"is missing: write one line per question about {split}/images/, {LINE_SHAPE}",
                           kind="layout")
            continue
        raw.splits[split] = _read_split(images_dir, questions, problems)
    return raw if "train" in raw.splits else None


def _read_split(images_dir: Path, questions: Path, problems: Problems) -> list[ImageRecord]:
    present = {p.relative_to(images_dir).as_posix(): p for p in list_images(images_dir)}
    try:
        lines = questions.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(questions, f"cannot read it as UTF-8 text ({exc})", kind="unreadable-labels")
        return []
    records, asked = [], set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = _read_line(line, f"line {number}", images_dir, questions, present, problems)
        if record is not None:
            records.append(record)
            asked.add(_key(Path(record.path).relative_to(images_dir).as_posix()))
    for key, image in present.items():
        if key not in asked:
            problems.warning(image, f"no question in {questions} is about it; it is not used (add a line for it or "
                             "remove it)", kind="unlisted-image")
    return records


def _read_line(line: str, where: str, images_dir: Path, questions: Path, present: dict[str, Path],
               problems: Problems) -> ImageRecord | None:
    """The line's record, or None after reporting what is wrong with it."""
    try:
        entry = json.loads(line)
    except ValueError as exc:
        problems.error(questions, f"not valid JSON ({exc}); write one object per line: {LINE_SHAPE}", where=where,
                       kind="bad-json")
        return None
    if not isinstance(entry, dict):
        problems.error(questions, f"is a JSON {type(entry).__name__}, not an object: {LINE_SHAPE}", where=where,
                       kind="bad-json")
        return None
    name = entry.get("file")
    if not isinstance(name, str) or not name.strip():
        problems.error(questions, f'needs "file": the image path relative to images/ as a string ({LINE_SHAPE})',
                       where=where, kind="bad-file")
        return None
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
    key = _key(name)
    image = present.get(key)
    if image is None:
        problems.error(questions, _missing(images_dir, name, key, present), where=where, kind="missing-image")
        return None
    return ImageRecord(str(image), question=question.strip(), answers=tuple(a.strip() for a in answers),
                       label_file=str(questions))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _key(name: str) -> str:
    """The path as ``present`` keys it: forward slashes, no ``./`` or ``a/../``."""
    return posixpath.normpath(name.strip().replace("\\", "/"))


def _missing(images_dir: Path, name: str, key: str, present: dict) -> str:
    if (images_dir / key).is_file():
        return f"{images_dir / key} is not an image file (png, jpg, ...); point to an image or remove the line"
    inner = key.removeprefix("images/")
    if inner != key and inner in present:
        return f"image {images_dir / key} does not exist; paths are relative to images/: write {inner!r}"
    return f"image {images_dir / key} does not exist; add it or remove the line"
