"""The format registry: one ``Registry``, filled by ``@register_format`` in each format's module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord
from adapters.datasets.walk import dataset_scope
from adapters.registry import Registry


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
class InScope:
    """A reader run inside its dataset's ``walk.dataset_scope``: every folder it walks obeys the
    dataset's link rule, and the links it skips are warnings in its problems. Equal when the
    readers are the same function."""

    read: Reader

    def __call__(self, root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
        with dataset_scope(root, problems):
            return self.read(root, options, problems)


@dataclass(frozen=True)
class FormatInfo:
    name: str
    tasks: tuple[str, ...]
    layout: str
    reader: InScope


FORMATS: Registry[FormatInfo] = Registry(
    "dataset format", describe=lambda info: f"the reader {info.reader.read.__module__}.{info.reader.read.__qualname__}")


def register_format(name: str, tasks: tuple[str, ...], layout: str):
    """Register the decorated reader under ``name``; returns the reader unchanged.

    The registry calls it inside its dataset's ``walk.dataset_scope`` (``InScope``). The same
    reader, tasks and layout again are a no-op; anything else under a taken name raises
    ``AlreadyRegisteredError`` (a ValueError).
    """
    def wrap(reader: Reader) -> Reader:
        FORMATS.register(name, FormatInfo(name, tuple(tasks), layout, InScope(reader)))
        return reader
    return wrap


def get_format(name: str) -> FormatInfo:
    """The format named ``name``; ``UnknownNameError`` (a ValueError) lists the valid ones."""
    return FORMATS.get(name)


def format_names() -> list[str]:
    """Every format's name, sorted (not in the order the modules happened to register)."""
    return sorted(FORMATS.names())


def formats_for_task(task: str) -> list[str]:
    return [info.name for info in FORMATS.values() if task in info.tasks]
