"""The job spec's checks: pydantic models, validation against the framework catalogs and the dataset.

A bad spec never reaches a child. `validate_job_spec` turns a raw dict (YAML from the CLI, or a
protobuf `JobSpec` converted once at the edge) into a `JobSpec` with every default filled, or
raises `SpecError` listing each bad field by its path and what would fix it.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.catalog import (FrameworkCatalog, UnknownNameError, default_input_size, find_model, move_replaced,
                              resolve_advanced)
from adapters.controls import FP16_NEEDS_CUDA, refusals
from adapters.datasets import STRATEGIES, format_names, inspect_dataset, split_options
from adapters.devices import DEVICE_RE
from adapters.frameworks import all_catalogs, get_catalog
from adapters.job import TRAINING_DEFAULTS
from runner.spec.wire import SpecError, quote

if TYPE_CHECKING:
    from custom_repos.registry import RepoRegistry

log = logging.getLogger("visionyard.spec")
CUSTOM = "custom"  # jobs that run a repo's own command (custom_repos/)
MAX_PATH, MAX_TEXT = 4096, 500  # characters of a path; of a model name or hub id
MAX_ADVANCED_NUMBER = 1e12      # |x| of any number under `advanced` (the schema may bound it tighter)
MAX_ADVANCED_TEXT = 10_000      # characters of a string under `advanced`
MAX_DEPTH, MAX_KEYS = 8, 1000   # nesting and size of `advanced`
MAX_DATASET_FILES = 2_000_000   # entries a dataset folder may hold (a submit reads it)
#: Folders a dataset can't be: scanning them walks the whole system (or kernel files).
SYSTEM_ROOTS = ("/", "/proc", "/sys", "/dev", "/run", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc",
                "/var", "/snap")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    path: str = Field(min_length=1, max_length=MAX_PATH)
    format: str = Field(min_length=1, max_length=100)
    #: Without a val split on disk: how val is made, its share, and for `file` the train list
    #: (relative to the dataset folder, or absolute).
    split: str | None = None
    val_ratio: float | None = Field(None, gt=0, lt=1)
    split_file: str | None = Field(None, min_length=1, max_length=MAX_PATH)

    @field_validator("split")
    @classmethod
    def _split(cls, value: str | None) -> str | None:
        if value is not None and value not in STRATEGIES:
            raise ValueError(f"'{value}' is not a split strategy. Valid: {', '.join(STRATEGIES)}")
        return value

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in format_names():
            raise ValueError(f"Unknown dataset format '{value}'. Valid: {', '.join(format_names())}")
        return value


class EarlyStoppingSpec(_Strict):
    patience: int = Field(ge=1, le=100_000)
    min_delta: float = Field(0.0, ge=0, le=1e9)


class TrainingSpec(_Strict):
    """Training settings; what a spec leaves out is `adapters.job.TRAINING_DEFAULTS`. The controls
    (mixed precision ... ema) mean the same for every framework: `adapters.controls`."""

    epochs: int = Field(TRAINING_DEFAULTS["epochs"], ge=1, le=100_000)
    batch_size: int = Field(TRAINING_DEFAULTS["batch_size"], ge=1, le=65_536)
    learning_rate: float = Field(TRAINING_DEFAULTS["learning_rate"], ge=1e-10, le=10)
    device: str = TRAINING_DEFAULTS["device"]
    num_workers: int = Field(TRAINING_DEFAULTS["num_workers"], ge=0, le=64)
    seed: int = Field(TRAINING_DEFAULTS["seed"], ge=0, le=2**32 - 1)
    image_size: int | None = Field(TRAINING_DEFAULTS["image_size"], ge=8, le=8192)
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = TRAINING_DEFAULTS["mixed_precision"]
    gradient_accumulation: int = Field(TRAINING_DEFAULTS["gradient_accumulation"], ge=1, le=4096)
    gradient_clip: float | None = Field(TRAINING_DEFAULTS["gradient_clip"], ge=0, le=1e9)
    early_stopping: EarlyStoppingSpec | None = None
    warmup_epochs: float | None = Field(TRAINING_DEFAULTS["warmup_epochs"], ge=0, le=100_000)
    ema: bool | None = TRAINING_DEFAULTS["ema"]

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_RE.match(value):
            raise ValueError(f"'{value}' is not a device; use auto, cpu, cuda or cuda:N")
        return value


class JobSpec(_Strict):
    name: str | None = Field(None, max_length=200)
    framework: str = Field(max_length=100)
    task: str = Field(max_length=100)
    model: str = Field(min_length=1, max_length=MAX_TEXT)
    pretrained: bool = False
    image_size: int | None = Field(None, ge=8, le=8192)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    dataset: DatasetSpec
    training: TrainingSpec = TrainingSpec()
    advanced: dict[str, Any] = Field(default_factory=dict)
    preset: str | None = Field(None, max_length=100)
    weights: str | None = Field(None, min_length=1, max_length=MAX_PATH)
    resume: str | None = Field(None, min_length=1, max_length=MAX_PATH)
    repo: str | None = Field(None, max_length=100)

    @property
    def display_name(self) -> str:
        return self.name or f"{self.framework}-{self.model}"


# ------------------------------------------------------------------ wire conversion


# ------------------------------------------------------------------ validation


def validate_job_spec(raw: dict[str, Any], *, check_paths: bool = True, repos: "RepoRegistry | None" = None) -> JobSpec:
    """A complete, checked JobSpec from a raw dict, or SpecError naming every bad field.

    `repos` is the runner's repo registry, needed for `framework: custom`.
    """
    if problems := hostile_values(raw):
        raise SpecError(problems)
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([(_loc(e["loc"]), _pydantic_message(e)) for e in exc.errors()]) from None
    if problem := _system_folder(os.path.normpath(spec.dataset.path)):  # as given: /proc/1/root is /
        raise SpecError([problem])
    spec = _absolute_paths(spec)
    if problems := _path_problems(spec):
        raise SpecError(problems)

    if spec.framework == CUSTOM:
        return _validate_custom(spec, repos)
    if spec.repo is not None:
        raise SpecError([("repo", f"only applies to framework: {CUSTOM}")])
    try:
        catalog = get_catalog(spec.framework)
    except (KeyError, ValueError):
        raise SpecError([("framework", f"Unknown framework '{spec.framework}'. Valid: {', '.join(frameworks())}")]) from None

    problems: list[tuple[str, str]] = []
    if spec.task not in catalog.tasks:
        problems.append(("task", f"'{spec.task}' is not a {catalog.name} task. Valid: {', '.join(catalog.tasks)}"))
    if catalog.model_check is not None:
        if spec.task in catalog.tasks and (problem := catalog.model_check(spec.model, spec.task)):
            problems.append(("model", problem))
    elif not catalog.accepts_model(spec.model):
        problems.append(("model", _unknown_model(catalog, spec.model)))
    elif (entry := find_model(catalog, spec.model)) is not None and spec.task in catalog.tasks \
            and spec.task not in entry.tasks:
        able = [m.name for m in catalog.models if spec.task in m.tasks]
        problems.append(("model", f"{catalog.name} model '{spec.model}' does not do {spec.task} (it does "
                         f"{', '.join(entry.tasks)}). Models that do: {', '.join(able)}"))
    if spec.dataset.format not in catalog.dataset_formats:
        problems.append(("dataset.format", f"'{spec.dataset.format}' is not supported by {catalog.name}. "
                         f"Valid: {', '.join(catalog.dataset_formats)}"))

    filled: dict[str, Any] = {}
    try:
        filled = resolve_advanced(catalog, spec.advanced, spec.preset)
    except UnknownNameError as exc:  # an unknown preset
        problems.append(("preset", str(exc)))
    except ValueError as exc:
        path, _, message = str(exc).partition(": ")
        problems.append((path, f"{message} (see `visionyard schema {catalog.name}`)"))

    training = spec.training.model_dump()
    moved, replaced_problems = move_replaced(catalog, filled, {k: training[k] for k in spec.training.model_fields_set})
    problems += replaced_problems
    training.update(moved)
    problems += refusals(catalog.controls, training, catalog.name)
    if training["mixed_precision"] == "fp16" and training["device"] == "cpu":
        problems.append(("training.mixed_precision", FP16_NEEDS_CUDA))
    updates: dict[str, Any] = {"advanced": filled, "model": catalog.canonical_model(spec.model),
                               "training": TrainingSpec.model_validate(training)}
    if spec.image_size is None:
        updates["image_size"] = spec.training.image_size or default_input_size(catalog, updates["model"])
    if check_paths:
        for field in ("weights", "resume"):  # a file, or a save_pretrained / checkpoint folder (transformers)
            value = getattr(spec, field)
            if value is not None and not _readable(Path(value)):
                problems.append((field, f"{quote(value)} does not exist on the runner's machine, or the runner "
                                        "can't read it"))
        if not any(p[0].startswith("dataset") or p[0] == "task" for p in problems):
            num_classes, dataset_problems = _check_dataset(spec, filled)
            problems += dataset_problems
            if num_classes is not None:
                updates["num_classes"] = num_classes
    if problems:
        raise SpecError(problems)
    return spec.model_copy(update=updates)


def hostile_values(raw: Any) -> list[tuple[str, str]]:
    """What no field may hold, found before anything reads the spec: NUL and control characters,
    non-finite or huge numbers, deep or huge nesting, names that are not printable."""
    problems: list[tuple[str, str]] = []
    if not isinstance(raw, dict):
        return [("", f"a job spec is a mapping of fields, not {type(raw).__name__}")]

    def walk(value: Any, path: str, depth: int, in_advanced: bool) -> None:
        if len(problems) >= 20:
            return
        if isinstance(value, dict):
            if depth > MAX_DEPTH or len(value) > MAX_KEYS:
                problems.append((path, f"nested deeper than {MAX_DEPTH} or with over {MAX_KEYS} keys"))
                return
            for key, item in value.items():
                if not isinstance(key, str) or not key.isprintable() or len(key) > 100:
                    problems.append((path, f"key {quote(key)} is not a printable name of at most 100 characters"))
                    continue
                walk(item, f"{path}.{key}" if path else key, depth + 1, in_advanced or key == "advanced")
        elif isinstance(value, list):
            if depth > MAX_DEPTH or len(value) > MAX_KEYS:
                problems.append((path, f"nested deeper than {MAX_DEPTH} or with over {MAX_KEYS} items"))
                return
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1, in_advanced)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, (int, float)):
            if not math.isfinite(value):
                problems.append((path, f"{quote(value)} is not a finite number"))
            elif in_advanced and abs(value) > MAX_ADVANCED_NUMBER:
                problems.append((path, f"{quote(value)} is out of range (at most {MAX_ADVANCED_NUMBER:g} in size)"))
        elif isinstance(value, str):
            limit = MAX_ADVANCED_TEXT if in_advanced else MAX_PATH
            if len(value) > limit:
                problems.append((path, f"is {len(value)} characters long; at most {limit}"))
            elif "\0" in value or any(ord(c) < 32 and c not in ("\t\n" if in_advanced else "") or ord(c) == 127
                                       for c in value):
                problems.append((path, f"{quote(value)} holds a NUL or control character"))
            elif path == "name" and not value.isprintable():
                problems.append((path, f"{quote(value)} is not printable text"))
        else:
            problems.append((path, f"{quote(value)} is not a number, text, list or mapping"))

    walk(raw, "", 0, False)
    return problems


def _path_problems(spec: JobSpec) -> list[tuple[str, str]]:
    problems = []
    for field, value in (("dataset.path", spec.dataset.path), ("dataset.split_file", spec.dataset.split_file),
                         ("weights", spec.weights), ("resume", spec.resume)):
        if value is None:
            continue
        if any(len(part.encode()) > 255 for part in Path(value).parts):
            problems.append((field, f"{quote(value)} has a name longer than 255 bytes"))
    if problem := _system_folder(spec.dataset.path):
        problems.append(problem)
    return problems


def _system_folder(root: str) -> tuple[str, str] | None:
    if root in SYSTEM_ROOTS or any(root.startswith(f"{system}/") for system in ("/proc", "/sys", "/dev")):
        return ("dataset.path", f"{quote(root)} is a system folder, not a dataset; point it at the folder that "
                                "holds the dataset")
    return None


def count_files(root: Path, limit: int) -> int:
    """Entries under `root` (symlinks not followed), counting stops past `limit`."""
    count, todo = 0, [root]
    while todo and count <= limit:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    count += 1
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(Path(entry.path))
                    if count > limit:
                        break
        except OSError:
            continue
    return count


def _readable(path: Path) -> bool:
    try:
        return path.exists() and os.access(path, os.R_OK)
    except OSError:
        return False


def _absolute_paths(spec: JobSpec) -> JobSpec:
    """`~` expanded and relative paths made absolute, so the child (whose working directory is
    its job dir) opens exactly what was validated."""
    def absolute(value: str | None, field: str) -> str | None:
        if value is None:
            return None
        try:
            return str(Path(value).expanduser().resolve())
        except (RuntimeError, OSError) as exc:  # ~nosuchuser, a symlink loop
            raise SpecError([(field, f"{quote(value)} can't be resolved to a folder on the runner ({exc})")]) from None

    root = absolute(spec.dataset.path, "dataset.path")
    split_file = spec.dataset.split_file
    if split_file is not None:
        split_file = absolute(str(Path(root) / split_file) if not split_file.startswith("~") else split_file,
                              "dataset.split_file")
    return spec.model_copy(update={
        "dataset": spec.dataset.model_copy(update={"path": root, "split_file": split_file}),
        "weights": absolute(spec.weights, "weights"), "resume": absolute(spec.resume, "resume")})


def _validate_custom(spec: JobSpec, repos: "RepoRegistry | None") -> JobSpec:
    """`framework: custom`: the repo spec decides tasks, models, dataset format and `advanced`."""
    from custom_repos.registry import UnknownRepoError
    from custom_repos.spec import RepoSpecError
    from custom_repos.translate import RepoJobError, resolve_job

    if repos is None:
        raise SpecError([("framework", "this runner has no repo registry for framework: custom")])
    if not spec.repo:
        names = ", ".join(repo.name for repo, _ in repos.list())
        raise SpecError([("repo", f"is required with framework: {CUSTOM}. Valid: {names} "
                          "(or add one with `visionyard repos add spec.yaml`)")])
    try:
        repo = repos.get(spec.repo)
    except UnknownRepoError as exc:
        raise SpecError([("repo", str(exc))]) from None
    except RepoSpecError as exc:
        raise SpecError([("repo", f"the spec of repo '{spec.repo}' is broken; fix it and add it again: {exc}")]) from None
    try:
        resolved = resolve_job(repo, spec.model_dump(mode="json", exclude_none=True))
    except RepoJobError as exc:
        raise SpecError(exc.problems) from None
    return spec.model_copy(update={key: resolved[key] for key in ("advanced", "num_classes") if key in resolved})


def _check_dataset(spec: JobSpec, advanced: dict[str, Any]) -> tuple[int | None, list[tuple[str, str]]]:
    """The dataset read exactly as the child will read it: layout, labels, a sample of images."""
    if count_files(Path(spec.dataset.path), MAX_DATASET_FILES) > MAX_DATASET_FILES:
        return None, [("dataset.path", f"{quote(spec.dataset.path)} holds over {MAX_DATASET_FILES:,} files and "
                                       "folders; point it at the dataset's own folder")]
    fallback_ratio = advanced.get("data", {}).get("val_split")
    split = split_options(spec.dataset.model_dump(), spec.training.seed, fallback_ratio)
    dataset, problems = inspect_dataset(spec.dataset.path, spec.dataset.format, spec.task, split=split,
                                        decode="sample")
    for warning in problems.warnings:
        if warning.kind == "skipped-link":  # the job is accepted: the daemon log names the links not followed
            log.warning("dataset %s: %s: %s", spec.dataset.path, os.path.relpath(warning.file, spec.dataset.path),
                        warning.message)
    if problems.has_errors:
        errors = [("dataset.path", str(p)) for p in problems.errors]
        if hidden := problems.more("error"):
            errors.append(("dataset.path", f"... and {hidden} more problem(s) of the same kinds; "
                           f"`visionyard datasets check {spec.dataset.path} --format {spec.dataset.format} "
                           f"--task {spec.task}` lists them all"))
        return None, errors
    assert dataset is not None
    names = dataset.class_names
    if spec.num_classes is not None and names and spec.num_classes != len(names):
        return None, [("num_classes", f"is {spec.num_classes} but the dataset at '{spec.dataset.path}' has "
                       f"{len(names)} classes ({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}); "
                       "remove it to infer it")]
    return len(names) or None, []


def _unknown_model(catalog: FrameworkCatalog, model: str) -> str:
    close = difflib.get_close_matches(model, sorted(catalog.known_models), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return f"unknown {catalog.name} model '{model}'.{hint} See `visionyard models --framework {catalog.name}`"


def _loc(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _pydantic_message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        model: Any = JobSpec
        for part in error["loc"][:-1]:
            model = model.model_fields[part].annotation
            model = next((t for t in getattr(model, "__args__", ()) if hasattr(t, "model_fields")), model)  # X | None
        return f"unknown field. Valid: {', '.join(model.model_fields)}"
    if error["type"] == "missing":
        return "is required"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def frameworks() -> list[str]:
    return sorted([*(c.name for c in all_catalogs()), CUSTOM])
