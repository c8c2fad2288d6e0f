"""One small registry type for every "name → entry" table: framework catalogs, env specs, dataset
formats, log parsers.

Standard library only, and it imports nothing of the project: the host's ``envs`` and
``log_parsers`` import this one module of ``adapters`` (see ARCHITECTURE.md, "One registry type").

One rule for re-registration: the same name with an equal entry (``==``: equal records, the same
class or function) is a no-op and the first entry stays; with a different entry it raises
``AlreadyRegisteredError`` naming what the name already holds. An unknown name raises
``UnknownNameError`` listing the valid names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["AlreadyRegisteredError", "Registry", "UnknownNameError"]

T = TypeVar("T")
E = TypeVar("E")


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered; ``str()`` is the plain message (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AlreadyRegisteredError(ValueError):
    """A name registered again with a different entry."""


def describe(entry: object) -> str:
    """A short name for ``entry`` in messages: ``module.Name`` for a class or function, else its repr
    (cut at 120 characters)."""
    qualname = getattr(entry, "__qualname__", None)
    if isinstance(qualname, str) and not isinstance(entry, str):
        return f"{getattr(entry, '__module__', '?')}.{qualname}"
    text = repr(entry)
    return text if len(text) <= 120 else text[:117] + "..."


class Registry(Generic[T]):
    """Named entries of one kind, in registration order.

    ``kind`` names an entry in messages ("framework" → ``Unknown framework 'yolo'. Valid: ...``);
    ``describe`` says what an entry is when a name is taken by another one.
    """

    def __init__(self, kind: str, describe: Callable[[T], str] = describe):
        self.kind = kind
        self._describe = describe
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it; an equal entry already there is kept."""
        existing = self._entries.get(name, _MISSING)
        if existing is _MISSING:
            self._entries[name] = entry
        elif existing is not entry and existing != entry:
            fields = _differing_fields(existing, entry)
            raise AlreadyRegisteredError(
                f"{self.kind} {name!r} is already registered as {self._describe(existing)}; refusing "
                f"{self._describe(entry)}" + (f" (they differ in: {', '.join(fields)})" if fields else ""))
        return entry

    def decorator(self, name: str) -> Callable[[E], E]:
        """``@registry.decorator(name)``: register the decorated object itself; returns it unchanged."""
        def register(entry: E) -> E:
            self.register(name, entry)  # type: ignore[arg-type]
            return entry
        return register

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable "name" from a user's YAML
            raise UnknownNameError(f"Unknown {self.kind} {name!r}. Valid: {self.valid()}") from None

    def valid(self) -> str:
        """The registered names, sorted, as the error messages list them."""
        return ", ".join(sorted(self._entries)) or "(none registered)"

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def values(self) -> list[T]:
        return list(self._entries.values())

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __contains__(self, name: object) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


_MISSING = object()


def _differing_fields(a: object, b: object) -> list[str]:
    """The compared fields in which two dataclass records of one type differ (else none)."""
    if type(a) is not type(b) or not dataclasses.is_dataclass(a):
        return []
    return [f.name for f in dataclasses.fields(a) if f.compare and getattr(a, f.name) != getattr(b, f.name)]
