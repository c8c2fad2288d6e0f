"""Reading a dataset for a task: the format's reader, then the split, then the shared checks.

``inspect_dataset`` never raises on a bad dataset: it returns what it could read and every
problem found, for ``visionyard datasets check`` and the daemon's submit-time check.
``read_dataset`` is what a trainer calls: the dataset, or ``DatasetError`` listing the problems.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, formats_for_task, get_format
from adapters.datasets.images import SUBMIT_SAMPLE, check_decodes
from adapters.datasets.problems import Problems
from adapters.datasets.records import OBJECT_TASKS, TASKS, Dataset, ImageRecord
from adapters.datasets.split import SplitOptions, make_split

#: How far a pixel coordinate may lie outside the image (rounding in annotation tools).
PIXEL_SLACK = 1.0
#: How far a normalized coordinate may exceed [0, 1] (float formatting in exporters).
NORM_SLACK = 1e-6
#: Tasks that need at least two classes (a semantic map's background counts as one).
MULTI_CLASS_TASKS = ("image_classification", "semantic_segmentation")


def inspect_dataset(path, fmt: str, task: str, *, split: SplitOptions | None = None,
                    decode: str = "sample", scale: int | None = None) -> tuple[Dataset | None, Problems]:
    """The dataset and its problems. ``decode``: "sample" (a few images per split), "all", "none"."""
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
    _check_records(dataset, problems)
    if decode != "none":
        for records in (dataset.train, dataset.val):
            check_decodes(records, problems, sample=SUBMIT_SAMPLE if decode == "sample" else None, seed=split.seed)
    return dataset, problems


def read_dataset(path, fmt: str, task: str, *, split: SplitOptions | None = None,
                 decode: str = "none", scale: int | None = None) -> Dataset:
    """The dataset, or DatasetError listing every error (warnings are only logged)."""
    dataset, problems = inspect_dataset(path, fmt, task, split=split, decode=decode, scale=scale)
    problems.raise_errors()
    assert dataset is not None
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


def _check_records(dataset: Dataset, problems: Problems) -> None:
    """Class ids, coordinates, boxes, and class coverage: the checks every format shares."""
    task, n = dataset.task, dataset.num_classes
    if task in MULTI_CLASS_TASKS and n < 2:
        problems.error(dataset.root, f"{task} needs at least 2 classes, found {n} ({', '.join(dataset.class_names)})",
                       kind="too-few-classes")
    if task in ("image_classification", *OBJECT_TASKS) and n < 1:
        problems.error(dataset.root, "has no classes", kind="too-few-classes")
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
                bounds = _bounds(record)
                for ann in record.annotations:
                    _check_annotation(record, ann, n, bounds, problems)
                    seen[ann.class_id] += 1
        per_split[name] = seen
    if task in ("image_classification", *OBJECT_TASKS) and dataset.val:
        missing = [dataset.class_names[i] for i in range(n) if per_split["train"][i] and not per_split["val"][i]]
        if missing:
            shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
            problems.warning(dataset.root, f"class(es) with no validation images: {shown}; their validation "
                             "metrics will be missing", kind="class-without-val")


def _check_label(record: ImageRecord, n: int, problems: Problems) -> None:
    if record.label is None or not 0 <= record.label < n:
        problems.error(record.label_file or record.path, f"class {record.label} is not one of the {n} classes",
                       kind="class-id")


def _bounds(record: ImageRecord) -> tuple[float, float, float] | None:
    """(lowest, highest x, highest y) an annotation coordinate of this image may take, slack included;
    None when the image size is unknown. Computed once per image: the per-annotation checks are the
    hot loop of a submit-time check on a large dataset."""
    if record.normalized:
        return 0.0 - NORM_SLACK, 1.0 + NORM_SLACK, 1.0 + NORM_SLACK
    if record.width and record.height:
        return 0.0 - PIXEL_SLACK, float(record.width) + PIXEL_SLACK, float(record.height) + PIXEL_SLACK
    return None


def _unit(record: ImageRecord) -> str:
    if record.normalized:
        return "normalized coordinates must lie in [0, 1]"
    return f"the image is {record.width}x{record.height} px"


def _check_annotation(record: ImageRecord, ann, n: int, bounds: tuple[float, float, float] | None,
                      problems: Problems) -> None:
    """``bounds``: ``_bounds(record)``."""
    where = ann.where
    file = record.label_file or record.path
    if not 0 <= ann.class_id < n:
        problems.error(file, f"class id {ann.class_id} is outside 0..{n - 1} ({n} class names); fix the id or "
                       "the class list", where=where, kind="class-id")
        return
    box = ann.box
    if box is not None:
        x1, y1, x2, y2 = box
        if not (x2 > x1 and y2 > y1):
            problems.error(file, f"degenerate box {_fmt(box)} (zero or negative width or height); fix or remove it",
                           where=where, kind="degenerate-box")
            return
        if bounds is not None and (x1 < bounds[0] or y1 < bounds[0] or x2 > bounds[1] or y2 > bounds[2]):
            problems.error(file, f"box {_fmt(box)} lies outside the image ({_unit(record)})", where=where,
                           kind="out-of-image")
            return
    if bounds is None:
        return
    polygons, keypoints = ann.polygons, ann.keypoints
    if polygons:  # one polygon (nearly every object) is checked in place, parts as one flat list
        points = polygons[0] if len(polygons) == 1 else [v for p in polygons for v in p]
        name = "polygon" if points and _outside(points[0::2], points[1::2], bounds) else None
    else:
        name = None
    if name is None and ann.rbox and _outside(ann.rbox[0::2], ann.rbox[1::2], bounds):
        name = "rotated box"
    if name is None and keypoints:  # unlabelled keypoints (v == 0) may hold any placeholder
        labelled = [i for i, v in enumerate(keypoints[2::3]) if v > 0]
        if _outside([keypoints[3 * i] for i in labelled], [keypoints[3 * i + 1] for i in labelled], bounds):
            name = "keypoint"
    if name is not None:
        problems.error(file, f"{name} point outside the image ({_unit(record)})", where=where, kind="out-of-image")


def _outside(xs: list, ys: list, bounds: tuple[float, float, float]) -> bool:
    """Whether a point (xs[i], ys[i]) lies outside ``bounds``; False when there are none."""
    lo, hi_x, hi_y = bounds
    return bool(xs) and (min(xs) < lo or min(ys) < lo or max(xs) > hi_x or max(ys) > hi_y)


def _fmt(box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"
