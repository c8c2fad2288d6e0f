"""Folder links in a dataset: loops end, the dataset's own folders count once, links out are
followed, and a check past its deadline stops (host env, no torch)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest

from adapters.datasets import inspect_dataset, list_images
from adapters.datasets import walk as walk_module
from adapters.datasets.stage import _mirror
from adapters.datasets.walk import CheckCancelled, Deadline, deadline_scope, walk
from tests.dataset_fixtures import make_yolo

TASK = "image_classification"
CLASSES = ("red", "green", "blue")


def counts(dataset) -> dict[str, int]:
    seen = Counter(r.label for r in dataset.train + dataset.val)
    return {name: seen[i] for i, name in enumerate(dataset.class_names)}


def inspect(root, fmt="imagefolder"):
    """The dataset read in a thread: a walk that never ends fails the test instead of hanging it."""
    out: dict = {}
    reader = threading.Thread(target=lambda: out.update(result=inspect_dataset(root, fmt, TASK, decode="none")),
                              daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading the dataset did not end"
    return out["result"]


def link_warnings(problems) -> dict[str, str]:
    return {os.path.basename(p.file): p.message for p in problems.warnings if p.kind == "skipped-link"}


def test_two_links_to_the_parent_end_and_count_once(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=4)
    os.symlink("..", root / "train" / "red" / "a")
    os.symlink("..", root / "train" / "red" / "b")
    dataset, problems = inspect(root)
    assert not problems.has_errors, problems.errors
    assert counts(dataset) == {"blue": 4, "green": 4, "red": 4}
    warned = link_warnings(problems)
    assert set(warned) == {"a", "b"} and "a loop" in warned["a"] and "Remove the link" in warned["a"]


def test_a_link_up_from_a_class_labels_no_other_class_as_it(tmp_path, make_imagefolder):
    """``train/red/up -> ..`` reached every other class's images, labelled red."""
    root = make_imagefolder(tmp_path / "data", per_class=5)
    os.symlink("..", root / "train" / "red" / "up")
    dataset, problems = inspect(root)
    assert counts(dataset) == {"blue": 5, "green": 5, "red": 5}
    assert all("/train/red/up/" not in r.path for r in dataset.train + dataset.val)
    assert set(link_warnings(problems)) == {"up"}


def test_a_link_to_a_sibling_class_is_not_counted_twice(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=3)
    os.symlink("../green", root / "train" / "red" / "more")
    os.symlink(root / "train" / "blue", root / "train" / "red" / "absolute")
    dataset, problems = inspect(root)
    assert counts(dataset) == {"blue": 3, "green": 3, "red": 3}
    warned = link_warnings(problems)
    assert set(warned) == {"more", "absolute"}
    assert "'train/green'" in warned["more"] and "count once" in warned["more"]


def test_a_link_out_of_the_dataset_is_followed_once(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=2)
    store = make_imagefolder(tmp_path / "store", classes=("red",), per_class=3) / "train" / "red"
    os.symlink(store, root / "train" / "red" / "shared")
    os.symlink(store, root / "train" / "red" / "shared_again")  # the same real folder: read once
    os.symlink("..", store / "loop")  # a loop inside the store ends too
    dataset, problems = inspect(root)
    assert not problems.has_errors, problems.errors
    assert counts(dataset) == {"blue": 2, "green": 2, "red": 5}
    assert sum("/train/red/shared/" in r.path for r in dataset.train + dataset.val) == 3
    warned = link_warnings(problems)
    assert set(warned) == {"shared_again", "loop"} and "read already" in warned["shared_again"]


def test_a_class_folder_that_is_a_link_into_the_dataset_is_skipped(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=2)
    os.symlink("..", root / "train" / "up")  # a "class" holding the whole dataset
    dataset, problems = inspect(root)
    assert dataset is None or counts(dataset).get("up", 0) == 0
    assert "up" in link_warnings(problems)
    assert any(p.kind == "empty-class" and p.file.endswith("train/up") for p in problems.errors)


def test_links_into_system_folders_and_past_the_limit(tmp_path, make_imagefolder, monkeypatch):
    root = make_imagefolder(tmp_path / "data", per_class=2)
    os.symlink("/proc", root / "train" / "red" / "proc")
    assert "system folder" in link_warnings(inspect(root)[1])["proc"]
    os.unlink(root / "train" / "red" / "proc")
    store = make_imagefolder(tmp_path / "store", classes=("red",), per_class=6) / "train" / "red"
    os.symlink(store, root / "train" / "red" / "shared")
    monkeypatch.setattr(walk_module, "MAX_LINKED_ENTRIES", 4)
    dataset, problems = inspect(root)
    assert [p.kind for p in problems.errors] == ["link-limit"]
    assert problems.errors[0].file.endswith("shared") and "copy the images" in problems.errors[0].message


def test_dice_and_staging_follow_the_same_rule(tmp_path, make_dice):
    root = make_dice(tmp_path / "dice")
    before = counts(inspect(root, fmt="dice")[0])
    os.symlink("..", root / "batch0" / "up")
    os.symlink("../..", root / "batch1" / "images" / "top")
    dataset, problems = inspect(root, fmt="dice")
    assert not problems.has_errors, problems.errors
    assert counts(dataset) == before
    assert set(link_warnings(problems)) == {"up", "top"}

    yolo = make_yolo(tmp_path / "yolo", {"train/a": "0 0.5 0.5 0.2 0.2", "train/b": "1 0.5 0.5 0.2 0.2"})
    os.symlink("..", yolo / "images" / "train" / "again")
    _mirror(yolo / "images" / "train", tmp_path / "staged", yolo)
    staged = sorted(str(p.relative_to(tmp_path / "staged")) for p in (tmp_path / "staged").rglob("*"))
    assert staged == ["a.png", "b.png"]


def test_a_walk_past_its_deadline_stops_at_once(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=3)
    expired = Deadline(0)
    started = time.monotonic()
    with deadline_scope(expired), pytest.raises(CheckCancelled):
        list_images(root)
    with deadline_scope(expired), pytest.raises(CheckCancelled):
        inspect_dataset(root, "imagefolder", TASK, decode="none")
    assert time.monotonic() - started < 1
    assert list_images(root)  # outside the scope: no deadline


def test_a_cancelled_walk_stops_at_its_next_folder(tmp_path, make_imagefolder):
    root = make_imagefolder(tmp_path / "data", per_class=1)
    deadline = Deadline(60)
    with deadline_scope(deadline):
        folders = walk(root)
        next(folders)
        deadline.cancel()
        with pytest.raises(CheckCancelled):
            next(folders)


def test_a_listing_is_in_path_order_as_strings_and_as_paths(tmp_path):
    """Readers key and split datasets by listing order: the string listing must sort as ``Path`` does (part by
    part: ``a/b`` before ``a-c``, which plain string order reverses)."""
    from adapters.datasets.images import list_image_paths

    for name in ("a/b.png", "a-c.png", "a/a/z.png", "A.png", "a0.png", "b/.hidden.png", "c.txt", "a.b/x.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    as_paths = list_images(tmp_path)
    assert [str(p) for p in as_paths] == list_image_paths(tmp_path)
    assert as_paths == sorted(as_paths)
    assert [p.relative_to(tmp_path).as_posix() for p in as_paths] == [
        "A.png", "a/a/z.png", "a/b.png", "a-c.png", "a.b/x.png", "a0.png"]
