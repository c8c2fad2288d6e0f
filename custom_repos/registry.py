"""Which repo specs exist: the shipped ones (``custom_repos/specs/``) and the ones users added.

User specs live as ``<user_dir>/<name>.yaml`` (the daemon passes ``<home>/repos/specs``), so they
survive restarts, and every call reads the folder again: two daemons or CLI processes sharing a
home see each other's changes without a reload.

A user spec may not take a shipped name: ``repo: yolov7`` in a job spec means the same pinned
repo on every machine. To pin another commit or a fork, add it under a new name
(``yolov7-mine``). A file in ``user_dir`` that fails to load (edited by hand, or written by an
older visionyard) is left out of :meth:`RepoRegistry.list` and reported by
:meth:`RepoRegistry.broken`; :meth:`RepoRegistry.get` on its name raises its RepoSpecError.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from adapters.catalog import UnknownNameError
from custom_repos.spec import RepoSpec, RepoSpecError, load_repo_spec, load_yaml, parse_repo_spec

SHIPPED_DIR = Path(__file__).resolve().parent / "specs"
SHIPPED = "shipped"
USER = "user"


class UnknownRepoError(UnknownNameError):
    """No repo spec by that name; ``str()`` lists the valid names."""


class ShippedRepoError(ValueError):
    """An attempt to replace or remove a shipped repo spec."""


@functools.cache
def shipped_specs() -> dict[str, RepoSpec]:
    """The specs shipped with visionyard, by name (loaded once; a broken one fails loudly)."""
    specs = {}
    for path in sorted(SHIPPED_DIR.glob("*.yaml")):
        spec = load_repo_spec(path)
        if spec.name != path.stem:
            raise RepoSpecError(str(path), [("name", f"'{spec.name}' must match the file name '{path.stem}'")])
        specs[spec.name] = spec
    return specs


class RepoRegistry:
    """Shipped specs plus the user's, one folder of YAML files for the latter."""

    def __init__(self, user_dir: Path) -> None:
        self.user_dir = Path(user_dir)

    def get(self, name: str) -> RepoSpec:
        shipped = shipped_specs()
        if name in shipped:
            return shipped[name]
        specs, broken = self._user_specs()
        if name in specs:
            return specs[name]
        if name in broken:
            raise broken[name]
        valid = ", ".join(sorted({*shipped, *specs}))
        raise UnknownRepoError(f"Unknown repo '{name}'. Valid: {valid}")

    def list(self) -> list[tuple[RepoSpec, str]]:
        """Every usable spec with where it comes from (``shipped`` or ``user``), sorted by name."""
        entries = [(spec, SHIPPED) for spec in shipped_specs().values()]
        entries += [(spec, USER) for spec in self._user_specs()[0].values()]
        return sorted(entries, key=lambda entry: entry[0].name)

    def broken(self) -> list[str]:
        """Messages for user spec files that could not be loaded (not listed, not usable)."""
        return [str(error) for _, error in sorted(self._user_specs()[1].items())]

    def add(self, path: Path) -> RepoSpec:
        """Check the spec at ``path`` and store it as ``<user_dir>/<name>.yaml``.

        The file's text is kept as written (comments included). Adding a name that exists as a
        user spec replaces it; a shipped name raises ShippedRepoError. The write is atomic: a
        reader sees the old spec or the new one, never half a file. The url is not checked
        here: a clone that fails names it when a job (or PrepareRepo) first needs the repo.
        """
        path = Path(path)
        source = path.name  # errors name the file as the user knows it (the daemon passes a temp copy)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RepoSpecError(source, [("", f"cannot read the spec: {exc.strerror or exc}")]) from None
        spec = parse_repo_spec(load_yaml(text, source), source)
        if spec.name in shipped_specs():
            raise ShippedRepoError(
                f"{source}: name: '{spec.name}' is a shipped repo spec and cannot be replaced; "
                f"add yours under another name (e.g. '{spec.name}-custom')")
        self.user_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}-", suffix=".yaml.tmp", dir=self.user_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.user_dir / f"{spec.name}.yaml")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return spec

    def remove(self, name: str) -> None:
        """Delete the user spec ``name`` (also a broken one); shipped specs cannot be removed."""
        if "/" in name or name.startswith(".") or not name:
            raise UnknownRepoError(f"Unknown user repo '{name}'")
        if name in shipped_specs():
            raise ShippedRepoError(f"'{name}' is a shipped repo spec and cannot be removed")
        target = self.user_dir / f"{name}.yaml"
        try:
            target.unlink()
        except FileNotFoundError:
            valid = ", ".join(sorted(self._user_specs()[0])) or "(no user specs)"
            raise UnknownRepoError(f"Unknown user repo '{name}'. Valid: {valid}") from None

    def _user_specs(self) -> tuple[dict[str, RepoSpec], dict[str, RepoSpecError]]:
        specs: dict[str, RepoSpec] = {}
        broken: dict[str, RepoSpecError] = {}
        if not self.user_dir.is_dir():
            return specs, broken
        for path in sorted(self.user_dir.glob("*.yaml")):
            if path.name.startswith("."):
                continue
            try:
                spec = load_repo_spec(path)
            except RepoSpecError as exc:
                broken[path.stem] = exc
                continue
            if spec.name != path.stem:
                broken[path.stem] = RepoSpecError(
                    str(path), [("name", f"'{spec.name}' does not match the file name; re-add the spec")])
            elif spec.name in shipped_specs():
                broken[path.stem] = RepoSpecError(
                    str(path), [("name", f"'{spec.name}' is a shipped repo spec; this file is ignored")])
            else:
                specs[spec.name] = spec
        return specs, broken
