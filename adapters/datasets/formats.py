"""The format registry: one dict, filled by ``@register_format`` in each format's module."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord
from adapters.datasets.walk import dataset_scope


@dataclass
class RawDataset:
    """What a reader found on disk, before splitting and the checks every format shares."""

    class_names: tuple[str, ...]
    #: "train" and, when the dataset has one, "val".
    splits: dict[str, list[ImageRecord]] = field(default_factory=dict)
    kpt_shape: tuple[int, int] | None = None
    scale: int | None = None


@dataclass(frozen=True)
class ReadOptions:
    task: str
    #: Super-resolution: the upscaling factor when the layout does not say (HR-only datasets).
    scale: int | None = None
    #: How much pixel data a reader may decode for its own checks (mask values, LR sizes):
    #: "none", "sample" (a few per split, at submit) or "all" (``datasets check``).
    decode: str = "none"


Reader = Callable[[Path, ReadOptions, Problems], "RawDataset | None"]


@dataclass(frozen=True)
class FormatInfo:
    name: str
    tasks: tuple[str, ...]
    layout: str
    reader: Reader


_FORMATS: dict[str, FormatInfo] = {}


def register_format(name: str, tasks: tuple[str, ...], layout: str):
    """Register the decorated reader under ``name``; returns the reader unchanged.

    The registry calls it inside its dataset's ``walk.dataset_scope``: every folder the reader
    walks obeys the dataset's link rule, and the links it skips are warnings in its problems.
    """
    def wrap(reader: Reader) -> Reader:
        if name in _FORMATS:
            raise ValueError(f"dataset format {name!r} is registered twice")
        _FORMATS[name] = FormatInfo(name, tuple(tasks), layout, _in_scope(reader))
        return reader
    return wrap


def _in_scope(reader: Reader) -> Reader:
    @functools.wraps(reader)
    def read(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
        with dataset_scope(root, problems):
            return reader(root, options, problems)
    return read


def get_format(name: str) -> FormatInfo:
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(f"Unknown dataset format '{name}'. Valid: {', '.join(format_names())}") from None


def format_names() -> list[str]:
    return list(_FORMATS)


def formats_for_task(task: str) -> list[str]:
    return [info.name for info in _FORMATS.values() if task in info.tasks]
