"""What a job on a node that shares nothing with the daemon takes with it and sends back.

The daemon prepares a job as for a local run (the checkout, the translated configs, the job dir),
then writes the node's plan: the command with every path of the daemon's home mapped to the node
home, the env spec to build there, the checkout and the files of the home to send. The plan is the
daemon's own record (``<home>/node-plans/<job>.json``, outside every job dir): nothing a node or a
job can write decides what a node may fetch. The node agent (`runner/payload/node_agent.py`) fetches the
plan, the job dir (a tar; text files and links naming the daemon's home are mapped the same way),
the checkout (a tar without ``.git``) and the files of the daemon's job dirs the job starts from
(``weights``/``resume``: an earlier job's checkpoint) with ``Reporter.Fetch``; each source is
checked again at every fetch (a checkout under the home's checkouts, files under its job dirs).
It sends the job's results back with ``Reporter.Upload`` (`uploads.py`): only into an allow-list of the job
dir (its ``checkpoints/`` and ``output/`` folders, its report journal and its exit record, which
is validated and rewritten, never taken as sent), within size and count limits.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from runner.launch.jobdir import (CHECKPOINTS, EXIT_RECORD, JOURNAL, LAUNCH_RECORD, LOG, NODE_PLANS, OUTPUT,
                                  SUPERVISOR_RECORD, WORK_TREE)
from runner.launch.procs import NODE_AGENT, SUPERVISOR
from runner.settings import Paths

PLAN_FORMAT = 1
CHUNK = 1 << 20
REWRITE_MAX_BYTES = 4 << 20  # larger files are data, never a config naming a path
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed: a package's name is the hash of its bytes
FETCHABLE = ("plan", "inputs", "checkout", "home-files")
#: What a node sends back: the files the job wrote in these folders of its job dir ...
RESULT_FOLDERS = (CHECKPOINTS, OUTPUT, WORK_TREE)  # of the work tree: the files the run made
#: ... and these records of how it went (the exit record last: the daemon ends the job on it).
RESULT_RECORDS = (JOURNAL, EXIT_RECORD)
#: Files of the daemon's job dir the node never needs (the daemon's records, the log Ray streams).
NOT_INPUTS = frozenset({LOG, LAUNCH_RECORD, JOURNAL, EXIT_RECORD, SUPERVISOR_RECORD, WORK_TREE})
ENV_NODE_HOME = "VISIONYARD_NODE_HOME"  # where the node agent keeps its code, envs and job dirs


class PathMap:
    """Every path under one of the daemon's folders → the same path under the node's counterpart,
    in one pass (the longest folder first; a folder matches only as a whole path component)."""

    def __init__(self, pairs: dict[str, str]):
        self.pairs = {str(k).rstrip("/"): str(v).rstrip("/") for k, v in pairs.items()}
        alternatives = "|".join(re.escape(k) for k in sorted(self.pairs, key=len, reverse=True))
        self._text = re.compile(f"(?:{alternatives})(?=/|$|[^A-Za-z0-9_.-])")
        self._bytes = re.compile(self._text.pattern.encode())
        self._raw = {k.encode(): v.encode() for k, v in self.pairs.items()}

    def text(self, value: str) -> str:
        return self._text.sub(lambda m: self.pairs[m.group(0)], value)

    def data(self, value: bytes) -> bytes:
        return self._bytes.sub(lambda m: self._raw[m.group(0)], value)


# ---------------------------------------------------------------- packages (Ray's py_modules)


def zip_package(entries: list[tuple[str, Path | bytes]]) -> bytes:
    """A zip of (name in the zip, file or bytes), byte-identical for the same content."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name, source in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, source if isinstance(source, bytes) else source.read_bytes())
    return out.getvalue()


def tree(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    """The files of a source folder (no bytecode) under `prefix` in a package."""
    return [(f"{prefix}/{p.relative_to(folder).as_posix()}", p) for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def package_name(data: bytes) -> str:
    return f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:24]}.zip"


def code_package() -> bytes:
    """The node agent's package: the agent, the supervisor, the env manager (and the filelock it
    uses), the code a child imports, and the repo shims."""
    import filelock

    import adapters
    import envs
    import protos
    from custom_repos.translate import SHIM_DIR

    entries: list[tuple[str, Path | bytes]] = [
        ("visionyard_node/__init__.py", b""),
        ("visionyard_node/__main__.py", NODE_AGENT),
        ("visionyard_node/supervisor.py", SUPERVISOR),
    ]
    entries += tree(Path(envs.__file__).parent, "visionyard_node/lib/envs")
    entries += tree(Path(filelock.__file__).parent, "visionyard_node/lib/filelock")
    entries += tree(Path(adapters.__file__).parent, "visionyard_node/child/adapters")
    entries += tree(Path(protos.__file__).parent, "visionyard_node/child/protos")
    entries += tree(SHIM_DIR, "visionyard_node/shims")
    return zip_package(entries)


def uv_package(uv: Path) -> bytes:
    return zip_package([("visionyard_uv/__init__.py", b""), ("visionyard_uv/uv", uv)])


# ---------------------------------------------------------------- the plan and fetch


class NoPlan(LookupError):
    """The job runs where the daemon's files are: a node has nothing to fetch or send for it."""


class FetchRefused(ValueError):
    """A fetch asks for something the daemon does not give this job's node."""


def plan_path(paths: Paths, job_id: str) -> Path:
    return paths.home / NODE_PLANS / f"{job_id}.json"


def write_plan(paths: Paths, job_id: str, plan: dict) -> None:
    target = plan_path(paths, job_id)
    target.parent.mkdir(mode=0o700, exist_ok=True)
    partial = target.with_name(f".{target.name}.tmp")
    partial.write_text(json.dumps(plan, indent=1))
    os.replace(partial, target)


def read_plan(paths: Paths, job_id: str) -> dict:
    try:
        return json.loads(plan_path(paths, job_id).read_text())
    except FileNotFoundError:
        raise NoPlan(f"job {job_id} does not run on a node of its own: it has nothing to fetch or send back") from None


def remove_plans(paths: Paths, keep: set[str]) -> int:
    """Remove the plans of jobs not in `keep` (the active ones); how many were removed."""
    removed = 0
    for plan in (paths.home / NODE_PLANS).glob("*.json"):
        if plan.stem not in keep:
            plan.unlink(missing_ok=True)
            removed += 1
    return removed


def fetch(paths: Paths, job_id: str, what: str) -> Iterator[bytes]:
    """The chunks of the plan, the job dir's inputs, the checkout or the home's files the job
    starts from, for the job's node; each source checked against the home at this call."""
    if what not in FETCHABLE:
        raise FetchRefused(f"nothing to fetch as {what[:40]!r}: ask for {', '.join(FETCHABLE)}")
    plan = read_plan(paths, job_id)
    if what == "plan":
        yield json.dumps(plan).encode()
    elif what == "inputs":
        yield from _tar(paths.job_dir(job_id), PathMap(plan["paths"]), skip_top=NOT_INPUTS)
    elif what == "checkout":
        yield from _tar(_checkout_source(paths, plan), None, skip_top=frozenset({".git"}))
    else:  # e.g. an earlier job's checkpoint to resume
        yield from _tar(paths.home, None, only=_home_files(paths, plan))


def _checkout_source(paths: Paths, plan: dict) -> Path:
    source = plan.get("checkout_source")
    checkouts = (paths.repos / "checkouts").resolve()
    if not source:
        raise FetchRefused("this job has no repo checkout")
    path = Path(source).resolve()
    if path.parent != checkouts or not path.is_dir():
        raise FetchRefused("the job's checkout is not one of the home's repo checkouts")
    return path


def _home_files(paths: Paths, plan: dict) -> list[str]:
    """The plan's files of the home, each still under the home's job dirs (links resolved)."""
    names = plan.get("home_files") or []
    if not names:
        raise FetchRefused("this job starts from no file of the daemon's home")
    jobs = paths.jobs.resolve()
    for name in names:
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or \
                not (paths.home / relative).resolve().is_relative_to(jobs):
            raise FetchRefused(f"{name!r} is not a file of the home's job dirs")
    return names


class _Sink:
    """What tarfile writes, handed on in chunks of `CHUNK` bytes."""

    def __init__(self):
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def full_chunks(self) -> Iterator[bytes]:
        while len(self.buffer) >= CHUNK:
            yield bytes(self.buffer[:CHUNK])
            del self.buffer[:CHUNK]

    def rest(self) -> Iterator[bytes]:
        yield from self.full_chunks()
        if self.buffer:
            yield bytes(self.buffer)


def _entries(folder: Path, skip_top: frozenset[str], only: list[str] | None) -> Iterator[tuple[Path, str]]:
    """(path, name in the tar) of what goes: `folder`'s tree, or only the named files and folders
    of it (their parents are made on extraction). A linked folder goes as the link."""
    roots = [(folder / rel, rel) for rel in only] if only is not None else [(folder, "")]
    for top, top_name in roots:
        if top_name:
            yield top, top_name
            if top.is_symlink() or not top.is_dir():
                continue
        for root, dirs, files in os.walk(top):
            rel_root = Path(top_name) / Path(root).relative_to(top)
            if Path(root) == folder:
                dirs[:] = [d for d in dirs if d not in skip_top]
                files = [f for f in files if f not in skip_top]
            dirs.sort()
            for name in [*dirs, *sorted(files)]:
                yield Path(root) / name, (rel_root / name).as_posix()
            dirs[:] = [d for d in dirs if not (Path(root) / d).is_symlink()]


def _tar(folder: Path, paths: PathMap | None, skip_top: frozenset[str] = frozenset(),
         only: list[str] | None = None) -> Iterator[bytes]:
    sink = _Sink()
    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname in _entries(folder, skip_top, only):
            info = tar.gettarinfo(str(path), arcname=arcname)
            if info.issym() and paths is not None:
                info.linkname = paths.text(info.linkname)
            if info.isreg():
                with open(path, "rb") as f:
                    if paths is not None and info.size <= REWRITE_MAX_BYTES:
                        data = paths.data(f.read())
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    else:
                        tar.addfile(info, f)
            elif info.isdir() or info.issym():
                tar.addfile(info)
            yield from sink.full_chunks()
    yield from sink.rest()
