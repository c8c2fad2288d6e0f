"""The ``captions`` reader on tiny images written here, in both layouts (``{split}/captions.jsonl`` and COCO's
``annotations/captions_{split}.json``): records with every reference caption, splits, and each problem named with its
file and line (or image / annotation id)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from adapters.datasets import formats_for_task, inspect_dataset, read_dataset
from adapters.datasets.captions import CaptionRecord
from tests.dataset_fixtures import CAPTION_TRAIN, CAPTION_VAL, caption_references, make_captions_dataset


def make_jsonl(root: Path, train=(("a.png", ["A dog.", "a brown dog"]), ("sub/b.png", ["Two cats"])),
               val=(("c.png", ["A bus."]),)) -> Path:
    for split, entries in (("train", train), ("val", val)):
        if not entries:
            continue
        for name, _ in entries:
            image = root / split / "images" / name
            image.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (6, 4)).save(image)
        lines = [json.dumps({"file": name, "captions": captions}) for name, captions in entries]
        (root / split / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_the_captions_format_serves_image_captioning():
    assert formats_for_task("image_captioning") == ["captions"]


def test_reads_every_caption_of_each_image_and_keeps_the_val_split_on_disk(tmp_path):
    make_jsonl(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert problems.items == []
    assert (dataset.class_names, dataset.val_source) == ((), "disk")
    listing = str(tmp_path / "train" / "captions.jsonl")
    assert dataset.train == [
        CaptionRecord(str(tmp_path / "train" / "images" / "a.png"), label_file=listing,
                      captions=("A dog.", "a brown dog")),
        CaptionRecord(str(tmp_path / "train" / "images" / "sub" / "b.png"), label_file=listing,
                      captions=("Two cats",)),
    ]
    assert [r.captions for r in dataset.val] == [("A bus.",)]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make_jsonl(tmp_path, train=[(f"{i}.png", [f"caption {i}"]) for i in range(5)], val=())
    dataset = read_dataset(tmp_path, "captions", "image_captioning")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


def test_unlisted_images_are_warnings(tmp_path):
    make_jsonl(tmp_path)
    Image.new("RGB", (6, 4)).save(tmp_path / "train" / "images" / "extra.png")
    dataset, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert problems.errors == []
    assert [(p.file, p.kind) for p in problems.warnings] == [
        (str(tmp_path / "train" / "images" / "extra.png"), "unlisted-image")]
    assert len(dataset.train) == 2


LINE_ERRORS = [
    # (case, the line appended to train/captions.jsonl, its kind, words in the message)
    ("invalid json", '{"file": "a.png", "captions": [', "bad-json", "not valid JSON"),
    ("not an object", '["a.png", "a dog"]', "bad-json", "is a JSON list, not an object"),
    ("missing file", '{"captions": ["a dog"]}', "bad-file", 'needs "file"'),
    ("missing captions", '{"file": "c.png"}', "bad-captions", 'needs "captions": a list of caption strings, not '
                                                              "missing"),
    ("one string", '{"file": "c.png", "captions": "a dog"}', "bad-captions", "not a single string"),
    ("no captions", '{"file": "c.png", "captions": []}', "no-captions", "has no captions for c.png"),
    ("not a string", '{"file": "c.png", "captions": ["a dog", 7]}', "bad-captions", "caption 2 of c.png is not a "
                                                                                    "string"),
    ("empty caption", '{"file": "c.png", "captions": ["a dog", "  "]}', "empty-caption",
     "caption 2 of c.png is empty"),
    ("image missing", '{"file": "nope.png", "captions": ["hi"]}', "missing-image",
     "image {root}/train/images/nope.png does not exist"),
    ("listed twice", '{"file": "./a.png", "captions": ["again"]}', "duplicate-file",
     "lists ./a.png again (first on line 1)"),
]


@pytest.mark.parametrize("case, line, kind, words", LINE_ERRORS, ids=[e[0] for e in LINE_ERRORS])
def test_line_errors_name_the_file_and_line(tmp_path, case, line, kind, words):
    make_jsonl(tmp_path)
    Image.new("RGB", (6, 4)).save(tmp_path / "train" / "images" / "c.png")
    listing = tmp_path / "train" / "captions.jsonl"
    listing.write_text(listing.read_text(encoding="utf-8") + "\n" + line + "\n", encoding="utf-8")
    _, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    error = problems.errors[0]
    assert (error.file, error.where, error.kind) == (str(listing), "line 4", kind)  # line 3 is blank
    assert words.format(root=tmp_path) in error.message
    assert str(error).startswith(f"{listing}:line 4: ")


@pytest.mark.parametrize("remove, file", [
    ("train/captions.jsonl", "train/captions.jsonl"),
    ("val/images", "val"),
    ("train", ""),
])
def test_missing_parts_of_the_layout(tmp_path, remove, file):
    make_jsonl(tmp_path)
    target = tmp_path / remove
    if target.is_dir():
        shutil.rmtree(target)
    else:
        target.unlink()
    _, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert [p.file for p in problems.errors] == [str(tmp_path / file if file else tmp_path)]
    if not file:
        assert "captions.jsonl" in problems.errors[0].message and "captions_train" in problems.errors[0].message


# ---------------------------------------------------------------- COCO captions, read as they are

def test_reads_coco_captions_files_as_they_are(tmp_path):
    """``annotations/captions_{train,val}2017.json`` with images in ``{train,val}2017/``: each image's captions in
    file order, the same records as the jsonl layout of the same data gives."""
    coco = make_captions_dataset(tmp_path / "coco", layout="coco")
    jsonl = make_captions_dataset(tmp_path / "jsonl")
    dataset, problems = inspect_dataset(coco, "captions", "image_captioning", decode="all")
    assert problems.items == []
    assert [r.path for r in dataset.train] == [str(coco / "train2017" / f"{i}.png") for i in range(len(CAPTION_TRAIN))]
    assert [r.captions for r in dataset.val] == [tuple(caption_references(*shape)) for shape in CAPTION_VAL]
    assert dataset.val[0].label_file == str(coco / "annotations" / "captions_val2017.json")
    same = read_dataset(jsonl, "captions", "image_captioning")
    assert [r.captions for r in dataset.train + dataset.val] == [r.captions for r in same.train + same.val]


def coco_doc(images, annotations) -> dict:
    return {"images": [{"id": i, "file_name": name} for i, name in images],
            "annotations": [{"id": k, "image_id": i, "caption": c} for k, (i, c) in enumerate(annotations, 1)]}


def test_coco_problems_name_the_image_or_annotation(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train").mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (6, 4)).save(tmp_path / "train" / name)
    doc = coco_doc([(1, "a.png"), (2, "b.png"), (3, "gone.png"), (4, "c.png")],
                   [(1, "A dog."), (1, "a dog"), (2, " "), (9, "what"), (3, "a ghost"), (1, 42)])
    path = tmp_path / "annotations" / "captions_train.json"
    path.write_text(json.dumps(doc))
    dataset, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    errors = {(p.where, p.kind): p.message for p in problems.errors}
    assert set(errors) == {("image id 3", "missing-image"), ("annotation id 3", "empty-caption"),
                           ("annotation id 4", "annotation-without-image"), ("annotation id 6", "bad-captions")}
    assert errors[("image id 3", "missing-image")].startswith(f"image {tmp_path / 'train' / 'gone.png'} does not exist")
    assert all(p.file == str(path) for p in problems.items)
    # b.png's one caption was empty and c.png has none: neither is used, each said once
    assert [(p.where, p.kind) for p in problems.warnings] == [("image id 2", "uncaptioned-image"),
                                                              ("image id 4", "uncaptioned-image")]
    assert dataset is not None and [r.captions for r in dataset.train] == [("A dog.", "a dog")]


def test_a_file_that_is_not_coco_captions(tmp_path):
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "captions_train2014.json"
    path.write_text(json.dumps({"images": []}))
    _, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert [(p.file, p.kind) for p in problems.errors] == [(str(path), "not-coco")]
    path.write_text("{")
    _, problems = inspect_dataset(tmp_path, "captions", "image_captioning")
    assert [(p.file, p.kind) for p in problems.errors] == [(str(path), "bad-json")]
