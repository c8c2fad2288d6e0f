"""The ``voc`` reader on tiny Pascal VOC folders made by code: records, splits, and each error."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.datasets import Annotation, DatasetError, ImageRecord, inspect_dataset, read_dataset
from tests.dataset_fixtures import make_voc, voc_xml, write_voc_image, write_xml


def test_reads_records_and_keeps_the_val_split_on_disk(tmp_path):
    make_voc(tmp_path, image_sets={"train": ["a", "b"], "val": ["c"]})
    dataset, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert problems.items == []
    assert dataset.class_names == ("cat", "dog")
    assert dataset.val_source == "disk"
    xml, jpg = tmp_path / "Annotations", tmp_path / "JPEGImages"
    assert dataset.train[0] == ImageRecord(
        str(jpg / "a.jpg"), 8, 6, normalized=False, label_file=str(xml / "a.xml"),
        annotations=[Annotation(0, (1.0, 1.0, 4.0, 5.0), where="object 0"),
                     Annotation(1, (2.5, 2.0, 7.0, 6.0), ignore=True, where="object 1")])
    assert [Path(r.path).name for r in dataset.train] == ["a.jpg", "b.jpg"]
    assert [Path(r.path).name for r in dataset.val] == ["c.jpg"]


def test_makes_a_val_split_without_image_sets(tmp_path):
    make_voc(tmp_path, stems=("a", "b", "c", "d", "e"))
    dataset = read_dataset(tmp_path, "voc", "object_detection")
    assert dataset.val_source == "random"
    assert len(dataset.train) == 4 and len(dataset.val) == 1


def test_val_list_alone_makes_every_other_image_train(tmp_path):
    make_voc(tmp_path, image_sets={"val": ["b"]})
    dataset = read_dataset(tmp_path, "voc", "object_detection")
    assert [Path(r.path).name for r in dataset.train] == ["a.jpg", "c.jpg"]
    assert [Path(r.path).name for r in dataset.val] == ["b.jpg"]


def test_train_list_alone_leaves_val_to_the_split_strategy(tmp_path):
    make_voc(tmp_path, stems=("a", "b", "c", "d", "e"), image_sets={"train": ["a", "b", "c", "d"]})
    dataset, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert dataset.val_source == "random"
    assert sorted(Path(r.path).name for r in dataset.train + dataset.val) == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]
    assert [(Path(p.file).name, p.kind) for p in problems.warnings] == [("e.xml", "unlisted-annotation")]


def test_class_file_order_gives_the_ids(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "labels.txt").write_text("dog\ncat\nbird\n")
    dataset = read_dataset(tmp_path, "voc", "object_detection")
    assert dataset.class_names == ("dog", "cat", "bird")
    a = next(r for r in dataset.train + dataset.val if r.path.endswith("a.jpg"))
    assert [ann.class_id for ann in a.annotations] == [1, 0]


def test_image_found_by_the_xml_stem_when_filename_is_wrong(tmp_path):
    make_voc(tmp_path)
    write_voc_image(tmp_path / "JPEGImages" / "d.png")
    write_xml(tmp_path, "d", voc_xml("C:\\labels\\renamed.jpg"))
    dataset, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert problems.errors == []
    assert str(tmp_path / "JPEGImages" / "d.png") in [r.path for r in dataset.train + dataset.val]


def _bad_xml(root):
    write_xml(root, "a", "<annotation><filename>a.jpg</filename>")


def _no_size(root):
    write_xml(root, "a", voc_xml("a.jpg", size=None))


def _text_in_box(root):
    write_xml(root, "a", voc_xml("a.jpg", objects=[("cat", (1, "abc", 4, 5), 0)]))


def _missing_image(root):
    write_xml(root, "z", voc_xml("z.jpg"))


def _unknown_id(root):
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nnope\nb\n")


def _unknown_class(root):
    (root / "classes.txt").write_text("cat\ndog\n")
    write_xml(root, "a", voc_xml("a.jpg", objects=[("cat", (1, 1, 4, 5), 0), ("bird", (1, 1, 2, 2), 0)]))


def _in_both_splits(root):
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\nb\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("c\nb\n")


ERRORS = [
    # (case, change to a valid dataset, file named, where, words in the message)
    ("unparsable xml", _bad_xml, "Annotations/a.xml", "line 1", "not valid XML"),
    ("missing size", _no_size, "Annotations/a.xml", "", "the image is 8x6 px"),
    ("non-numeric box", _text_in_box, "Annotations/a.xml", "object 0", "ymin=abc"),
    ("missing image", _missing_image, "Annotations/z.xml", "", "no JPEGImages/z.jpg"),
    ("id without xml", _unknown_id, "ImageSets/Main/train.txt", "line 2", "'nope' has no Annotations/nope.xml"),
    ("name not in class list", _unknown_class, "Annotations/a.xml", "object 1", "'bird' is not in classes.txt"),
    ("id in both splits", _in_both_splits, "ImageSets/Main/val.txt", "line 2", "'b' is also in train.txt"),
]


@pytest.mark.parametrize("case, change, file, where, words", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_their_file(tmp_path, case, change, file, where, words):
    make_voc(tmp_path)
    change(tmp_path)
    _, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert len(problems.errors) == 1, [str(p) for p in problems.errors]
    error = problems.errors[0]
    assert (error.file, error.where) == (str(tmp_path / file), where)
    assert words in error.message


def test_missing_folders_are_layout_errors(tmp_path):
    write_voc_image(tmp_path / "JPEGImages" / "a.jpg")
    _, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert [p.file for p in problems.errors] == [str(tmp_path)]
    assert "Annotations/" in problems.errors[0].message
    with pytest.raises(DatasetError, match="Annotations/"):
        read_dataset(tmp_path, "voc", "object_detection")


def test_unused_images_and_unlisted_xml_are_warnings(tmp_path):
    make_voc(tmp_path, image_sets={"train": ["a"], "val": ["c"]})
    write_voc_image(tmp_path / "JPEGImages" / "lonely.jpg")
    dataset, problems = inspect_dataset(tmp_path, "voc", "object_detection")
    assert problems.errors == []
    assert sorted((p.file, p.kind) for p in problems.warnings) == [
        (str(tmp_path / "Annotations" / "b.xml"), "unlisted-annotation"),
        (str(tmp_path / "JPEGImages" / "lonely.jpg"), "unannotated-image"),
    ]
    assert len(dataset.train) == 1 and len(dataset.val) == 1
