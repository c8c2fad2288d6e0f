"""The training controls (``adapters.controls``) for a custom repo: its spec's ``controls:`` maps each control
it honours to the repo's own arguments; a job asking for one the spec doesn't map is refused, naming it.

```yaml
controls:
  gradient_accumulation: [--update_freq, "{gradient_accumulation}"]   # a list: these arguments
  gradient_clip: [--clip_grad, "{gradient_clip}"]
  warmup_epochs: [--warmup_epochs, "{warmup_epochs}"]
  early_stopping: [--patience, "{patience}"]
  mixed_precision: {fp16: [--use_amp, "true"], "no": [--use_amp, "false"]}   # a mapping: by value
  ema: {true: [--model_ema, "true"], false: []}
```

A control the job sets adds its arguments to the command; when the command already has the first of
them (a flag such as ``--warmup_epochs``), that flag and the values after it are replaced instead, so a
spec's default stays in ``command`` and the job's control wins. The job's value fills the control's
placeholder (``{gradient_clip}``; early stopping: ``{patience}`` and ``{min_delta}``); every
placeholder of ``command`` may be used too. A control the job leaves at its default
(``mixed_precision: auto``, ``gradient_accumulation: 1``, the others unset) adds nothing: the repo's own
behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from adapters.controls import (CONTROLS, EARLY_STOPPING, EMA, FP16_NEEDS_CUDA, GRADIENT_ACCUMULATION, MIXED_PRECISION,
                               PRECISIONS)
from custom_repos import template

#: The placeholders a control's arguments may use besides the command's.
CONTROL_PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    EARLY_STOPPING: ("patience", "min_delta"),
    **{name: (name,) for name in CONTROLS if name != EARLY_STOPPING},
}
#: The values a mapping may be keyed by.
KEYS: dict[str, tuple[str, ...]] = {MIXED_PRECISION: PRECISIONS, EMA: ("true", "false")}


def spec_problems(controls: Mapping[str, Any], valid: Iterable[str]) -> list[tuple[str, str]]:
    """What is wrong with a repo spec's ``controls:``, each as (field path, message)."""
    problems: list[tuple[str, str]] = []
    valid = list(valid)
    for name, entry in controls.items():
        where = f"controls.{name}"
        if name not in CONTROLS:
            problems.append((where, f"not a training control. Valid: {', '.join(CONTROLS)}"))
            continue
        if isinstance(entry, Mapping):
            if name not in KEYS:
                problems.append((where, "a mapping by value only for mixed_precision and ema; give a list"))
                continue
            arguments = {_key(key, name): value for key, value in entry.items()}
            for key in arguments:
                if key not in KEYS[name]:
                    problems.append((f"{where}.{key}", f"not a value of {name}. Valid: {', '.join(KEYS[name])}"))
        else:
            arguments = {"": entry}
        for key, args in arguments.items():
            at = f"{where}.{key}" if key else where
            if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
                problems.append((at, "a list of arguments (strings)"))
                continue
            for i, element in enumerate(args):
                if (message := template.check(str(element), [*valid, *CONTROL_PLACEHOLDERS[name]])) is not None:
                    problems.append((f"{at}[{i}]", message))
    return problems


def job_problems(controls: Mapping[str, Any], training: Mapping[str, Any], repo: str) -> list[tuple[str, str]]:
    """The controls a job sets that the repo's spec does not map, each as (field path, message)."""
    problems = []
    if training.get(MIXED_PRECISION) == "fp16" and training.get("device") == "cpu":
        problems.append((f"training.{MIXED_PRECISION}", FP16_NEEDS_CUDA))
    for name, value in asked(training).items():
        entry = controls.get(name)
        if entry is None:
            problems.append((f"training.{name}", f"repo {repo} does not take {name}: its spec maps no argument for "
                                                 "it under `controls:` (add one, or leave it out)"))
        elif isinstance(entry, Mapping) and _key(value) not in {_key(k, name) for k in entry}:
            valid = ", ".join(_key(k, name) for k in entry)
            problems.append((f"training.{name}", f"repo {repo} takes {name} {valid}, not {_key(value)}"))
    return problems


def asked(training: Mapping[str, Any]) -> dict[str, Any]:
    """The controls ``training`` sets to something other than the repo's own behaviour."""
    out = {}
    for name in CONTROLS:
        value = training.get(name)
        if value is None or (name == MIXED_PRECISION and value == "auto") or (name == GRADIENT_ACCUMULATION
                                                                              and value == 1):
            continue
        if name == EARLY_STOPPING and not (value or {}).get("patience"):
            continue
        out[name] = value
    return out


def apply(argv: list[str], controls: Mapping[str, Any], training: Mapping[str, Any],
          values: Mapping[str, Any]) -> list[str]:
    """``argv`` with the arguments of each control the job sets (rendered with ``values`` and the control's own)."""
    argv = list(argv)
    for name, value in asked(training).items():
        entry = controls.get(name)
        if entry is None:
            continue  # refused when the job was checked
        if isinstance(entry, Mapping):
            entry = {_key(k, name): v for k, v in entry.items()}.get(_key(value), [])
        own = {"patience": value["patience"], "min_delta": value.get("min_delta") or 0.0} \
            if name == EARLY_STOPPING else {name: _number(value)}
        args = template.render_command([str(a) for a in entry], {**values, **own})
        argv = merge(argv, args)
    return argv


def merge(argv: list[str], args: list[str]) -> list[str]:
    """``args`` in ``argv``: replacing the same flag and as many values as ``args`` has after it, else appended."""
    if args and args[0].startswith("-") and args[0] in argv:
        at = argv.index(args[0])
        return argv[:at] + args + argv[at + len(args):]
    return argv + args


def _key(value: Any, name: str = "") -> str:
    """A mapping's key or a job's value as text (YAML reads an unquoted ``no`` key of mixed_precision as false)."""
    if value is False and name == MIXED_PRECISION:
        return "no"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _number(value: Any) -> Any:
    """Whole floats as ints (``--warmup_epochs 1``, which an ``int`` argument parses)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
