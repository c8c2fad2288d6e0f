"""The format registry: one rule for registering a name again, and readers run in their dataset's scope."""

from __future__ import annotations

import pytest

from adapters.datasets import format_names, get_format
from adapters.datasets.formats import InScope, ReadOptions, register_format
from adapters.datasets.problems import Problems
from adapters.datasets.walk import _scope
from adapters.registry import AlreadyRegisteredError, UnknownNameError


def other_reader(root, options, problems):
    return None


def test_registering_a_format_again_is_a_no_op_and_a_different_one_is_refused():
    info = get_format("yolo")
    names = format_names()
    reader = info.reader.read
    assert register_format("yolo", info.tasks, info.layout)(reader) is reader  # the same: kept as it was
    assert get_format("yolo") is info
    with pytest.raises(AlreadyRegisteredError,
                       match=r"^dataset format 'yolo' is already registered as the reader "
                             r"adapters\.datasets\.yolo\.read_yolo; refusing the reader "
                             r"tests\.adapters\.datasets\.test_ds_formats\.other_reader \(they differ in: reader\)$"):
        register_format("yolo", info.tasks, info.layout)(other_reader)
    with pytest.raises(AlreadyRegisteredError, match=r"\(they differ in: tasks\)$"):
        register_format("yolo", ("ocr",), info.layout)(reader)
    assert get_format("yolo") is info and format_names() == names


def test_an_unknown_format_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        get_format("kitti")
    assert str(info.value) == f"Unknown dataset format 'kitti'. Valid: {', '.join(sorted(format_names()))}"
    assert isinstance(info.value, ValueError)


def test_a_registered_reader_runs_inside_its_dataset_scope(tmp_path):
    seen = []

    def reader(root, options, problems):
        seen.append(_scope.get())

    problems = Problems()
    InScope(reader)(tmp_path, ReadOptions(task="object_detection"), problems)
    assert seen[0] is not None and seen[0].root == str(tmp_path) and seen[0].problems is problems
    assert _scope.get() is None
    assert InScope(reader) == InScope(reader) != InScope(other_reader)
