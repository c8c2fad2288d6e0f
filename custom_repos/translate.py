"""A visionyard job → a custom repo's env spec, config files and command line.

The job is the raw job-spec dict (``task``, ``model``, ``dataset{path,format}``, ``training{...}``,
``image_size``, ``advanced``). Missing training values take the defaults every job spec gets
(``adapters.job.TRAINING_DEFAULTS``).

``{image_size}`` is the job's ``image_size``, else ``training.image_size``, else the spec's
``default_image_size`` (YOLOv7 640, ConvNeXt 224): a size belongs to the model family, not to an
advanced setting a user would have to know about.
"""

from __future__ import annotations

import copy
import difflib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from adapters.catalog import UnknownNameError, resolve_advanced
from adapters.child_env import DISTRIBUTED_VARS
from adapters.devices import ASSIGNED_DEVICE_RE
from custom_repos import controls, template
from adapters.datasets import split_options
from adapters.files import link_tree, made_by_run
from adapters.job import TRAINING_DEFAULTS
from custom_repos.datasets import accepted_formats, inspect_dataset, materialize
from custom_repos.git import RepoError, checkout_commit
from custom_repos.spec import RepoSpec
from envs.spec import EnvSpec

OUTPUT_DIR = "output"  # in the job dir: where the repo writes (the daemon's name for it: runner/launch/jobdir.py)
WORK_TREE = "repo"  # in the job dir: the job's own working tree of the checkout (`{repo_dir}`, the default cwd)
CONFIG_DIR = "config"  # in the job dir: the spec's `config_files`, rendered for the job
SHIM_DIR = Path(__file__).resolve().parent / "shims"
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Requirement-file lines that point at other files: they cannot be resolved from the env dir.
_FILE_OPTIONS = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")


class RepoJobError(ValueError):
    """A job this repo cannot run, each problem as (field path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{path}: {msg}" if path else msg for path, msg in problems))


@dataclass
class Launch:
    """How to start a custom repo's training: the daemon spawns ``argv`` in ``cwd``.

    ``env`` is added to the daemon's environment, ``unset_env`` removed from it, and
    ``pythonpath`` prepended to PYTHONPATH. ``notes``: what the dataset check warns about, for
    the job's log. ``class_names``: the dataset's classes in the order the repo numbers them (its
    ``data.yaml`` for yolo, sorted folder names for imagefolder), for the job's validation records.
    """

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    output_dir: Path
    pythonpath: list[str]
    #: The job's own working tree (``{repo_dir}``): the checkout's files linked (``adapters.files.link_tree``).
    work_tree: Path | None = None
    unset_env: list[str] = field(default_factory=lambda: list(DISTRIBUTED_VARS))
    notes: list[str] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    #: The spec's ``config_files`` as written for this job: name -> path (``<job_dir>/config/<name>``).
    config_files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifacts:
    best: Path | None
    last: Path | None
    files: list[Path]


# ------------------------------------------------------------------ env


def env_spec(spec: RepoSpec, checkout: Path) -> EnvSpec:
    """The env the repo runs in. Its key covers the repo name, the commit and the requirements
    file's content (as header lines of ``requirements_text``, which envs installs and hashes)."""
    commit = checkout_commit(checkout) or spec.commit
    text = f"# visionyard repo: {spec.name} @ {commit}\n"
    if spec.requirements_file:
        path = Path(checkout) / spec.requirements_file
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RepoError(f"{spec.name} @ {commit[:12]}: requirements file '{spec.requirements_file}' "
                            f"cannot be read: {exc.strerror or exc}") from None
        for number, line in enumerate(content.splitlines(), 1):
            option = line.strip().split(maxsplit=1)[0] if line.strip() else ""
            if option.split("=", 1)[0] in _FILE_OPTIONS:
                raise RepoError(f"{spec.name}: {spec.requirements_file}:{number}: '{line.strip()}' refers to "
                                "another file, which visionyard cannot install; list the requirements in the "
                                "spec's `requirements:` and drop `requirements_file`")
        text += f"# {spec.requirements_file}\n{content}"
    return EnvSpec(name=f"repo-{spec.name}", python=spec.python, requirements=tuple(spec.requirements),
                   overrides=tuple(spec.overrides), requirements_text=text,
                   description=spec.description or f"custom repo {spec.name}")


# ------------------------------------------------------------------ validation


def validate_job(spec: RepoSpec, job: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every reason this repo cannot run ``job``, as (field path, message); empty when it can."""
    return _check(spec, _as_dict(job))[0]


def resolve_job(spec: RepoSpec, job: Mapping[str, Any]) -> dict[str, Any]:
    """``job`` with advanced settings, training defaults, image size and classes filled in.

    Raises RepoJobError listing every problem :func:`validate_job` finds.
    """
    problems, resolved = _check(spec, _as_dict(job))
    if problems:
        raise RepoJobError(problems)
    return resolved


def _check(spec: RepoSpec, job: dict[str, Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    problems: list[tuple[str, str]] = []
    task, model = job.get("task"), job.get("model")
    if task not in spec.tasks:
        problems.append(("task", f"'{task}' is not a task of repo {spec.name}. Valid: {', '.join(spec.tasks)}"))
    if not isinstance(model, str) or not model:
        problems.append(("model", f"is required. Valid: {', '.join(spec.models) or 'any model name'}"))
    elif spec.models and model not in spec.models:
        close = difflib.get_close_matches(model, spec.models, n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        problems.append(("model", f"'{model}' is not a model of repo {spec.name}.{hint} "
                         f"Valid: {', '.join(spec.models)}"))
    elif not MODEL_RE.match(model):
        problems.append(("model", f"'{model}' is not a model name (letters, digits, '.', '_', '-')"))
    if job.get("weights"):
        problems.append(("weights", f"not supported for custom repos; repo {spec.name} trains from scratch"))
    if job.get("resume") and spec.resume is None:
        problems.append(("resume", f"repo {spec.name} has no `resume:` in its spec (how its command takes a "
                                   "checkpoint to go on from, e.g. `resume: {args: [--resume, \"{resume}\"]}`)"))
    elif job.get("resume") and not Path(str(job["resume"])).is_file():
        problems.append(("resume", f"{job['resume']} is not a file on the runner's machine: give the checkpoint "
                                   "the earlier job wrote (`visionyard status JOB` shows it)"))
    if job.get("pretrained"):
        problems.append(("pretrained", f"not supported for custom repos; repo {spec.name} trains from scratch"))
    if job.get("preset"):
        problems.append(("preset", "custom repos have no presets; set values under `advanced:`"))

    advanced: dict[str, Any] = {}
    preset = model if isinstance(model, str) and model in spec.model_defaults else None
    try:
        advanced = resolve_advanced(spec.catalog(), job.get("advanced") or {}, preset)
    except (UnknownNameError, ValueError) as exc:
        path, _, message = str(exc).partition(": ")
        problems.append((path, message.replace(f"for {spec.name}", f"for repo {spec.name}")))

    dataset = job.get("dataset") or {}
    fmt = dataset.get("format") or spec.dataset_format
    training = {**TRAINING_DEFAULTS, **{k: v for k, v in (job.get("training") or {}).items() if v is not None}}
    problems += controls.job_problems(spec.controls, training, spec.name)
    info = None
    accepted = accepted_formats(spec.dataset_format)
    if fmt not in accepted:
        problems.append(("dataset.format", f"'{fmt}' is not what repo {spec.name} reads. "
                         f"Valid: {', '.join(accepted)} (converted to {spec.dataset_format} at launch)"))
    elif not dataset.get("path"):
        problems.append(("dataset.path", "is required"))
    else:
        seed = int(training.get("seed") or 0)
        info, dataset_problems = inspect_dataset(fmt, str(dataset["path"]), seed, spec.dataset_format,
                                                 split_options(dataset, seed))
        problems += dataset_problems
    if info is not None:
        count = len(info.class_names)
        if spec.min_classes and count < spec.min_classes:
            problems.append(("dataset.path", f"repo {spec.name} needs at least {spec.min_classes} classes "
                             f"(it reports top-{spec.min_classes} accuracy); the dataset has {count}"))
        if job.get("num_classes") not in (None, count):
            problems.append(("num_classes", f"is {job['num_classes']} but the dataset has {count} classes; "
                             "remove it to infer it"))

    resolved = copy.deepcopy(job)
    resolved.update(advanced=advanced, training=training)
    resolved["image_size"] = job.get("image_size") or training["image_size"] or spec.default_image_size
    resolved["dataset"] = {**dataset, "format": fmt}
    if info is not None:
        resolved["dataset"]["path"] = str(info.root)
        resolved.update(num_classes=len(info.class_names), class_names=list(info.class_names),
                        dataset_warnings=list(info.warnings))
    return problems, resolved


def _as_dict(job: Any) -> dict[str, Any]:
    if hasattr(job, "model_dump"):  # a runner JobSpec
        return job.model_dump()
    return dict(job)


# ------------------------------------------------------------------ launch


def prepare_launch(spec: RepoSpec, job: Mapping[str, Any], job_dir: Path, checkout: Path, python: Path,
                   device: str) -> Launch:
    """Write the repo's config files into ``job_dir`` and render its command.

    ``device`` is what the daemon assigned (``cpu`` or ``cuda:0``; it sets CUDA_VISIBLE_DEVICES).
    Nothing is written into ``checkout``: bytecode goes to ``<job_dir>/pycache``, outputs to
    ``<job_dir>/output``, YOLO label caches to ``<job_dir>/data/labels``.
    """
    if not ASSIGNED_DEVICE_RE.match(device):
        raise ValueError(f"device '{device}' is not cpu, cuda or cuda:N")
    resolved = resolve_job(spec, job)
    job_dir = Path(job_dir).absolute()
    output_dir = job_dir / OUTPUT_DIR
    output_dir.mkdir(parents=True, exist_ok=True)
    values = _placeholder_values(spec, resolved, job_dir, output_dir, python, device)

    dataset = resolved["dataset"]
    data = materialize(dataset["format"], Path(dataset["path"]), spec.dataset_format, job_dir,
                       split_options(dataset, int(resolved["training"]["seed"] or 0)))
    if spec.dataset_format == "yolo":
        data_yaml = job_dir / "data.yaml"
        # Absolute paths and no `download:` key: YOLOv7 would fetch a dataset it cannot find.
        data_yaml.write_text(yaml.safe_dump({
            "train": str(data / "images" / "train"), "val": str(data / "images" / "val"),
            "nc": resolved["num_classes"], "names": resolved["class_names"]}, sort_keys=False))
        values.update(data_yaml=str(data_yaml), dataset_dir=str(data),
                      train_dir=str(data / "images" / "train"), val_dir=str(data / "images" / "val"))
    elif spec.dataset_format == "coco":  # written by the dataset layer (custom_repos/datasets.py)
        values.update(dataset_dir=str(data), train_dir=str(data / "images" / "train"),
                      val_dir=str(data / "images" / "val"),
                      train_annotations=str(data / "annotations" / "instances_train.json"),
                      val_annotations=str(data / "annotations" / "instances_val.json"))
    else:
        values.update(dataset_dir=str(data), train_dir=str(data / "train"), val_dir=str(data / "val"))
    config_files = write_config_files(spec, job_dir, values)

    env = {name: template.render(value, values) for name, value in spec.env.items()}
    env["PYTHONPYCACHEPREFIX"] = str(job_dir / "pycache")
    pythonpath: list[str] = []
    if spec.shims:
        env["VISIONYARD_SHIMS"] = ",".join(spec.shims)
        pythonpath = [str(SHIM_DIR)]
    argv = controls.apply(template.render_command(list(spec.command), values), spec.controls, resolved["training"],
                          values)
    if resolved.get("resume") and spec.resume is not None:
        argv = controls.merge(argv, template.render_command(spec.resume.args,
                                                            {**values, "resume": str(Path(resolved["resume"]).absolute())}))
    work_tree = job_dir / WORK_TREE
    if not work_tree.is_dir():  # a restarted launch keeps the tree (and what the run wrote into it)
        staging = job_dir / f".{WORK_TREE}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        link_tree(Path(checkout), staging)
        staging.rename(work_tree)
    cwd = Path(template.render(spec.cwd, values)) if spec.cwd else work_tree
    return Launch(argv=argv, env=env, cwd=cwd, output_dir=output_dir, pythonpath=pythonpath,
                  notes=list(resolved.get("dataset_warnings", ())), work_tree=work_tree,
                  class_names=[str(name) for name in resolved.get("class_names", ())], config_files=config_files)


def write_config_files(spec: RepoSpec, job_dir: Path, values: dict[str, Any]) -> dict[str, Path]:
    """Render each of the spec's ``config_files`` into ``<job_dir>/config/<name>``; adds their
    ``{config_files.<name>}`` paths to ``values`` first, so the command and the files may name any of them."""
    paths = {name: job_dir / CONFIG_DIR / name for name in spec.config_files}
    values.update({f"{template.CONFIG_FILES}.{name}": str(path) for name, path in paths.items()})
    for name, text in spec.config_files.items():
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        paths[name].write_text(template.render(text, values), encoding="utf-8")
    return paths


def _placeholder_values(spec: RepoSpec, job: dict[str, Any], job_dir: Path, output_dir: Path, python: Path,
                        device: str) -> dict[str, Any]:
    training = job["training"]
    device_type = device.split(":", 1)[0]
    index = device.split(":", 1)[1] if ":" in device else "0"
    values: dict[str, Any] = {
        "python": str(Path(python).absolute()),  # not resolve(): the venv's python is a symlink
        "model": job["model"], "epochs": training["epochs"], "batch_size": training["batch_size"],
        "learning_rate": training["learning_rate"], "image_size": job["image_size"], "device": device,
        "device_index": "cpu" if device_type == "cpu" else index, "device_type": device_type,
        "output_dir": str(output_dir), "job_dir": str(job_dir), "num_classes": job["num_classes"],
        "repo_dir": str(job_dir / WORK_TREE),
        "seed": training["seed"], "workers": training["num_workers"], "use_gpu": device_type != "cpu",
    }
    for key in spec.advanced:
        value: Any = job["advanced"]
        for part in key.split("."):
            value = value[part]
        values[f"advanced.{key}"] = value
    return values


# ------------------------------------------------------------------ artifacts


def find_artifacts(spec: RepoSpec, output_dir: Path, work_tree: Path | None = None) -> Artifacts:
    """The run's checkpoints and files under ``output_dir``, by the spec's globs; a glob that finds nothing
    there is tried in the job's working tree (``work_tree``: what the repo wrote relative to its working
    directory), where only files the run wrote count (not the checkout's own).

    For ``best`` and ``last`` the last match in natural sort order wins, so ``checkpoint-[0-9]*.pth``
    picks ``checkpoint-10.pth`` over ``checkpoint-9.pth``.
    """
    output_dir = Path(output_dir)

    def matches(pattern: str | None) -> list[Path]:
        if not pattern:
            return []
        for folder in (output_dir, work_tree):
            if folder is None:
                continue
            found = sorted((p for p in Path(folder).glob(pattern) if p.is_file() and (folder == output_dir
                                                                                       or made_by_run(p))),
                           key=lambda p: natural_key(str(p.relative_to(folder))))
            if found:
                return found
        return []

    best, last = matches(spec.artifacts.best), matches(spec.artifacts.last)
    files: list[Path] = []
    for pattern in spec.artifacts.files:
        files += [p for p in matches(pattern) if p not in files]
    return Artifacts(best=best[-1] if best else None, last=last[-1] if last else None, files=files)


def found_any(pattern: str, output_dir: Path, work_tree: Path | None = None) -> bool:
    """Whether ``pattern`` matches a file the run left, where :func:`find_artifacts` looks."""
    return any(p.is_file() for p in Path(output_dir).glob(pattern)) or (
        work_tree is not None and any(p.is_file() and made_by_run(p) for p in Path(work_tree).glob(pattern)))


def natural_key(text: str) -> list:
    """Sort key with digit runs compared as numbers: ``a-2`` < ``a-10``."""
    return [int(part) if i % 2 else part.lower() for i, part in enumerate(re.split(r"(\d+)", text))]
