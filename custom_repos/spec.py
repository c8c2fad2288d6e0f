"""A custom repo spec: one YAML file that says how to clone, install and run a GitHub repo.

``load_repo_spec(path)`` turns the YAML into a :class:`RepoSpec` or raises :class:`RepoSpecError`
naming the file and the field path of every problem (``myrepo.yaml: command[3]: unknown
placeholder '{epoch}'. Valid: ...``), so a user adding a repo sees what to fix before any clone.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.catalog import FrameworkCatalog, Preset, SchemaField, coerce
from custom_repos import controls, template
from custom_repos.datasets import accepted_formats
from custom_repos.metric_files import MetricFileSpec, metric_file_problems

#: Repo names: lowercase, digits, '.', '_' and single '-' (the env is named ``repo-<name>``).
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._]*(?:-[a-z0-9._]+)*$")
COMMIT_RE = re.compile(r"^[0-9a-f]{7,40}$")
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ADVANCED_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
DATASET_FORMATS = ("yolo", "imagefolder", "coco")
#: A `config_files` name: one plain file name (it names the file and its `{config_files.<name>}` placeholder).
CONFIG_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: Our compatibility shims (custom_repos/shims/sitecustomize.py), applied without editing the repo.
SHIMS = ("torch_six", "cuda_synchronize_on_cpu")


class RepoSpecError(ValueError):
    """Problems with a repo spec, each as (field path, message), all tied to one file."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(
            f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdvancedFieldSpec(_Strict):
    """A setting a job may pass under ``advanced:``; becomes an adapters.catalog.SchemaField."""

    type: Literal["choice", "int", "float", "bool", "str"]
    default: Any
    description: str = ""
    choices: list[str] = []
    minimum: float | None = None
    maximum: float | None = None


class ArtifactsSpec(_Strict):
    """Globs relative to the job's output dir. For ``best`` and ``last`` the last match in
    natural sort order wins (``checkpoint-[0-9]*.pth`` → ``checkpoint-10.pth`` over ``-9``)."""

    best: str | None = None
    last: str | None = None
    files: list[str] = []

    @field_validator("best", "last")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value)

    @field_validator("files")
    @classmethod
    def _many(cls, value: list[str]) -> list[str]:
        return [_relative_path(v) for v in value]


class ResumeSpec(_Strict):
    """How the repo goes on from a checkpoint: ``args`` are added to the command of a job that sets ``resume:``
    (``{resume}``: the file; replacing the same flag when the command has it), e.g. ``[--resume, "{resume}"]``."""

    args: list[str] = Field(min_length=1)


class PredictSpec(_Strict):
    """How the repo predicts a folder of images with a job's checkpoint (``custom_repos/predict.py``).

    ``command`` runs once per batch in the checkout, with ``{checkpoint}``, ``{source}`` (a folder
    of the batch's images) and ``{output_dir}`` (a fresh folder per batch) among its placeholders.
    ``output`` says how its answers are read: ``yolo_txt``, one ``<image stem>.txt`` per image in
    ``labels`` (relative to ``{output_dir}``), each line ``class cx cy w h [confidence]``
    normalised to the image (YOLOv7's ``detect.py --save-txt --save-conf``; no file: nothing
    found); ``json_lines``, one JSON object per stdout line, ``{"image": path, "predictions":
    [{"label", "score", "index", "box"?}]}`` (or ``"error"``: why that image has none); ``coco_json``, COCO
    detection results in the file ``labels`` names (PaddleDetection's ``bbox.json``).
    ``annotated``, when the command draws its predictions: where the drawn image is, relative to
    ``{output_dir}``, ``{name}`` standing for the image's file name. ``env`` adds to the spec's own ``env`` (whose values may use the
    placeholders both have)."""

    command: list[str] = Field(min_length=1)
    output: Literal["yolo_txt", "json_lines", "coco_json"]
    labels: str = "labels"
    annotated: str | None = None
    env: dict[str, str] = {}

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: str) -> str:
        return _relative_path(value)

    @field_validator("annotated")
    @classmethod
    def _annotated(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "{name}" not in value:
            raise ValueError("must name the image with {name}, e.g. run/{name}")
        return _relative_path(value)


class RepoSpec(_Strict):
    name: str
    url: str
    commit: str
    description: str = ""
    tasks: list[str] = Field(min_length=1)
    models: list[str] = []
    python: str = "3.11"
    requirements_file: str | None = None
    requirements: list[str] = []
    overrides: list[str] = []
    env: dict[str, str] = {}
    shims: list[str] = []
    dataset_format: str
    #: Fewer classes than this is a job error (ConvNeXt reports top-5 accuracy: 5).
    min_classes: int | None = Field(None, ge=1)
    #: ``{image_size}`` when the job sets neither ``image_size`` nor ``training.image_size``.
    default_image_size: int = Field(224, ge=8, le=8192)
    command: list[str] = Field(min_length=1)
    #: Config files written for each job (``<job_dir>/config/<name>``): name -> text with placeholders;
    #: ``{config_files.<name>}`` is the written file's path (PaddleDetection's config that ``_BASE_``-inherits
    #: the repo's own).
    config_files: dict[str, str] = {}
    advanced: dict[str, AdvancedFieldSpec] = {}
    #: Per-model defaults for advanced settings (YOLOv7's tiny and P6 models need other hyps).
    model_defaults: dict[str, dict[str, Any]] = {}
    #: Repo paths (fnmatch globs) left out of the checkout, e.g. papers a partial mirror lacks.
    exclude: list[str] = []
    artifacts: ArtifactsSpec = ArtifactsSpec()  # none: the run only reports metrics
    parser: Any
    #: Files the repo writes metrics to, read as they grow, beside the log parser (see MetricFileSpec).
    metric_files: list[MetricFileSpec] = []
    predict: PredictSpec | None = None  # none: `visionyard predict` says what to add
    #: The training controls the repo honours, as its own arguments (``custom_repos/controls.py``).
    controls: dict[str, Any] = {}
    #: How a job with ``resume:`` continues (``custom_repos/controls.py`` adds the arguments); none: refused.
    resume: ResumeSpec | None = None
    #: Where the command runs (a template: ``{output_dir}``, ``{repo_dir}/tools``...); default: the job's own
    #: working tree of the repo, ``{repo_dir}``. Never the shared checkout.
    cwd: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > 64 or not NAME_RE.match(value):
            raise ValueError(f"'{value}' is not a valid repo name: use lowercase letters, digits, '.', '_' "
                             "and single '-', starting with a letter or digit (at most 64)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value.startswith(("https://", "file://")) or value.startswith(("/", "~/")):
            return value
        raise ValueError(f"'{value}' is not a supported url: use an https:// URL, a file:// URL "
                         "or an absolute path to a git repo")

    @field_validator("commit")
    @classmethod
    def _commit(cls, value: str) -> str:
        if not COMMIT_RE.match(value.lower()):
            raise ValueError(f"'{value}' is not a commit: use the full sha or at least 7 hex digits")
        return value.lower()

    @field_validator("python")
    @classmethod
    def _python(cls, value: str) -> str:
        if not re.match(r"^3\.\d+(\.\d+)?$", value):
            raise ValueError(f"'{value}' is not a python version like 3.11")
        return value

    @field_validator("requirements_file")
    @classmethod
    def _requirements_file(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, value: list[str]) -> list[str]:
        for task in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", task):
                raise ValueError(f"'{task}' is not a task name like object_detection")
        return value

    @field_validator("dataset_format")
    @classmethod
    def _dataset_format(cls, value: str) -> str:
        if value not in DATASET_FORMATS:
            raise ValueError(f"'{value}' is not a dataset format. Valid: {', '.join(DATASET_FORMATS)}")
        return value

    @field_validator("shims")
    @classmethod
    def _shims(cls, value: list[str]) -> list[str]:
        for shim in value:
            if shim not in SHIMS:
                raise ValueError(f"unknown shim '{shim}'. Valid: {', '.join(SHIMS)}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> RepoSpec:
        # Raised as one ValueError whose lines start with the field path; parse_repo_spec splits them.
        problems = _cross_problems(self)
        if problems:
            raise ValueError("\n".join(f"{path}: {message}" for path, message in problems))
        return self

    def schema_fields(self) -> tuple[SchemaField, ...]:
        return tuple(
            SchemaField(path=key, type=f.type, default=f.default, description=f.description,
                        choices=tuple(f.choices), minimum=f.minimum, maximum=f.maximum)
            for key, f in self.advanced.items())

    def catalog(self) -> FrameworkCatalog:
        """This repo as a (unregistered) catalog, so ``resolve_advanced`` and listings work on it.

        ``model_defaults`` become presets named after their model.
        """
        return FrameworkCatalog(
            name=self.name, env=f"repo-{self.name}", tasks=tuple(self.tasks),
            dataset_formats=tuple(accepted_formats(self.dataset_format)), models=(), fields=self.schema_fields(),
            presets=tuple(Preset(model, f"defaults for {model}", _nest(values))
                          for model, values in self.model_defaults.items()),
            adapter="", known_models=frozenset(self.models))


def _cross_problems(spec: RepoSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    fields: dict[str, SchemaField] = {}
    for key, field in spec.advanced.items():
        if not ADVANCED_KEY_RE.match(key):
            problems.append((f"advanced.{key}", "not a valid setting name (letters, digits, '_', dots)"))
            continue
        try:
            fields[key] = SchemaField(path=key, type=field.type, default=field.default,
                                      description=field.description, choices=tuple(field.choices),
                                      minimum=field.minimum, maximum=field.maximum)
        except ValueError as exc:
            problems.append((f"advanced.{key}", str(exc).replace(f"field {key!r}: ", "")))
    valid = template.valid_placeholders(spec.dataset_format, spec.advanced, spec.config_files)
    for name, text in spec.config_files.items():
        if not CONFIG_FILE_RE.match(name) or len(name) > 128:
            problems.append((f"config_files.{name}", "not a plain file name (letters, digits, '_', '.', '-'; "
                                                     "no folders), e.g. train.yml"))
        elif (message := template.check(text, valid)) is not None:
            problems.append((f"config_files.{name}", message))
    for i, element in enumerate(spec.command):
        if (message := template.check(element, valid)) is not None:
            problems.append((f"command[{i}]", message))
    for name, value in spec.env.items():
        if not ENV_VAR_RE.match(name):
            problems.append((f"env.{name}", "not a valid environment variable name"))
        elif (message := template.check(value, valid)) is not None:
            problems.append((f"env.{name}", message))
    for model, values in spec.model_defaults.items():
        if spec.models and model not in spec.models:
            problems.append((f"model_defaults.{model}", f"not one of models: {', '.join(spec.models)}"))
        for key, value in values.items():
            if key not in spec.advanced:
                problems.append((f"model_defaults.{model}.{key}",
                                 f"unknown setting. Valid: {', '.join(spec.advanced) or '(none declared)'}"))
            elif key in fields:
                try:
                    coerce(fields[key], value)
                except ValueError as exc:
                    problems.append((f"model_defaults.{model}.{key}", str(exc).split(": ", 1)[-1]))
    if spec.predict is not None:
        valid_predict = template.valid_predict_placeholders(spec.advanced, spec.config_files)
        for i, element in enumerate(spec.predict.command):
            if (message := template.check(element, valid_predict)) is not None:
                problems.append((f"predict.command[{i}]", message))
        for name, value in spec.predict.env.items():
            if not ENV_VAR_RE.match(name):
                problems.append((f"predict.env.{name}", "not a valid environment variable name"))
            elif (message := template.check(value, valid_predict)) is not None:
                problems.append((f"predict.env.{name}", message))
    problems += _parser_problems(spec.parser)
    problems += metric_file_problems(spec.metric_files)
    problems += controls.spec_problems(spec.controls, valid)
    if spec.resume is not None:
        for i, element in enumerate(spec.resume.args):
            if (message := template.check(element, [*valid, "resume"])) is not None:
                problems.append((f"resume.args[{i}]", message))
    if spec.cwd is not None:
        where = ("repo_dir", "output_dir", "job_dir")
        if (message := template.check(spec.cwd, [*where, *(f"advanced.{k}" for k in spec.advanced)])) is not None:
            problems.append(("cwd", message))
        elif not spec.cwd.startswith(tuple(f"{{{w}}}" for w in where)):
            problems.append(("cwd", "must start with {repo_dir}, {output_dir} or {job_dir} (the job's own folders: a "
                                    "job never runs in the checkout every job shares)"))
    return problems


def _parser_problems(config: Any) -> list[tuple[str, str]]:
    if not isinstance(config, (str, dict)):
        return [("parser", f"expected a parser name or a mapping, got {type(config).__name__}")]
    from log_parsers import validate_parser_config  # lazily: log_parsers is another team's package

    try:
        validate_parser_config(config)
    except ValueError as exc:
        message = str(exc)
        path, sep, rest = message.partition(": ")
        if sep and path.startswith("parser"):
            return [(path, rest)]
        return [("parser", message)]
    return []


def _relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"'{value}' must be a relative path inside the folder (no '..')")
    return value


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        *parents, last = key.split(".")
        tree = out
        for part in parents:
            tree = tree.setdefault(part, {})
        tree[last] = value
    return out


# ------------------------------------------------------------------ loading


def parse_repo_spec(data: Any, source: str) -> RepoSpec:
    """A checked RepoSpec from parsed YAML, or RepoSpecError naming ``source`` and each field."""
    if not isinstance(data, dict):
        raise RepoSpecError(source, [("", f"expected a mapping of spec fields, got {type(data).__name__}")])
    try:
        return RepoSpec.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for error in exc.errors():
            if error["loc"] == () and error["type"] == "value_error":  # from _cross_checks
                for line in _message(error).splitlines():
                    path, _, message = line.partition(": ")
                    problems.append((path, message))
            else:
                problems.append((_loc(error["loc"]), _message(error)))
        raise RepoSpecError(source, problems) from None


def load_repo_spec(path: Path) -> RepoSpec:
    """The RepoSpec in a YAML file; syntax errors name the file, line and column."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RepoSpecError(source, [("", f"cannot read the spec: {exc.strerror or exc}")]) from None
    return parse_repo_spec(load_yaml(text, source), source)


#: libyaml's parser where PyYAML has it: the same safe loading, ~25× faster on hostile nesting
#: (a spec of 4,000 `{` costs 0.02 s instead of 0.6 s of the daemon's CPU)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise RepoSpecError(source, [(where, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise RepoSpecError(source, [("", f"YAML syntax error: {exc}")]) from None


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        valid = _fields_at(error["loc"][:-1])
        unknown = str(error["loc"][-1])
        close = difflib.get_close_matches(unknown, valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"unknown field.{hint} Valid: {', '.join(valid)}"
    if error["type"] == "missing":
        return "is required"
    return error["msg"].removeprefix("Value error, ")


def _fields_at(loc: tuple) -> list[str]:
    """The field names of the model found by walking ``loc`` from RepoSpec (dict keys, list indexes)."""
    annotation: Any = RepoSpec
    for part in loc:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = annotation.model_fields[part].annotation
        else:
            annotation = _container_item(annotation)
        annotation = _unwrap_optional(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _container_item(annotation: Any) -> Any:
    args = typing.get_args(annotation)
    return args[-1] if args else Any


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation
