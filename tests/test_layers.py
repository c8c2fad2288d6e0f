"""The layers of the code, read from the source: which package may import which, no import cycles,
and a client that stays light. Arrows point one way (ARCHITECTURE.md):
cli -> client -> (spec.wire, auth, settings); daemon -> core -> launch; nothing imports payload;
adapters/ (it runs inside framework envs too) imports none of the host's packages."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runner", "adapters", "envs", "custom_repos", "log_parsers", "protos")


@dataclass(frozen=True)
class Import:
    source: str     # the importing module
    target: str     # the imported project module (the longest module name that exists)
    top: bool       # at module level (run on import), TYPE_CHECKING blocks included
    line: int


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> list[Import]:
    found = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]

        def visit(nodes, top: bool):
            for node in nodes:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    visit(node.body, False)
                    continue
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                    # `from pkg import x` loads pkg.x when x is a module, else pkg itself
                    names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
                for name in names:
                    target = _resolve(name)
                    if target and target != module:
                        found.append(Import(module, target, top, node.lineno))
                visit([c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)], top)

        visit(ast.parse(path.read_text()).body, True)
    return found


IMPORTS = _imports()


def _under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(sources: tuple[str, ...], targets: tuple[str, ...], top_only: bool = False) -> list[str]:
    return sorted({f"{i.source}:{i.line} imports {i.target}" for i in IMPORTS
                   if _under(i.source, *sources) and _under(i.target, *targets) and (i.top or not top_only)})


def test_adapters_import_none_of_the_hosts_packages():
    assert _violations(("adapters",), ("runner", "envs", "custom_repos", "log_parsers")) == []


def test_envs_and_log_parsers_take_only_the_registry_type_from_the_project():
    """envs/ and log_parsers/ are leaves: of the project they import only their own package and
    adapters.registry (the one registry type, shared by the host and the child), which imports
    nothing of the project."""
    for package in ("envs", "log_parsers"):
        others = tuple(p for p in PACKAGES if p != package)
        assert [v for v in _violations((package,), others) if not v.endswith(" imports adapters.registry")] == []
    assert _violations(("adapters.registry",), PACKAGES) == []


def test_nothing_imports_the_payload_and_the_payload_imports_nothing_of_the_runner():
    outside = tuple(m for m in ("runner.cli", "runner.client", "runner.daemon", "runner.core", "runner.launch",
                                "runner.spec", "runner.auth", "runner.settings"))
    assert _violations(outside, ("runner.payload",)) == []
    assert _violations(("runner.payload",), ("runner", "adapters", "custom_repos", "log_parsers")) == []


def test_launch_knows_nothing_of_core_daemon_or_cli():
    assert _violations(("runner.launch",), ("runner.core", "runner.daemon", "runner.cli", "runner.client")) == []


def test_core_knows_nothing_of_daemon_or_cli():
    assert _violations(("runner.core",), ("runner.daemon", "runner.cli", "runner.client")) == []


def test_daemon_knows_nothing_of_cli_or_client():
    assert _violations(("runner.daemon",), ("runner.cli", "runner.client")) == []


def test_the_public_api_stands_on_the_wire_the_token_and_the_settings_only():
    light = ("runner.client", "runner.auth", "runner.settings", "runner.spec.wire")
    assert _violations(light, ("runner", "adapters", "envs", "custom_repos", "log_parsers")) == \
        _violations(light, ("runner.auth", "runner.settings", "runner.spec.wire"))


def _loaded_at_import(module: str) -> set[str]:
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        if i.top:
            graph.setdefault(i.source, set()).add(i.target)
    loaded, todo = set(), [module]
    while todo:
        module = todo.pop()
        if module not in loaded:
            loaded.add(module)
            todo += graph.get(module, ())
    return loaded


def test_the_cli_loads_only_the_client_side_when_it_starts():
    """The CLI reaches the daemon through the client; `serve`, `datasets`, the live progress view,
    predict and the demo import what they run inside their functions. The package itself loads
    nothing, so `--version` answers at once."""
    assert _loaded_at_import("runner.cli") == {"runner.cli"}
    loaded = _loaded_at_import("runner.cli.app")
    client_side = {"runner", "runner.cli", "runner.cli.app", "runner.cli.commands", "runner.cli.names",
                   "runner.cli.output", "runner.cli.views", "runner.cli.jsonout", "runner.cli.version",
                   "runner.client", "runner.auth", "runner.settings", "runner.spec", "runner.spec.wire"}
    assert "runner.client" in loaded
    assert {m for m in loaded if not m.startswith("protos")} - client_side == set()


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        if i.top:
            graph.setdefault(i.source, set()).add(i.target)
    cycles, state = [], {}

    def walk(node: str, path: list[str]):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert cycles == []


@pytest.mark.parametrize("module", ["runner.client", "runner.cli", "runner.cli.app"])
def test_the_client_loads_no_validation_framework_or_tracking(module):
    code = (f"import sys, {module}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('pydantic', 'adapters', 'mlflow', 'torch', 'envs', 'custom_repos', 'sqlalchemy'))\n"
            "print(' '.join(heavy))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
