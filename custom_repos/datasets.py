"""The dataset a custom repo reads: checked by the shared dataset layer, staged into the job dir.

Checked on the host before a job is queued with the same readers the framework adapters use
(``adapters.datasets``), so a wrong layout or label is an error naming the file instead of a
crash minutes into a child run. Repos evaluate on a val split of their own, so the dataset must
have one on disk (they cannot split train themselves).

- ``yolo``: ``images/{train,val}/`` + ``labels/{train,val}/`` (or ``{train,val}/images`` +
  ``{train,val}/labels``); class names from ``data.yaml`` or ``classes.txt``.
- ``imagefolder``: ``train/<class>/<image>`` and ``val/<class>/<image>``, the same classes in
  both (torchvision's ImageFolder numbers each split's class folders on its own).
- ``coco``: always written fresh into the job dir by the dataset layer (``images/{train,val}/``,
  ``annotations/instances_{train,val}.json``, category ids 1..N in class order), whatever the
  source format, so a repo reads one layout and the val split may come from the job's split settings.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from adapters.datasets import SplitOptions, formats_for_task
from adapters.datasets import inspect_dataset as inspect_shared
from adapters.datasets.convert import TARGETS, convert_dataset
from adapters.datasets.stage import stage

#: The task a repo's dataset format is read for.
FORMAT_TASKS = {"yolo": "object_detection", "imagefolder": "image_classification", "coco": "object_detection"}
#: Repo formats the dataset layer always writes fresh (never read in place, so no val split on disk is needed).
CONVERTED_FORMATS = ("coco",)

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class DatasetInfo:
    root: Path
    class_names: tuple[str, ...]
    #: What the checks warn about (labels clipped to the image, dropped, ...), for the job's log.
    warnings: tuple[str, ...] = ()


def accepted_formats(repo_format: str) -> list[str]:
    """The repo's own format first, then every format the dataset layer converts into it."""
    task = FORMAT_TASKS[repo_format]
    return [repo_format, *(f for f in formats_for_task(task) if f != repo_format and task in TARGETS[repo_format])]


def inspect_dataset(fmt: str, path: str, seed: int = 0, repo_format: str | None = None,
                    split: SplitOptions | None = None) -> tuple[DatasetInfo | None, Problems]:
    """The dataset's classes, or the problems (as (field path, message)) that stop a run.

    A dataset in the repo's own format is used in place and must have its val split on disk; one
    in another format (``accepted_formats``) is converted into the job dir at launch, with the
    val split the job's split settings make.
    """
    repo_format = repo_format or fmt
    root = Path(path).expanduser().absolute()
    if not root.is_dir():
        return None, [("dataset.path", f"{root} does not exist or is not a folder")]
    if repo_format not in FORMAT_TASKS or fmt not in accepted_formats(repo_format):
        return None, [("dataset.format", f"unsupported format '{fmt}'")]
    dataset, found = inspect_shared(root, fmt, FORMAT_TASKS[repo_format], split=split or SplitOptions(seed=seed),
                                    decode="sample")
    problems = [("dataset.path", str(p)) for p in found.errors]
    if dataset is None or problems:
        return None, problems
    warnings = tuple(str(p) for p in found.warnings)
    if hidden := found.more("warning"):
        warnings += (f"... and {hidden} more warning(s) of the same kinds",)
    if fmt != repo_format or repo_format in CONVERTED_FORMATS:
        return DatasetInfo(root, dataset.class_names, warnings), []
    if dataset.val_source != "disk":
        where = "images/val/ (or val/images/)" if fmt == "yolo" else "val/<class>/"
        return None, [("dataset.path", f"{fmt} dataset {root} has no validation images in {where}: this repo "
                       "evaluates on the val split and cannot split train itself")]
    if fmt == "imagefolder":
        missing = [name for i, name in enumerate(dataset.class_names) if not any(r.label == i for r in dataset.val)]
        if missing:
            return None, [("dataset.path", f"{root / 'val'} has no images for class(es) {', '.join(missing)}: "
                           "val/ needs every class that train/ has")]
    return DatasetInfo(root, dataset.class_names, warnings), []


def materialize(fmt: str, root: Path, repo_format: str, job_dir: Path, split: SplitOptions) -> Path:
    """The dataset folder the repo reads: the user's (YOLO staged by links), or a conversion.

    YOLO goes to ``job_dir/data`` either way (links to the user's split folders when the dataset
    is already YOLO and its labels are used as they are, so label caches land in the job dir; a
    written copy when the checks clipped or dropped labels); an ImageFolder dataset is read in place;
    COCO is always written fresh (images hard-linked, annotations from what the checks read).
    """
    if fmt == repo_format == "imagefolder":
        return root
    if repo_format in CONVERTED_FORMATS:
        out = job_dir / "data"
        if out.is_symlink() or out.is_file():
            out.unlink()
        elif out.exists():  # a restarted launch: written again from the source
            shutil.rmtree(out)
        convert_dataset(root, fmt, repo_format, FORMAT_TASKS[repo_format], out, split=split)
        return out
    return stage(root, fmt, repo_format, FORMAT_TASKS[repo_format], job_dir / "data", split)
