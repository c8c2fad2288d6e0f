"""The ``vqa`` reader on tiny images + questions.jsonl written here: records (several questions per image), splits,
each error with its file and line; and ImageFolder serving zero-shot classification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from adapters.datasets import ImageRecord, formats_for_task, inspect_dataset, read_dataset
from tests.dataset_fixtures import VQA_SPLITS, make_vqa_dataset, vqa_questions

QUESTION = {"question": "What colour is it?", "answers": ["red", "red", "dark red"]}


def make_vqa(root: Path, train=(("a.png", QUESTION), ("a.png", {"question": "Is it red?", "answers": ["yes"]}),
                                ("more/b.png", QUESTION)), val=(("c.png", QUESTION),)) -> Path:
    for split, entries in (("train", train), ("val", val)):
        if not entries:
            continue
        for name, _ in entries:
            image = root / split / "images" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 4), (200, 0, 0)).save(image)
        lines = [json.dumps({"file": name, **entry}) for name, entry in entries]
        (root / split / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_reads_one_record_per_question_and_keeps_the_val_split_on_disk(tmp_path):
    make_vqa(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "vqa", "visual_qa")
    assert problems.items == []
    assert (dataset.class_names, dataset.val_source) == ((), "disk")
    questions = str(tmp_path / "train" / "questions.jsonl")
    a = str(tmp_path / "train" / "images" / "a.png")
    assert dataset.train == [
        ImageRecord(a, question="What colour is it?", answers=("red", "red", "dark red"), label_file=questions),
        ImageRecord(a, question="Is it red?", answers=("yes",), label_file=questions),  # the same image again
        ImageRecord(str(tmp_path / "train" / "images" / "more" / "b.png"), question="What colour is it?",
                    answers=("red", "red", "dark red"), label_file=questions),
    ]
    assert [(r.question, r.answers) for r in dataset.val] == [("What colour is it?", ("red", "red", "dark red"))]


def test_the_test_fixture_reads(tmp_path):
    dataset = read_dataset(make_vqa_dataset(tmp_path), "vqa", "visual_qa")
    assert len(dataset.train) == 2 * len(VQA_SPLITS["train"]) and len(dataset.val) == 2 * len(VQA_SPLITS["val"])
    assert [(r.question, list(r.answers)) for r in dataset.val[:2]] == [
        (q["question"], q["answers"]) for q in vqa_questions("red")]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make_vqa(tmp_path, train=[(f"{i}.png", QUESTION) for i in range(5)], val=())
    dataset = read_dataset(tmp_path, "vqa", "visual_qa")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


def test_images_no_question_asks_about_are_warnings(tmp_path):
    make_vqa(tmp_path)
    Image.new("RGB", (6, 4)).save(tmp_path / "train" / "images" / "extra.png")
    dataset, problems = inspect_dataset(tmp_path, "vqa", "visual_qa")
    assert problems.errors == []
    assert [(p.file, p.kind) for p in problems.warnings] == [
        (str(tmp_path / "train" / "images" / "extra.png"), "unlisted-image")]
    assert len(dataset.train) == 3


LINE_ERRORS = [
    # (case, the line appended to train/questions.jsonl, its kind, words in the message)
    ("invalid json", '{"file": "a.png", "question": ', "bad-json", "not valid JSON"),
    ("not an object", '["a.png", "what?", ["x"]]', "bad-json", "is a JSON list, not an object"),
    ("missing file", '{"question": "what?", "answers": ["x"]}', "bad-file", 'needs "file"'),
    ("missing question", '{"file": "c.png", "answers": ["x"]}', "bad-question", 'needs "question"'),
    ("empty question", '{"file": "c.png", "question": " ", "answers": ["x"]}', "empty-question",
     'empty "question" for c.png'),
    ("missing answers", '{"file": "c.png", "question": "what?"}', "bad-answers", 'needs "answers"'),
    ("answers not a list", '{"file": "c.png", "question": "what?", "answers": "x"}', "bad-answers",
     'needs "answers"'),
    ("no answers", '{"file": "c.png", "question": "what is it?", "answers": []}', "no-answers",
     'the question "what is it?" has no answers'),
    ("blank answers only", '{"file": "c.png", "question": "what?", "answers": [" "]}', "no-answers", "has no answers"),
    ("an empty answer", '{"file": "c.png", "question": "what?", "answers": ["x", ""]}', "empty-answer",
     "has an empty answer"),
    ("image missing", '{"file": "nope.png", "question": "what?", "answers": ["x"]}', "missing-image",
     "image {root}/train/images/nope.png does not exist"),
    ("path under images/", '{"file": "images/a2.png", "question": "what?", "answers": ["x"]}', "missing-image",
     "relative to images/: write 'a2.png'"),
]


@pytest.mark.parametrize("case, line, kind, words", LINE_ERRORS, ids=[e[0] for e in LINE_ERRORS])
def test_line_errors_name_the_questions_file_and_line(tmp_path, case, line, kind, words):
    make_vqa(tmp_path)
    if case == "path under images/":
        Image.new("RGB", (6, 4)).save(tmp_path / "train" / "images" / "a2.png")
    questions = tmp_path / "train" / "questions.jsonl"
    questions.write_text(questions.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    dataset, problems = inspect_dataset(tmp_path, "vqa", "visual_qa")
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    error = problems.errors[0]
    assert (error.file, error.where, error.kind) == (str(questions), "line 5", kind)  # line 4 is blank
    assert words.format(root=tmp_path) in error.message
    assert str(error).startswith(f"{questions}:line 5: ")
    assert len(dataset.train) == 3  # the good lines still read


@pytest.mark.parametrize("remove, file", [
    ("train/questions.jsonl", "train/questions.jsonl"),
    ("val/images", "val"),
    ("train", ""),
])
def test_missing_parts_of_the_layout(tmp_path, remove, file):
    make_vqa(tmp_path)
    target = tmp_path / remove
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    _, problems = inspect_dataset(tmp_path, "vqa", "visual_qa")
    assert [p.file for p in problems.errors] == [str(tmp_path / file if file else tmp_path)]


def test_formats_per_task():
    assert formats_for_task("visual_qa") == ["vqa"]
    assert formats_for_task("zero_shot_classification") == ["imagefolder"]


def test_imagefolder_serves_zero_shot_classification_with_its_class_names(tmp_path):
    for split, count in (("train", 3), ("val", 1)):
        for name in ("cat", "golden_retriever"):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (4, 4)).save(tmp_path / split / name / f"{i}.png")
    dataset = read_dataset(tmp_path, "imagefolder", "zero_shot_classification")
    assert dataset.class_names == ("cat", "golden_retriever")
    assert [r.label for r in dataset.train] == [0, 0, 0, 1, 1, 1] and [r.label for r in dataset.val] == [0, 1]
