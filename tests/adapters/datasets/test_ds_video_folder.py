"""The ``video_folder`` format on the host (no decoder): layout, classes, the checks that need no decoding
(extension, empty file, a file that is no video container, class folders without videos), frame sampling.
Decoding (headers at submit, every frame in ``datasets check``) needs PyAV and is checked in the transformers
env (``tests/adapters/transformers/test_hf_video.py``)."""

from __future__ import annotations

import random

import pytest

from adapters.datasets import inspect_dataset, read_dataset
from adapters.datasets.video_folder import frame_indices, has_pyav, is_video, sniff_container
from tests.dataset_fixtures import VIDEO_HEADERS, make_fake_videos

TASK = "video_classification"


def errors(problems) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for problem in problems.errors:
        out.setdefault(problem.kind, []).append(problem.file)
    return out


def test_reads_classes_and_videos_of_every_container(tmp_path):
    root = make_fake_videos(tmp_path, {"train/walk/a.mp4": None, "train/walk/b.MOV": None, "train/run/c.avi": None,
                                       "train/run/d.mkv": None, "train/run/e.webm": None, "val/run/f.mp4": None,
                                       "val/walk/g.mp4": None})
    dataset = read_dataset(root, "video_folder", TASK, decode="all" if not has_pyav() else "none")
    assert dataset.class_names == ("run", "walk") and dataset.val_source == "disk"
    assert sorted((r.path.rsplit("/", 1)[1], r.label) for r in dataset.train) == [
        ("a.mp4", 1), ("b.MOV", 1), ("c.avi", 0), ("d.mkv", 0), ("e.webm", 0)]
    assert sorted(r.label for r in dataset.val) == [0, 1]


def test_every_problem_names_its_file(tmp_path):
    root = make_fake_videos(tmp_path, {
        "train/walk/a.mp4": None, "train/walk/notes.txt": b"hello",  # another extension: a warning, not used
        "train/walk/empty.mp4": b"",  # an empty file
        "train/walk/fake.mp4": b"<html>not a video</html>",  # not a container
        "train/run/b.avi": None, "train/jump/only.gif": b"GIF89a",  # a class folder without videos
        "val/swim/c.mp4": None,  # a val class that train lacks
    })
    dataset, problems = inspect_dataset(root, "video_folder", TASK, decode="none")
    found = errors(problems)
    assert found["unreadable-video"] == [str(root / "train/walk/empty.mp4"), str(root / "train/walk/fake.mp4")]
    assert found["empty-class"] == [str(root / "train/jump")]
    assert found["layout"] == [str(root / "val")]
    warned = {(p.kind, p.file) for p in problems.warnings}
    assert ("unknown-extension", str(root / "train/walk/notes.txt")) in warned
    assert ("unknown-extension", str(root / "train/jump/only.gif")) in warned
    messages = " ".join(p.message for p in problems.errors)
    assert "is empty (0 bytes)" in messages and "is not a video file" in messages and "swim" in messages
    assert dataset is not None  # val/ holds no class of train/: val is made from train
    assert sorted(r.path for r in dataset.train + dataset.val) == [str(root / "train/run/b.avi"),
                                                                   str(root / "train/walk/a.mp4")]


def test_needs_two_classes_and_a_train_folder(tmp_path):
    _, problems = inspect_dataset(make_fake_videos(tmp_path / "one", {"train/walk/a.mp4": None,
                                                                       "train/walk/b.mp4": None}), "video_folder", TASK)
    assert "too-few-classes" in errors(problems)
    _, problems = inspect_dataset(make_fake_videos(tmp_path / "none", {"val/walk/a.mp4": None}), "video_folder", TASK)
    assert errors(problems) == {"layout": [str(tmp_path / "none")]}


def test_without_a_val_split_val_is_made_from_train(tmp_path):
    root = make_fake_videos(tmp_path, {f"train/{c}/{i}.mp4": None for c in ("a", "b") for i in range(5)})
    dataset = read_dataset(root, "video_folder", TASK)
    assert len(dataset.train) + len(dataset.val) == 10 and dataset.val and dataset.val_source == "random"


@pytest.mark.skipif(has_pyav(), reason="the host env has no PyAV: it checks files without decoding them")
def test_the_host_checks_without_a_decoder(tmp_path):
    """Files that start like containers pass on the host even when asked to decode everything: decoding waits
    for the child (which has PyAV); the format's other tasks are refused as for any format."""
    root = make_fake_videos(tmp_path, {"train/a/x.mp4": None, "train/b/y.mkv": None, "val/a/z.avi": None})
    dataset, problems = inspect_dataset(root, "video_folder", TASK, decode="all")
    assert dataset is not None and not problems.errors
    _, problems = inspect_dataset(root, "video_folder", "image_classification")
    assert [p.kind for p in problems.errors] == ["format-task"]


def test_container_sniffing():
    for extension, head in VIDEO_HEADERS.items():
        assert sniff_container(head) == {".avi": "avi", ".mkv": "matroska", ".webm": "matroska"}.get(extension, "mp4")
    for head in (b"", b"\x89PNG\r\n\x1a\n....", b"RIFF\x00\x00\x00\x00WAVE", b"GIF89a"):
        assert sniff_container(head) is None
    assert is_video("a/B.MKV") and is_video("x.webm") and not is_video("x.gif") and not is_video("mp4")


def test_frames_are_sampled_uniformly_over_the_clip():
    assert frame_indices(16, 4) == [2, 6, 10, 14]  # the middle of each quarter
    assert frame_indices(300, 8) == [18, 56, 93, 131, 168, 206, 243, 281]
    assert frame_indices(3, 4) == [0, 1, 1, 2]  # a short clip repeats frames
    assert frame_indices(0, 2) == [0, 0]
    rng = random.Random(0)
    for _ in range(50):  # training: a random frame of each segment
        picked = frame_indices(16, 4, rng)
        assert all(4 * i <= f < 4 * (i + 1) for i, f in enumerate(picked))
