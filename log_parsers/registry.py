"""Which parser a repo spec's `parser:` field names, and the checks on it.

One registry of built-in parsers (an `adapters.registry.Registry`), filled by `@register_parser`
in each parser module (imported explicitly by `log_parsers/__init__.py`, so the list is visible in
one file). A `parser:` value is one of:

    "yolov7"                          a built-in, by name
    {"builtin": "yolov7"}             the same, as a mapping
    {"patterns": [...]}               a regex parser defined in YAML (see regex_parser.py)
    {"builtin": ..., "per_class": {...}}, {"patterns": [...], "per_class": {...}}
                                      either, plus the rows of a per-class table after each
                                      validation (see per_class.py)
    {"parser": <any of the above>}    the field itself, wrapped (what `yaml.safe_load` gives
                                      for a document that is just the `parser:` block)

Errors are ValueErrors naming the field path (`parser.patterns[1].regex: ...`), so the daemon
can pass them on as INVALID_ARGUMENT when a user adds a repo spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from adapters.registry import Registry
from log_parsers.base import LogParser

__all__ = ["BUILTINS", "build_parser", "builtin_parsers", "register_parser", "validate_parser_config"]

BUILTINS: Registry[type[LogParser]] = Registry("log parser")

P = TypeVar("P", bound=type[LogParser])


def register_parser(name: str) -> Callable[[P], P]:
    """Class decorator: make a parser class available under `name`; returns the class unchanged.

    The same class again is a no-op; another class under a taken name raises
    ``AlreadyRegisteredError`` (a ValueError) before anything changes."""

    def register(cls: P) -> P:
        BUILTINS.register(name, cls)
        cls.name = name
        return cls

    return register


def builtin_parsers() -> list[str]:
    return sorted(BUILTINS)


def _builtin(name: Any, path: str) -> type[LogParser]:
    if not isinstance(name, str):
        raise ValueError(f"{path}: expected a parser name (string), got {type(name).__name__}")
    return BUILTINS.get(name)  # UnknownNameError (a ValueError): "Unknown log parser 'x'. Valid: ..."


def _resolve(config: Any) -> Callable[[], LogParser]:
    """Check `config` completely and return a factory for its parser."""
    from log_parsers.per_class import PerClassParser, compile_per_class
    from log_parsers.regex_parser import RegexParser, compile_patterns

    path = "parser"
    if isinstance(config, Mapping) and set(config) == {"parser"}:
        config = config["parser"]
    if isinstance(config, str):
        return _builtin(config, path)
    if not isinstance(config, Mapping):
        raise ValueError(f"{path}: expected a built-in parser name or a mapping, got {type(config).__name__}")
    if "builtin" in config:
        extra = sorted(str(k) for k in config if k not in ("builtin", "per_class"))
        if extra:
            raise ValueError(f"{path}.{extra[0]}: unknown key next to 'builtin'")
        make: Callable[[], LogParser] = _builtin(config["builtin"], f"{path}.builtin")
    else:
        make = partial(RegexParser, compile_patterns(config, path))
    if "per_class" not in config:
        return make
    table = compile_per_class(config["per_class"], f"{path}.per_class")
    return lambda: PerClassParser(make(), table)


def build_parser(config: str | Mapping[str, Any]) -> LogParser:
    """A fresh parser (parsers keep per-log state: build one per job log)."""
    return _resolve(config)()


def validate_parser_config(config: Any) -> None:
    """The checks `build_parser` makes, for when a user adds a repo spec; raises ValueError."""
    _resolve(config)
