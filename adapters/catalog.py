"""Framework catalogs: models, config schema and presets as plain data.

The host (daemon, CLI) lists models and validates ``advanced`` settings from these records
without importing torch or any framework, so this module and every ``<framework>/catalog.py``
import nothing but the standard library. Catalogs register themselves in one dict; import
``adapters.frameworks`` (not this module) to get every registered catalog.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.registry import Registry, UnknownNameError  # noqa: F401  (UnknownNameError: re-exported)

FIELD_TYPES = ("choice", "int", "float", "bool", "str")


@dataclass(frozen=True)
class ModelEntry:
    """A curated model with the metadata a user needs to pick one."""

    name: str
    display_name: str
    tasks: tuple[str, ...]
    params_millions: float
    input_size: int
    recommended_batch_size: int
    recommended_learning_rate: float
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchemaField:
    """One setting under ``advanced``, addressed by a dotted path (``optimizer.type``)."""

    path: str
    type: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: A deprecated spelling of a training control (``training.gradient_clip``): still accepted, moved
    #: there when a spec is validated (``convert`` turns its value into the control's), never defaulted.
    replaced_by: str = ""
    convert: Callable[[Any], Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(f"field {self.path!r}: type {self.type!r} is not one of {FIELD_TYPES}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"field {self.path!r}: a choice needs choices")
        # The default must pass its own check, so a typo in a catalog fails at import.
        coerce(self, self.default)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.path.split("."))


@dataclass(frozen=True)
class Preset:
    """Named defaults for ``advanced`` (``values`` is nested the same way)."""

    name: str
    description: str
    values: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class FrameworkCatalog:
    """Everything the host knows about a framework without importing it."""

    name: str
    env: str  # env spec name in envs/, e.g. "timm"
    tasks: tuple[str, ...]
    dataset_formats: tuple[str, ...]
    models: tuple[ModelEntry, ...]
    fields: tuple[SchemaField, ...]
    presets: tuple[Preset, ...]
    adapter: str  # "module.path:ClassName", imported in the child env only
    known_models: frozenset[str] = frozenset()
    #: For catalogs open to any model (hub ids, local folders): ``check(model, task)`` returns
    #: why the model can't train the task, or None. Without it, only ``known_models`` pass.
    model_check: Callable[[str, str], str | None] | None = field(default=None, compare=False)
    #: Short names → canonical names (hub ids), applied when a spec is validated.
    model_alias: Callable[[str], str] | None = field(default=None, compare=False)
    #: How the framework honours each training control (``adapters.controls``); one left out is refused.
    controls: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        # Curated models are always accepted, even when the name list is stale.
        names = frozenset(m.name for m in self.models)
        object.__setattr__(self, "known_models", frozenset(self.known_models) | names)

    def accepts_model(self, name: str) -> bool:
        """True for a known model name, also with a weights tag (``resnet18.a1_in1k``)."""
        return name in self.known_models or name.split(".", 1)[0] in self.known_models

    def canonical_model(self, name: str) -> str:
        return self.model_alias(name) if self.model_alias else name

    def schema_field(self, path: str) -> SchemaField:
        for f in self.fields:
            if f.path == path:
                return f
        valid = ", ".join(f.path for f in self.fields)
        raise UnknownNameError(f"Unknown setting 'advanced.{path}' for {self.name}. Valid: {valid}")

    def preset(self, name: str) -> Preset:
        for p in self.presets:
            if p.name == name:
                return p
        valid = ", ".join(p.name for p in self.presets)
        raise UnknownNameError(f"Unknown preset '{name}' for {self.name}. Valid: {valid}")


# ---------------------------------------------------------------- registry

CATALOGS: Registry[FrameworkCatalog] = Registry("framework")


def register_catalog(catalog: FrameworkCatalog) -> FrameworkCatalog:
    """Add ``catalog`` under its name and return it unchanged (an equal one again is a no-op)."""
    return CATALOGS.register(catalog.name, catalog)


def get_catalog(name: str) -> FrameworkCatalog:
    return CATALOGS.get(name)


def registered_catalogs() -> tuple[FrameworkCatalog, ...]:
    return tuple(CATALOGS.get(name) for name in sorted(CATALOGS))


# ---------------------------------------------------------------- helpers


def find_model(catalog: FrameworkCatalog, name: str) -> ModelEntry | None:
    """The curated entry for ``name`` (or its untagged name), or None for uncurated models."""
    base = name.split(".", 1)[0]
    for model in catalog.models:
        if model.name in (name, base):
            return model
    return None


#: The image size of a model the catalog does not list, when the spec names none.
FALLBACK_INPUT_SIZE = 224


def default_input_size(catalog: FrameworkCatalog, name: str) -> int:
    """The image size a spec that names none gets for ``name``: its curated entry's, else 224 (as the
    daemon fills it: ``runner/spec/validate.py`` for a job, ``runner/daemon/predict_rpcs.py`` for a model
    without one)."""
    entry = find_model(catalog, name)
    return entry.input_size if entry else FALLBACK_INPUT_SIZE


def defaults(catalog: FrameworkCatalog) -> dict:
    """Every field's default as a nested dict shaped like ``advanced``."""
    out: dict = {}
    for f in catalog.fields:
        if not f.replaced_by:
            _set(out, f.keys, f.default)
    return out


def move_replaced(catalog: FrameworkCatalog, advanced: dict, training: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Move the deprecated spellings in ``advanced`` (filled by :func:`resolve_advanced`) to the training
    controls that replace them: the training values they give (those ``training`` does not set itself),
    and a problem for each one that contradicts what ``training`` sets. ``advanced`` loses them."""
    moved: dict = {}
    problems: list[tuple[str, str]] = []
    for f in catalog.fields:
        if not f.replaced_by:
            continue
        node = advanced
        for key in f.keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or f.keys[-1] not in node:
            continue
        value = node.pop(f.keys[-1])
        if not node and len(f.keys) > 1:  # a section only the deprecated setting made: gone with it
            _pop_section(advanced, f.keys[:-1])
        value = f.convert(value) if f.convert else value
        name = f.replaced_by.removeprefix("training.")
        given = training.get(name)
        if given is not None and given != value:
            problems.append((f"advanced.{f.path}", f"is the old spelling of {f.replaced_by}, which the spec also "
                                                   f"sets to {given!r}: keep only {f.replaced_by}"))
        elif given is None:
            moved[name] = value
    return moved, problems


def _pop_section(tree: dict, keys: tuple[str, ...]) -> None:
    for depth in range(len(keys), 0, -1):
        parent = tree
        for key in keys[:depth - 1]:
            parent = parent[key]
        if parent.get(keys[depth - 1]):
            return
        parent.pop(keys[depth - 1], None)


def resolve_advanced(catalog: FrameworkCatalog, values: dict | None, preset: str | None = None) -> dict:
    """Fill ``values`` with the preset's and then the schema's defaults, checked and coerced.

    Raises ValueError naming the dotted path of the first unknown or invalid setting.
    Numbers that travelled as doubles (protobuf Struct) come back as ints for int fields.
    """
    merged = defaults(catalog)
    if preset:
        _merge(merged, copy.deepcopy(catalog.preset(preset).values))
    by_path = {f.path: f for f in catalog.fields}
    for path, value in _flatten(values or {}):
        f = by_path.get(path)
        if f is None:
            valid = ", ".join(by_path)
            raise ValueError(f"advanced.{path}: unknown setting for {catalog.name}. Valid: {valid}")
        _set(merged, f.keys, coerce(f, value))
    return merged


def coerce(f: SchemaField, value: Any) -> Any:
    """``value`` converted to the field's type, or ValueError naming ``advanced.<path>``."""
    where = f"advanced.{f.path}"
    if f.type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if f.type in ("str", "choice"):
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        if f.type == "choice" and value not in f.choices:
            raise ValueError(f"{where}: {value!r} is not one of {', '.join(f.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if f.type == "int":
        if value != int(value):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if f.minimum is not None and value < f.minimum:
        raise ValueError(f"{where}: {value} is below the minimum {f.minimum}")
    if f.maximum is not None and value > f.maximum:
        raise ValueError(f"{where}: {value} is above the maximum {f.maximum}")
    return value


def _set(tree: dict, keys: tuple[str, ...], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _flatten(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, path + ".")
        else:
            yield path, value
