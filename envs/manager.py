"""Build, reuse, list and remove the uv virtualenvs jobs run in.

Layout under ``root`` (``$VISIONYARD_HOME/envs``)::

    <name>-<key>/                    a finished env; complete iff it holds visionyard-env.json
    .tmp-<name>-<key>-<random>/      an env being built (or removed); never used by a job
    .locks/<name>-<key>.lock         one flock per env, held while it is being built

An env is built in a temp dir and renamed into place only once its marker is written, so a
job never sees a half-installed env, and a crash leaves only a ``.tmp-*`` dir that
:meth:`EnvManager.gc_partial` removes once nobody holds its lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import filelock

from envs.errors import EnvBuildCancelled, EnvBuildError
from envs.ondisk import (
    disk_usage,
    installed_distributions,
    pyvenv_version,
    write_json_atomic,
)
from envs.spec import EnvSpec
from envs.uvcli import (
    find_uv,
    mentioned_requirements,
    resolve_python_version,
    run_streaming,
)

MARKER = "visionyard-env.json"
MARKER_FORMAT = 1
REQUIREMENTS_FILE = "visionyard-requirements.txt"
OVERRIDES_FILE = "visionyard-overrides.txt"
#: ``.tmp-<spec name>-<12 hex key>-<suffix>``; anything else under root is not ours to delete.
_TMP_RE = re.compile(r"^\.tmp-(?P<env>.+-[0-9a-f]{12})-(?P<suffix>[a-z0-9_]+)$")


@dataclass(frozen=True)
class Env:
    """A ready env. ``build_seconds`` is the time this call spent building (0.0 when reused)."""

    name: str
    spec_name: str
    key: str
    path: Path
    python: Path
    reused: bool
    build_seconds: float


@dataclass(frozen=True)
class EnvRecord:
    """An env on disk, as :meth:`EnvManager.list` reports it.

    ``size_bytes`` is the apparent size of everything in the env, each inode counted once (like
    ``du -sb``). uv hardlinks packages from its cache, so most of that is shared: a timm env
    "holds" ~5 GB but costs ~10 MB of new disk. ``unique_bytes`` is the disk that removing the
    env gives back: allocated blocks of files with no other hardlink. Times are epoch seconds
    (what ``EnvInfo`` carries on the wire); the marker file keeps them as ISO-8601 UTC.
    """

    name: str
    spec_name: str
    key: str
    path: Path
    size_bytes: int
    unique_bytes: int
    created_at: float
    last_used_at: float
    python_version: str
    requirements: tuple[str, ...]
    overrides: tuple[str, ...]
    installed: tuple[str, ...]


class EnvManager:
    """One directory of envs, safe to share between threads and processes."""

    def __init__(self, root: Path, uv: str | None = None) -> None:
        self.root = Path(root).absolute()
        self.uv = uv or find_uv()
        self.locks = self.root / ".locks"
        self.locks.mkdir(parents=True, exist_ok=True)
        self.gc_partial()

    # -- ensure ------------------------------------------------------------------------------

    def ensure(
        self,
        spec: EnvSpec,
        log: TextIO | None = None,
        cancel: threading.Event | None = None,
    ) -> Env:
        """Return the env for ``spec``, building it first unless an identical one exists.

        Concurrent callers (threads or processes) with the same spec wait on one file lock:
        one builds, the others find the finished env when they get the lock. uv's output
        goes to ``log`` line by line. Raises :class:`EnvBuildError` (temp dir removed) or
        :class:`EnvBuildCancelled` when ``cancel`` is set, also while waiting for the lock.
        """
        version = resolve_python_version(self.uv, spec.python, self.root)
        key = spec.key(version)
        name = f"{spec.name}-{key}"
        final = self.root / name
        if (env := self._reuse(spec, key, final)) is not None:
            return env
        lock = filelock.FileLock(str(self.locks / f"{name}.lock"))
        self._acquire(lock, name, log, cancel)
        try:
            if (env := self._reuse(spec, key, final)) is not None:  # built while we waited
                return env
            return self._build(spec, version, key, final, log, cancel)
        finally:
            lock.release()

    def _reuse(self, spec: EnvSpec, key: str, final: Path) -> Env | None:
        """The cache-hit path: one read of the marker, one atomic rewrite of ``last_used_at``."""
        marker = final / MARKER
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        python = final / "bin" / "python"
        if data.get("key") != key or not python.exists():
            return None
        data["last_used_at"] = _now()
        try:
            write_json_atomic(marker, data, durable=False)
        except OSError:
            pass  # removed under us or read-only root: the env itself is still good to report
        return Env(final.name, spec.name, key, final, python, reused=True, build_seconds=0.0)

    def _acquire(
        self, lock: filelock.FileLock, name: str, log: TextIO | None, cancel: threading.Event | None
    ) -> None:
        announced = False
        while True:
            if cancel is not None and cancel.is_set():
                raise EnvBuildCancelled(f"Cancelled while waiting for env {name!r}")
            try:
                lock.acquire(timeout=0.1)
                return
            except filelock.Timeout:
                if not announced:
                    _log(log, f"[visionyard] waiting for another build of env {name}\n")
                    announced = True

    def _build(
        self,
        spec: EnvSpec,
        version: str,
        key: str,
        final: Path,
        log: TextIO | None,
        cancel: threading.Event | None,
    ) -> Env:
        """Build into a fresh ``.tmp-*`` dir, write the marker, rename into place (lock held)."""
        started = time.monotonic()
        name = final.name
        _log(log, f"[visionyard] building env {name} (python {version})\n")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.root))
        try:
            self._create_and_install(spec, version, tmp, name, log, cancel)
            build_seconds = round(time.monotonic() - started, 3)
            now = _now()
            marker = {
                "format": MARKER_FORMAT,
                "name": name,
                "key": key,
                "spec": spec.to_dict(),
                "install": spec.install_payload(version),
                "python_version": version,
                "requirements": sorted(spec.requirements),
                "overrides": sorted(spec.overrides),
                "installed": installed_distributions(tmp, version),
                "created_at": now,
                "last_used_at": now,
                "build_seconds": build_seconds,
            }
            write_json_atomic(tmp / MARKER, marker, durable=True)
            self._discard_broken(final)
            os.rename(tmp, final)
        except EnvBuildError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EnvBuildError(f"Building env {name!r} failed: {exc!r}") from exc
        except BaseException:  # KeyboardInterrupt, SystemExit: clean up, then let it through
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _log(log, f"[visionyard] env {name} ready in {build_seconds:.1f} s\n")
        python = final / "bin" / "python"
        return Env(name, spec.name, key, final, python, reused=False, build_seconds=build_seconds)

    def _create_and_install(
        self,
        spec: EnvSpec,
        version: str,
        tmp: Path,
        name: str,
        log: TextIO | None,
        cancel: threading.Event | None,
    ) -> None:
        """`uv venv --relocatable` + `uv pip install`: the env keeps working once renamed."""
        self._run(["venv", "--relocatable", "--python", version, str(tmp)], spec, name, log, cancel)
        created = pyvenv_version(tmp)
        if created != version:
            raise EnvBuildError(f"Building env {name!r}: got Python {created}, expected {version}")
        # The files stay in the env: a record of exactly what was asked for.
        lines = [*spec.requirements, *spec.requirements_text.splitlines()]
        if not any(line.strip() and not line.strip().startswith("#") for line in lines):
            return
        req_file = tmp / REQUIREMENTS_FILE
        req_file.write_text("".join(line + "\n" for line in lines))
        install = ["pip", "install", "--python", str(tmp / "bin" / "python"), "-r", str(req_file)]
        if spec.overrides:
            (tmp / OVERRIDES_FILE).write_text("".join(o + "\n" for o in spec.overrides))
            install += ["--overrides", str(tmp / OVERRIDES_FILE)]
        self._run(install, spec, name, log, cancel)

    def _run(
        self,
        args: list[str],
        spec: EnvSpec,
        name: str,
        log: TextIO | None,
        cancel: threading.Event | None,
    ) -> None:
        cmd = [self.uv, *args]
        if cancel is not None and cancel.is_set():
            raise EnvBuildCancelled(f"Cancelled before `uv {args[0]}` of env {name!r}", command=cmd)
        returncode, tail = run_streaming(cmd, cwd=self.root, log=log, cancel=cancel)
        if returncode == 0:
            return
        culprits = mentioned_requirements(
            [*spec.requirements, *spec.overrides, *spec.requirements_text.splitlines()], tail
        )
        what = "uv " + " ".join(a for a in args[:2] if not a.startswith("-"))
        lines = [f"Building env {name!r}: `{what}` failed with exit code {returncode}."]
        if culprits:
            lines.append("Failing requirement(s): " + ", ".join(culprits))
        lines.append("Command: " + " ".join(cmd))
        lines.append("Last uv output:")
        lines.extend("  " + line for line in tail)
        raise EnvBuildError(
            "\n".join(lines),
            command=cmd,
            returncode=returncode,
            output_tail=tail,
            failed_requirements=culprits,
        )

    def _discard_broken(self, final: Path) -> None:
        """Move aside an env dir without a valid marker (called under its lock, before rename)."""
        if final.exists():
            doomed = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-broken", dir=self.root))
            os.rename(final, doomed / "env")
            shutil.rmtree(doomed, ignore_errors=True)

    # -- list / remove / gc ------------------------------------------------------------------

    def list(self, name: str | None = None) -> list[EnvRecord]:
        """Every finished env under root (or those named `name`, an env or spec name), sorted by name.

        Walks each listed env to size it, so pass `name` when only one is wanted.
        """
        records = []
        for path, data in self._finished():
            if name is not None and name not in (path.name, data["spec"]["name"]):
                continue
            size, unique = disk_usage(path)
            records.append(
                EnvRecord(
                    name=path.name,
                    spec_name=data["spec"]["name"],
                    key=data["key"],
                    path=path,
                    size_bytes=size,
                    unique_bytes=unique,
                    created_at=_epoch(data["created_at"]),
                    last_used_at=_epoch(data["last_used_at"]),
                    python_version=data.get("python_version", ""),
                    requirements=tuple(data.get("requirements", ())),
                    overrides=tuple(data.get("overrides", ())),
                    installed=tuple(data.get("installed", ())),
                )
            )
        return records

    def remove(self, name_or_spec_name: str) -> list[str]:
        """Remove one env (``timm-3f9a0c1d2b4e``) or every env of a spec (``timm``).

        Returns the names removed (empty when nothing matched). Each env is first renamed to
        a ``.tmp-*`` dir, so from that instant ``ensure`` builds afresh instead of reusing it;
        a job already running in it keeps its open files but should not be left running.
        """
        removed = []
        for path, data in self._finished():
            if name_or_spec_name not in (path.name, data["spec"]["name"]):
                continue
            doomed = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-rm", dir=self.root))
            try:
                os.rename(path, doomed / "env")
            except FileNotFoundError:
                shutil.rmtree(doomed, ignore_errors=True)
                continue  # removed by someone else meanwhile
            shutil.rmtree(doomed, ignore_errors=True)
            removed.append(path.name)
        return removed

    def gc_partial(self) -> list[str]:
        """Delete ``.tmp-*`` dirs left by crashed builds or removals; returns their names.

        A temp dir is only deleted if its env's lock is free: a build in progress holds it
        for as long as its temp dir exists. Costs one ``listdir`` when there is nothing to do.
        """
        deleted = []
        for entry in os.scandir(self.root):
            match = _TMP_RE.match(entry.name)
            if match is None or not entry.is_dir(follow_symlinks=False):
                continue
            lock = filelock.FileLock(str(self.locks / f"{match['env']}.lock"))
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                continue
            try:
                if os.path.lexists(entry.path):
                    shutil.rmtree(entry.path, ignore_errors=True)
                    deleted.append(entry.name)
            finally:
                lock.release()
        return deleted

    def _finished(self) -> list[tuple[Path, dict[str, Any]]]:
        found = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                data = json.loads((Path(entry.path) / MARKER).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("name") == entry.name:
                found.append((Path(entry.path), data))
        return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _log(log: TextIO | None, text: str) -> None:
    if log is not None:
        log.write(text)
        log.flush()
