"""The ``ocr`` reader on tiny images + labels.jsonl written here: records, splits, and each error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from adapters.datasets import ImageRecord, inspect_dataset, read_dataset


def make_ocr(root: Path, train=(("a.png", "hello"), ("words/b.png", "wörld")), val=(("c.png", "42"),)) -> Path:
    for split, entries in (("train", train), ("val", val)):
        if not entries:
            continue
        for name, _ in entries:
            image = root / split / "images" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("L", (6, 2), 255).save(image)
        lines = [json.dumps({"file": name, "text": text}, ensure_ascii=False) for name, text in entries]
        (root / split / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_reads_records_and_keeps_the_val_split_on_disk(tmp_path):
    make_ocr(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "ocr", "ocr")
    assert problems.items == []
    assert (dataset.class_names, dataset.val_source) == ((), "disk")
    labels = str(tmp_path / "train" / "labels.jsonl")
    assert dataset.train == [
        ImageRecord(str(tmp_path / "train" / "images" / "a.png"), text="hello", label_file=labels),
        ImageRecord(str(tmp_path / "train" / "images" / "words" / "b.png"), text="wörld", label_file=labels),
    ]
    assert [r.text for r in dataset.val] == ["42"]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make_ocr(tmp_path, train=[(f"{i}.png", f"text {i}") for i in range(5)], val=())
    dataset = read_dataset(tmp_path, "ocr", "ocr")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


def test_unlisted_images_are_warnings(tmp_path):
    make_ocr(tmp_path)
    Image.new("L", (6, 2)).save(tmp_path / "train" / "images" / "extra.png")
    dataset, problems = inspect_dataset(tmp_path, "ocr", "ocr")
    assert problems.errors == []
    assert [(p.file, p.kind) for p in problems.warnings] == [
        (str(tmp_path / "train" / "images" / "extra.png"), "unlisted-image")]
    assert len(dataset.train) == 2


LINE_ERRORS = [
    # (case, the line appended to train/labels.jsonl, words in the message)
    ("invalid json", '{"file": "a.png", "text": ', "not valid JSON"),
    ("not an object", '["a.png", "hello"]', "is a JSON list, not an object"),
    ("missing file", '{"text": "hello"}', 'needs "file"'),
    ("file not a string", '{"file": 3, "text": "hello"}', 'needs "file"'),
    ("missing text", '{"file": "c.png"}', 'needs "text"'),
    ("text not a string", '{"file": "c.png", "text": 42}', 'needs "text"'),
    ("empty text", '{"file": "c.png", "text": "  "}', 'empty "text" for c.png'),
    ("image missing", '{"file": "nope.png", "text": "hi"}', "image {root}/train/images/nope.png does not exist"),
    ("path under images/", '{"file": "images/a2.png", "text": "hi"}', "relative to images/: write 'a2.png'"),
    ("listed twice", '{"file": "./a.png", "text": "again"}', "lists ./a.png again (first on line 1)"),
]


@pytest.mark.parametrize("case, line, words", LINE_ERRORS, ids=[e[0] for e in LINE_ERRORS])
def test_line_errors_name_the_labels_file_and_line(tmp_path, case, line, words):
    make_ocr(tmp_path)
    if case == "path under images/":
        Image.new("L", (6, 2)).save(tmp_path / "train" / "images" / "a2.png")
    labels = tmp_path / "train" / "labels.jsonl"
    labels.write_text(labels.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    _, problems = inspect_dataset(tmp_path, "ocr", "ocr")
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    error = problems.errors[0]
    assert (error.file, error.where) == (str(labels), "line 4")  # line 3 is blank
    assert words.format(root=tmp_path) in error.message
    assert str(error).startswith(f"{labels}:line 4: ")


@pytest.mark.parametrize("remove, file", [
    ("train/labels.jsonl", "train/labels.jsonl"),
    ("val/images", "val"),
    ("train", ""),
])
def test_missing_parts_of_the_layout(tmp_path, remove, file):
    make_ocr(tmp_path)
    target = tmp_path / remove
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    _, problems = inspect_dataset(tmp_path, "ocr", "ocr")
    assert [p.file for p in problems.errors] == [str(tmp_path / file if file else tmp_path)]
