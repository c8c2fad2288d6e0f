"""Making a validation split when a dataset has none on disk: reproducible from the seed.

Strategies:
- ``stratified`` (default for classification): ``val_ratio`` of each class (at least one, never
  the last one). For object tasks an image's stratum is its lowest class id (background images
  form their own), so rare classes still reach val.
- ``random``: a seeded shuffle, the first ``val_ratio`` to val (default for other tasks).
- ``sequential``: images in path order, the last ``val_ratio`` to val (time-ordered captures).
- ``file``: ``split_file`` lists the train images, one per line (relative to the dataset root
  or absolute; ``#`` comments); every other image goes to val.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord

STRATEGIES = ("stratified", "random", "sequential", "file")
DEFAULT_VAL_RATIO = 0.2


@dataclass(frozen=True)
class SplitOptions:
    strategy: str | None = None  # None: stratified for classification, random otherwise
    val_ratio: float = DEFAULT_VAL_RATIO
    split_file: str | None = None
    seed: int = 0

    def resolved_strategy(self, task: str) -> str:
        if self.strategy:
            return self.strategy
        if self.split_file:
            return "file"
        return "stratified" if task == "image_classification" else "random"


def make_split(records: list[ImageRecord], task: str, options: SplitOptions, root: Path,
               problems: Problems) -> tuple[list[ImageRecord], list[ImageRecord]]:
    strategy = options.resolved_strategy(task)
    if strategy not in STRATEGIES:
        problems.error(root, f"unknown split strategy '{strategy}'. Valid: {', '.join(STRATEGIES)}")
        return records, []
    ordered = sorted(records, key=lambda r: r.path)
    if strategy == "file":
        return _from_file(ordered, options.split_file, root, problems)
    if strategy == "sequential":
        n_val = _n_val(len(ordered), options.val_ratio)
        return ordered[: len(ordered) - n_val], ordered[len(ordered) - n_val:]
    rng = random.Random(options.seed)
    if strategy == "random":
        rng.shuffle(ordered)
        n_val = _n_val(len(ordered), options.val_ratio)
        return ordered[n_val:], ordered[:n_val]
    return _stratified(ordered, task, options.val_ratio, rng)


def _n_val(total: int, ratio: float) -> int:
    """At least one val image, never all of them (when there are two or more)."""
    if total < 2:
        return 0
    return min(max(1, round(total * ratio)), total - 1)


def _stratum(record: ImageRecord, task: str) -> int:
    if task == "image_classification" or record.label is not None:
        return -1 if record.label is None else record.label
    return min((a.class_id for a in record.annotations), default=-1)


def _stratified(ordered, task, ratio, rng) -> tuple[list[ImageRecord], list[ImageRecord]]:
    groups: dict[int, list[ImageRecord]] = defaultdict(list)
    for record in ordered:
        groups[_stratum(record, task)].append(record)
    train: list[ImageRecord] = []
    val: list[ImageRecord] = []
    for key in sorted(groups):
        group = groups[key]
        rng.shuffle(group)
        n_val = _n_val(len(group), ratio)
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return train, val


def _from_file(ordered, split_file, root: Path, problems: Problems):
    if not split_file:
        problems.error(root, "split strategy 'file' needs dataset.split_file (a text file listing the "
                       "train images, one per line)")
        return ordered, []
    path = Path(split_file)
    if not path.is_absolute():
        path = root / path
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(path, f"cannot read the split file: {exc}")
        return ordered, []
    wanted: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        entry = line.split("#", 1)[0].strip()
        if entry:
            full = Path(entry) if Path(entry).is_absolute() else root / entry
            wanted[str(full.absolute())] = number
    known = {str(Path(r.path).absolute()) for r in ordered}
    for entry, number in wanted.items():
        if entry not in known:
            problems.error(path, f"'{entry}' is not an image of this dataset (list train images relative "
                           f"to {root})", where=f"line {number}", kind="split-file-unknown-image")
    train = [r for r in ordered if str(Path(r.path).absolute()) in wanted]
    val = [r for r in ordered if str(Path(r.path).absolute()) not in wanted]
    return train, val
