"""The one registry type: equal re-registration is a no-op, a different entry is refused naming what
is there, an unknown name lists the valid ones."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from adapters.registry import AlreadyRegisteredError, Registry, UnknownNameError

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Record:
    name: str
    size: int
    note: str = field(default="", compare=False)


class Alpha:
    pass


class Beta:
    pass


def test_register_returns_the_entry_and_get_finds_it():
    reg: Registry[Record] = Registry("widget")
    entry = Record("a", 1)
    assert reg.register("a", entry) is entry
    assert reg.get("a") is entry
    assert "a" in reg and "b" not in reg and len(reg) == 1


def test_an_equal_entry_again_is_a_no_op_and_keeps_the_first():
    reg: Registry[Record] = Registry("widget")
    first = reg.register("a", Record("a", 1))
    again = Record("a", 1, note="not compared")
    assert reg.register("a", again) is again
    assert reg.get("a") is first
    assert reg.names() == ["a"]


def test_a_different_entry_is_refused_naming_what_is_there():
    reg: Registry[Record] = Registry("widget")
    reg.register("a", Record("a", 1))
    with pytest.raises(AlreadyRegisteredError) as info:
        reg.register("a", Record("a", 2))
    assert str(info.value) == ("widget 'a' is already registered as Record(name='a', size=1, note=''); refusing "
                               "Record(name='a', size=2, note='') (they differ in: size)")
    assert isinstance(info.value, ValueError)
    assert reg.get("a") == Record("a", 1)


def test_the_decorator_registers_a_class_unchanged_and_names_classes_in_its_refusal():
    reg: Registry[type] = Registry("parser")
    assert reg.decorator("x")(Alpha) is Alpha
    assert reg.decorator("x")(Alpha) is Alpha  # the same class again: fine
    with pytest.raises(AlreadyRegisteredError,
                       match=r"^parser 'x' is already registered as tests\.adapters\.test_registry\.Alpha; "
                             r"refusing tests\.adapters\.test_registry\.Beta$"):
        reg.decorator("x")(Beta)
    assert reg.get("x") is Alpha


def test_a_describe_function_names_the_entries():
    reg: Registry[Record] = Registry("widget", describe=lambda r: f"size {r.size}")
    reg.register("a", Record("a", 1))
    with pytest.raises(AlreadyRegisteredError, match=r"as size 1; refusing size 2 \(they differ in: size\)$"):
        reg.register("a", Record("a", 2))


def test_an_unknown_name_lists_the_valid_ones_sorted():
    reg: Registry[int] = Registry("framework")
    for name in ("timm", "ultralytics", "transformers"):
        reg.register(name, 0)
    with pytest.raises(UnknownNameError) as info:
        reg.get("yolo")
    assert str(info.value) == "Unknown framework 'yolo'. Valid: timm, transformers, ultralytics"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_an_empty_registry_and_an_unhashable_name():
    reg: Registry[int] = Registry("format")
    with pytest.raises(UnknownNameError, match=r"^Unknown format 'x'\. Valid: \(none registered\)$"):
        reg.get("x")
    reg.register("b", 2)
    with pytest.raises(UnknownNameError, match=r"^Unknown format \['b'\]\. Valid: b$"):
        reg.get(["b"])  # type: ignore[arg-type]
    assert ["b"] not in reg


def test_names_values_items_and_iteration_keep_registration_order():
    reg: Registry[int] = Registry("thing")
    for i, name in enumerate(("b", "c", "a")):
        reg.register(name, i)
    assert reg.names() == list(reg) == ["b", "c", "a"]
    assert reg.values() == [0, 1, 2]
    assert reg.items() == [("b", 0), ("c", 1), ("a", 2)]


def test_it_imports_nothing_but_the_standard_library():
    code = ("import sys, adapters.registry\n"
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('adapters', 'runner', 'envs', 'log_parsers', 'custom_repos', 'protos'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["adapters", "adapters.registry"]
