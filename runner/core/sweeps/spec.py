"""A sweep's spec: pydantic models, and the checks that run before any trial does.

`check_sweep(raw, repos)` turns the raw dict (YAML from the CLI with `base:` made inline) into a
`SweepSpec` and its warnings, or raises `SpecError` naming each bad field (`space.training.lr`,
`objective.metric`, `parallel`). Every value a space can sample at its edges (low, high, each
choice) is merged into the base job spec and checked by the job spec's own validation, so a
path the job schema lacks or a value it refuses is an error here, not a failed trial later.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters import metrics as m
from runner.spec.validate import hostile_values, validate_job_spec
from runner.spec.wire import SpecError, quote

if TYPE_CHECKING:
    from custom_repos.registry import RepoRegistry

MAX_TRIALS, MAX_PARAMS, MAX_CHOICES = 10_000, 64, 1_000
SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
GENERAL_METRICS = (m.TRAIN_LOSS, m.VAL_LOSS, m.LR, m.TRAIN_IMAGES_PER_S, m.MODEL_PARAMETERS)
_CLASSIFICATION = (m.VAL_ACCURACY, m.VAL_TOP5, m.VAL_F1)
_BOXES = m.BOX_METRICS + tuple(name for name in m.VOCABULARY if name == "val/mAP75")  # AP75: some repos print it
#: What each task reports besides `GENERAL_METRICS` (a task not listed: any name of the vocabulary).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "image_classification": _CLASSIFICATION, "zero_shot_classification": _CLASSIFICATION,
    "video_classification": _CLASSIFICATION,
    "object_detection": _BOXES, "obb_detection": _BOXES, "zero_shot_detection": _BOXES,
    "instance_segmentation": _BOXES + tuple(n.replace("val/", "val/mask_") for n in _BOXES),
    "pose_estimation": _BOXES + tuple(n.replace("val/", "val/pose_") for n in _BOXES),
    "semantic_segmentation": (m.VAL_MIOU, m.VAL_PIXEL_ACCURACY),
    "super_resolution": (m.VAL_PSNR, m.VAL_SSIM),
    "ocr": (m.VAL_CER, m.VAL_WER),
    "depth_estimation": (m.VAL_ABS_REL, m.VAL_RMSE, m.VAL_DELTA1),
    "image_captioning": (m.VAL_CIDER, m.VAL_BLEU4),
    "visual_qa": (m.VAL_VQA_ACCURACY,),
}
#: Metrics where lower is better (every other name of the vocabulary: higher is better).
LOWER_IS_BETTER = frozenset({m.TRAIN_LOSS, m.VAL_LOSS, m.VAL_CER, m.VAL_WER, m.VAL_ABS_REL, m.VAL_RMSE})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One dimension of the search space."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = Field(None, min_length=1, max_length=MAX_CHOICES)

    @model_validator(mode="after")
    def _bounds(self) -> "Param":
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs `choices` (a list of values)")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical parameter takes only `choices`")
            if any(isinstance(c, (dict, list)) for c in self.choices):
                raise ValueError("choices are plain values (numbers, strings, booleans, null)")
            return self
        if self.choices is not None:
            raise ValueError(f"`choices` is for type: categorical; a {self.type} parameter takes low and high")
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs `low` and `high`")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise ValueError(f"low ({self.low}) must be finite and at most high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (low is {self.low})")
        if self.log and self.step is not None:
            raise ValueError("log and step can't be used together")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int parameter's low and high are whole numbers")
        return self

    def edges(self) -> list[Any]:
        """The values to check against the job schema: the bounds, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [self.low, self.high]

    def grid(self) -> list[Any] | None:
        """Every value of a grid over this parameter; None when it has none (a float without step)."""
        if self.type == "categorical":
            return list(self.choices)
        step = self.step or (1 if self.type == "int" else None)
        if step is None:
            return None
        count = int(math.floor((self.high - self.low) / step + 1e-9)) + 1
        values = [self.low + i * step for i in range(count)]
        return [int(round(v)) for v in values] if self.type == "int" else [round(v, 12) for v in values]


class Objective(_Strict):
    metric: str | None = Field(None, min_length=1, max_length=200)
    direction: Literal["maximize", "minimize"] | None = None


class Sampler(_Strict):
    type: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


class Pruner(_Strict):
    type: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    warmup_epochs: int = Field(0, ge=0, le=100_000)   # epochs of a trial never pruned
    startup_trials: int = Field(2, ge=0, le=MAX_TRIALS)  # trials that end before the median pruner prunes
    reduction_factor: int = Field(3, ge=2, le=100)    # successive halving and hyperband


class SweepSpec(_Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    base: dict[str, Any]
    objective: Objective = Objective()
    space: dict[str, Param] = Field(min_length=1, max_length=MAX_PARAMS)
    sampler: Sampler = Sampler()
    seed: int | None = Field(None, ge=0, le=2**32 - 1)  # the sampler's, when `sampler` is just its name
    pruner: Pruner = Pruner()
    trials: int | None = Field(None, ge=1, le=MAX_TRIALS)  # default: the grid's size, else 10
    parallel: int = Field(1, ge=1, le=256)
    timeout: float | None = Field(None, gt=0, le=365 * 86400)  # seconds of wall clock; then no new trial
    max_failed: int | None = Field(None, ge=1, le=MAX_TRIALS)  # stop after this many failed trials

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_name(cls, value: Any) -> Any:
        return {"metric": value} if isinstance(value, str) else value

    @field_validator("space")
    @classmethod
    def _paths(cls, space: dict[str, Param]) -> dict[str, Param]:
        for path in space:
            if not path or any(not part or not part.replace("_", "").replace("-", "").isalnum()
                               for part in path.split(".")):
                raise ValueError(f"{quote(path, 80)} is not a dotted path into the job spec "
                                 "(e.g. training.learning_rate, advanced.optimizer.weight_decay)")
        return space

    @property
    def seed_value(self) -> int | None:
        return self.sampler.seed if self.sampler.seed is not None else self.seed

    def grid_space(self) -> dict[str, list[Any]]:
        return {path: param.grid() for path, param in self.space.items()}


def merged(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The base job spec with each dotted path set to its value (folders made where missing)."""
    spec = copy.deepcopy(base)
    for path, value in values.items():
        node = spec
        *parents, leaf = path.split(".")
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SpecError([(f"space.{path}", f"{'.'.join(parents[:i + 1])} is not a section of the job spec "
                                                   f"(it holds {quote(child, 60)})")])
            node = child
        node[leaf] = value
    return spec


def check_sweep(raw: Any, repos: "RepoRegistry | None" = None) -> tuple[SweepSpec, Any, list[str]]:
    """The checked sweep spec, its validated base job spec, and warnings; SpecError otherwise."""
    if not isinstance(raw, dict):
        raise SpecError([("", "a sweep spec is a mapping (name, base, objective, space, sampler, pruner, trials, ...)")])
    if problems := hostile_values(raw):
        raise SpecError(problems)
    try:
        sweep = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError([(".".join(map(str, e["loc"])), _message(e)) for e in exc.errors()]) from None
    try:
        base = validate_job_spec(sweep.base, repos=repos)
    except SpecError as exc:
        raise SpecError([(f"base.{path}" if path else "base", message) for path, message in exc.problems]) from None
    problems = _space_problems(sweep, repos)
    problems += _budget_problems(sweep)
    objective, warnings = _objective(sweep, base.task)
    problems += objective
    if problems:
        raise SpecError(problems)
    return sweep, base, warnings


def _message(error: dict) -> str:
    """A pydantic error of the sweep spec in words."""
    if error["type"] == "extra_forbidden":
        model: Any = SweepSpec
        for part in error["loc"][:-1]:
            field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
            if field is None:
                model = Param  # a parameter of the space, by its path
                continue
            model = field.annotation
        names = ", ".join(model.model_fields) if hasattr(model, "model_fields") else ""
        return f"unknown field.{f' Valid: {names}' if names else ''}"
    if error["type"] == "missing":
        return "is required"
    return error["msg"].removeprefix("Value error, ")


def _space_problems(sweep: SweepSpec, repos: "RepoRegistry | None") -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for path, param in sweep.space.items():
        for value in param.edges():
            try:
                validate_job_spec(merged(sweep.base, {path: value}), check_paths=False, repos=repos)
            except SpecError as exc:
                found = [(p, msg) for p, msg in exc.problems if p == path or p.startswith(path + ".")
                         or path.startswith(p + ".")] or exc.problems
                for where, message in found[:3]:
                    if where.startswith("space."):
                        problems.append((where, message))
                    elif any(words in message for words in ("Extra inputs are not permitted", "unknown field",
                                                          "unknown setting")):
                        problems.append((f"space.{path}", f"the job spec has no field {path} ({where}: {message})"))
                    else:
                        problems.append((f"space.{path}", f"value {quote(value, 60)} is refused: {where}: {message}"))
                break
    return problems


def _budget_problems(sweep: SweepSpec) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if sweep.sampler.type == "grid":
        grid = sweep.grid_space()
        if missing := [path for path, values in grid.items() if values is None]:
            problems.append(("space", f"a grid sweep needs every float parameter to have `step` (or be "
                                      f"categorical): {', '.join(missing)}"))
        else:
            size = math.prod(len(values) for values in grid.values())
            if sweep.trials is not None and sweep.trials > size:
                problems.append(("trials", f"{sweep.trials} is more than the grid's {size} points; "
                                           f"leave trials out to run the whole grid"))
            elif sweep.trials is None:
                sweep.trials = size
    if sweep.trials is None:
        sweep.trials = 10
    if sweep.parallel > sweep.trials:
        problems.append(("parallel", f"{sweep.parallel} trials at once is more than the {sweep.trials} trials "
                                     "of the sweep; make parallel at most trials"))
    if sweep.sampler.type == "cmaes" and all(p.type == "categorical" for p in sweep.space.values()):
        problems.append(("sampler", "cmaes samples int and float parameters; this space has only categorical ones "
                                    "(use tpe, random or grid)"))
    return problems


def _objective(sweep: SweepSpec, task: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Fill in the objective (the task's primary metric and its direction by default); problems and warnings."""
    primary = m.primary_metric(task)
    metric = sweep.objective.metric or primary.name
    known = (*GENERAL_METRICS, *TASK_METRICS[task]) if task in TASK_METRICS else tuple(m.VOCABULARY)
    problems, warnings = [], []
    if metric not in known and (metric in m.VOCABULARY or "/" not in metric):
        problems.append(("objective.metric", f"{task} never reports {quote(metric, 80)}. It reports: "
                                             f"{', '.join(sorted(known))}"))
    elif metric not in m.VOCABULARY:
        warnings.append(f"objective.metric: {metric} is not a name of the shared vocabulary; trials whose framework "
                        "or repo parser never reports it fail")
    natural = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    if metric == primary.name:
        natural = "maximize" if primary.higher_is_better else "minimize"
    direction = sweep.objective.direction or natural
    if sweep.objective.direction and direction != natural and metric in m.VOCABULARY:
        warnings.append(f"objective.direction: {direction} {metric}, where {'higher' if natural == 'maximize' else 'lower'}"
                        " is better: the sweep looks for the worst trials")
    sweep.objective = Objective(metric=metric, direction=direction)
    return problems, warnings
