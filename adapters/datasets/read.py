"""Reading a dataset for a task: the format's reader, then the split, then the shared checks.

``inspect_dataset`` never raises on a bad dataset: it returns what it could read and every
problem found, for ``visionyard datasets check`` and the daemon's submit-time check.
``read_dataset`` is what a trainer calls: the dataset, or ``DatasetError`` listing the problems.

The shared checks also settle what the frameworks forgive (``edges.py``): a coordinate that
overshoots the image by rounding is clipped to it, and zero-area boxes and exact duplicate labels
are dropped, each with a warning; ``Dataset.label_fixes`` says what changed, so a trainer that
reads the files on disk gets a staged copy with the fixed labels (``stage.py``).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

from adapters.datasets.edges import Clipped, EdgeFit, fmt, inside, same_object
from adapters.datasets.formats import RawDataset, ReadOptions, formats_for_task, get_format
from adapters.datasets.images import SUBMIT_SAMPLE, check_decodes
from adapters.datasets.problems import WARNING, Problems
from adapters.datasets.records import OBJECT_TASKS, TASKS, Annotation, Dataset, ImageRecord
from adapters.datasets.split import SplitOptions, make_split

log = logging.getLogger("visionyard.datasets")
#: Tasks that need at least two classes (a semantic map's background counts as one).
MULTI_CLASS_TASKS = ("image_classification", "semantic_segmentation")
#: Tasks whose records are not images: their format's reader checks that they decode (``video_folder``).
READER_DECODES = ("video_classification",)


def inspect_dataset(path, fmt: str, task: str, *, split: SplitOptions | None = None, decode: str = "sample",
                    scale: int | None = None, strict: bool = False) -> tuple[Dataset | None, Problems]:
    """The dataset and its problems. ``decode``: "sample" (a few images per split), "all", "none".

    ``strict``: coordinates must lie on the image (1 px for pixels, 1e-6 normalized) and a
    zero-area box is an error, instead of being clipped or dropped with a warning.
    """
    problems = Problems()
    root = Path(path).expanduser().absolute()
    split = split or SplitOptions()
    if task not in TASKS:
        problems.error(root, f"unknown task '{task}'. Valid: {', '.join(TASKS)}")
        return None, problems
    try:
        info = get_format(fmt)
    except ValueError as exc:
        problems.error(root, str(exc))
        return None, problems
    if task not in info.tasks:
        serving = ", ".join(formats_for_task(task)) or "none"
        problems.error(root, f"format '{fmt}' cannot serve task {task} (it serves {', '.join(info.tasks)}); "
                       f"for {task} use: {serving}", kind="format-task")
        return None, problems
    if not root.is_dir():
        problems.error(root, "does not exist or is not a folder")
        return None, problems

    try:
        raw = info.reader(root, ReadOptions(task=task, scale=scale, decode=decode), problems)
    except OSError as exc:
        problems.error(getattr(exc, "filename", None) or root, f"cannot read the dataset: {exc}")
        return None, problems
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # a value of the wrong type deep in a file
        problems.error(root, f"a {fmt} file holds a value of the wrong type ({type(exc).__name__}: {exc}); "
                       f"run `visionyard datasets check` and fix the file it names")
        return None, problems
    if raw is None:
        if not problems.has_errors:
            problems.error(root, f"not a {fmt} dataset ({info.layout})")
        return None, problems

    dataset = _split(root, fmt, task, raw, split, problems)
    dataset = _check_records(dataset, problems, strict)
    if decode != "none" and task not in READER_DECODES:
        for records in (dataset.train, dataset.val):
            check_decodes(records, problems, sample=SUBMIT_SAMPLE if decode == "sample" else None, seed=split.seed)
    return dataset, problems


def read_dataset(path, fmt: str, task: str, *, split: SplitOptions | None = None,
                 decode: str = "none", scale: int | None = None, quiet: bool = False) -> Dataset:
    """The dataset, or DatasetError listing every error.

    Warnings are logged (``visionyard.datasets``; a job's log), unless ``quiet``: for a second
    read of a dataset whose warnings were already logged.
    """
    dataset, problems = inspect_dataset(path, fmt, task, split=split, decode=decode, scale=scale)
    problems.raise_errors()
    assert dataset is not None
    if not quiet:
        for problem in problems.warnings:
            log.warning("dataset: %s", problem)
        if hidden := problems.more(WARNING):
            log.warning("dataset: ... and %d more warning(s) of the same kinds", hidden)
    return dataset


def _split(root: Path, fmt: str, task: str, raw: RawDataset, options: SplitOptions, problems: Problems) -> Dataset:
    train = raw.splits.get("train") or []
    val = raw.splits.get("val") or []
    source = "disk"
    if not train and not val:
        problems.error(root, "has no images: the train split is empty", kind="empty-split")
    elif not train:
        problems.error(root, "the train split is empty (only val has images)", kind="empty-split")
    elif not val:
        train, val = make_split(train, task, options, root, problems)
        source = options.resolved_strategy(task)
        if not val and not problems.has_errors:
            problems.error(root, f"no validation images: the dataset has no val split and {len(train)} image(s) "
                           "are too few to split; add images or a val split", kind="empty-split")
    return Dataset(str(root), fmt, task, raw.class_names, train, val, raw.kpt_shape, raw.scale, source)


def _check_records(dataset: Dataset, problems: Problems, strict: bool) -> Dataset:
    """Class ids, coordinates, boxes, and class coverage: the checks every format shares. Returns the
    dataset with what was fixed (clipped, dropped) in ``label_fixes``."""
    task, n = dataset.task, dataset.num_classes
    if task in MULTI_CLASS_TASKS and n < 2:
        problems.error(dataset.root, f"{task} needs at least 2 classes, found {n} ({', '.join(dataset.class_names)})",
                       kind="too-few-classes")
    if task in ("image_classification", *OBJECT_TASKS) and n < 1:
        problems.error(dataset.root, "has no classes", kind="too-few-classes")
    fixes = _Fixes(strict)
    per_split: dict[str, Counter] = {}
    for name in ("train", "val"):
        seen: Counter = Counter()
        for record in dataset.split(name):
            if task == "image_classification":
                _check_label(record, n, problems)
                seen[record.label] += 1
            elif task in OBJECT_TASKS:
                if not record.annotations:
                    problems.warning(record.path, "has no labels (it trains as a background image); label it "
                                     "or remove it if that is a mistake", kind="unlabelled-image")
                    continue
                _check_objects(record, n, fixes, problems, seen)
        per_split[name] = seen
    if task in ("image_classification", *OBJECT_TASKS) and dataset.val:
        missing = [dataset.class_names[i] for i in range(n) if per_split["train"][i] and not per_split["val"][i]]
        if missing:
            shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
            problems.warning(dataset.root, f"class(es) with no validation images: {shown}; their validation "
                             "metrics will be missing", kind="class-without-val")
    label_fixes = fixes.report(dataset.root, problems)
    return replace(dataset, label_fixes=label_fixes) if label_fixes else dataset


def _check_label(record: ImageRecord, n: int, problems: Problems) -> None:
    if record.label is None or not 0 <= record.label < n:
        problems.error(record.label_file or record.path, f"class {record.label} is not one of the {n} classes",
                       kind="class-id")


class _Fixes:
    """What the object checks clipped and dropped across a dataset, for the warnings and ``label_fixes``."""

    def __init__(self, strict: bool):
        self.strict = strict
        self.clipped = Clipped()
        self.dropped: dict[str, list] = {"zero-area": [0, ""], "duplicate": [0, ""]}

    def drop(self, kind: str, place: str) -> None:
        entry = self.dropped[kind]
        entry[0] += 1
        entry[1] = entry[1] or place

    def report(self, root: str, problems: Problems) -> tuple[str, ...]:
        lines = []
        clipped = self.clipped.message()
        if clipped:
            problems.warning(root, clipped, kind="clipped-to-image")
            lines.append(clipped)
        for kind, one, many in (("zero-area", "zero-area box", "zero-area boxes"),
                                ("duplicate", "duplicate label", "duplicate labels")):
            count, first = self.dropped[kind]
            if count:
                lines.append(f"{count} {one if count == 1 else many} dropped (first at {first})")
        return tuple(lines)


def _check_objects(record: ImageRecord, n: int, fixes: _Fixes, problems: Problems, seen: Counter) -> None:
    """Each annotation of an image: class id, box size, coordinates on the image, exact duplicates;
    ``seen`` counts the objects kept per class id.

    Coordinates within the tolerance are clipped in place (``edges.py``); zero-area boxes and
    duplicates (identical once clipped) leave ``record.annotations``; what is wrong stays,
    reported as an error. This runs once per annotation at every submit (100k+ in a large COCO
    file), so the common case is plain comparisons: a box inside the image, nothing else.
    """
    file = record.label_file or record.path
    if record.normalized:
        w = h = 1.0
    elif record.width and record.height:
        w, h = float(record.width), float(record.height)
    else:
        w = h = None  # the size is unknown: nothing to measure coordinates against
    edge: EdgeFit | None = None
    drop: list[Annotation] = []
    anns = record.annotations
    lefts: set = set()  # each box's x1: an image whose boxes all differ there has no duplicates
    for ann in anns:
        seen[ann.class_id] += 1
        if not 0 <= ann.class_id < n:
            problems.error(file, f"class id {ann.class_id} is outside 0..{n - 1} ({n} class names); fix the id or "
                           "the class list", where=ann.where, kind="class-id")
            continue
        box = ann.box
        if box is not None and (box[2] < box[0] or box[3] < box[1]):
            problems.error(file, f"degenerate box {fmt(box)} (negative width or height); fix or remove it",
                           where=ann.where, kind="degenerate-box")
            continue
        if w is not None and ((box is not None and (box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h))
                              or ((ann.polygons or ann.rbox or ann.keypoints) and not inside(ann, w, h))):
            edge = edge or EdgeFit(record, fixes.strict, fixes.clipped)
            wrong = edge.fit(ann, ann.where)
            if wrong is not None:
                problems.error(file, wrong, where=ann.where, kind="out-of-image")
                continue
            box = ann.box
        if box is None:
            continue
        if box[2] == box[0] or box[3] == box[1]:
            if fixes.strict:
                problems.error(file, f"degenerate box {fmt(box)} (zero or negative width or height); fix or remove "
                               "it", where=ann.where, kind="degenerate-box")
                continue
            problems.warning(file, f"zero-area box {fmt(box)} (no width or height on the image); dropped",
                             where=ann.where, kind="zero-area-box")
            fixes.drop("zero-area", f"{file}:{ann.where}")
            fixes.clipped.forget(ann)
            drop.append(ann)
            continue
        lefts.add(box[0])
    if len(lefts) < len(anns) - len(drop):
        drop += _duplicates(anns, drop, file, fixes, problems)
    if drop:
        seen.subtract(ann.class_id for ann in drop)
        dropped = set(map(id, drop))
        record.annotations = [a for a in anns if id(a) not in dropped]


def _duplicates(anns: list[Annotation], dropped: list[Annotation], file: str, fixes: _Fixes,
                problems: Problems) -> list[Annotation]:
    """The annotations identical to an earlier one (class, geometry, ignore flag), each warned about."""
    skip = set(map(id, dropped))
    first: dict[tuple, list[Annotation]] = {}
    found = []
    for ann in anns:
        if id(ann) in skip:
            continue
        twins = first.setdefault((ann.class_id, ann.box), [])
        original = next((t for t in twins if same_object(t, ann)), None)
        if original is None:
            twins.append(ann)
            continue
        problems.warning(file, f"duplicate of {original.where or 'an earlier label'} (same class and coordinates); "
                         "dropped", where=ann.where, kind="duplicate-label")
        fixes.drop("duplicate", f"{file}:{ann.where}")
        fixes.clipped.forget(ann)
        found.append(ann)
    return found
