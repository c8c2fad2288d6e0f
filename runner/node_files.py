"""What a job on a node that shares nothing with the daemon takes with it and sends back.

The daemon prepares a job as for a local run (the checkout, the translated configs, the job dir),
then writes the node's plan (`node-plan.json`): the command with every path of the daemon's home
mapped to the node home, the env spec to build there, the checkout to fetch. The node agent
(`runner/node_agent.py`) fetches the plan, the job dir (a tar; text files and links naming the
daemon's home are mapped the same way) and the checkout (a tar without ``.git``) and the
files of the daemon's home the job names (``weights``/``resume``: an earlier job's checkpoint)
with ``Reporter.Fetch``, and sends the job's results back with ``Reporter.Upload``; both are
authenticated by the job's token and reach only the job's own dir.
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

PLAN = "node-plan.json"
PLAN_FORMAT = 1
CHUNK = 1 << 20
REWRITE_MAX_BYTES = 4 << 20  # larger files are data, never a config naming a path
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed: a package's name is the hash of its bytes
#: Files of the daemon's job dir the node never needs (its own records, the log Ray streams).
NOT_INPUTS = frozenset({"job.log", "launch.json", PLAN, "reports.journal", "exit.json", "supervisor.json"})


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

    here = Path(__file__).resolve().parent
    entries: list[tuple[str, Path | bytes]] = [
        ("visionyard_node/__init__.py", b""),
        ("visionyard_node/__main__.py", here / "node_agent.py"),
        ("visionyard_node/supervisor.py", here / "supervisor.py"),
    ]
    entries += tree(Path(envs.__file__).parent, "visionyard_node/lib/envs")
    entries += tree(Path(filelock.__file__).parent, "visionyard_node/lib/filelock")
    entries += tree(Path(adapters.__file__).parent, "visionyard_node/child/adapters")
    entries += tree(Path(protos.__file__).parent, "visionyard_node/child/protos")
    entries += tree(SHIM_DIR, "visionyard_node/shims")
    return zip_package(entries)


def uv_package(uv: Path) -> bytes:
    return zip_package([("visionyard_uv/__init__.py", b""), ("visionyard_uv/uv", uv)])


# ---------------------------------------------------------------- fetch


def fetch(job_dir: Path, what: str) -> Iterator[bytes]:
    """The chunks of the plan, the job dir's inputs or the checkout, for the job's node."""
    plan = json.loads((job_dir / PLAN).read_text())
    if what == "plan":
        yield json.dumps(plan).encode()
    elif what == "inputs":
        yield from _tar(job_dir, PathMap(plan["paths"]), skip_top=NOT_INPUTS)
    elif what == "checkout" and plan.get("checkout_source"):
        yield from _tar(Path(plan["checkout_source"]), None, skip_top=frozenset({".git"}))
    elif what == "home-files" and plan.get("home_files"):  # e.g. an earlier job's checkpoint to resume
        yield from _tar(Path(plan["home"]), None, only=plan["home_files"])
    else:
        raise ValueError(f"nothing to fetch as {what!r}: ask for plan, inputs, checkout or home-files")


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


# ---------------------------------------------------------------- upload


class UploadRefused(ValueError):
    """A file of an upload names no place inside the job dir."""


def _target(job_dir: Path, rel: str) -> Path:
    path = PurePosixPath(rel)
    if not rel or path.is_absolute() or ".." in path.parts or path.parts[0] in ("env",):
        raise UploadRefused(f"'{rel}' is not a path inside the job dir")
    folder = job_dir
    for part in path.parts[:-1]:  # no link followed: a folder the job made a link can't lead out
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise UploadRefused(f"'{rel}' leads through {folder.name}, which is not a folder of the job dir")
        folder.mkdir(exist_ok=True)
    return folder / path.parts[-1]


def receive(job_dir: Path, chunks) -> tuple[int, int]:
    """Write an upload's files into the job dir, each complete or not at all; (files, bytes)."""
    files = size = 0
    current, target, out = None, None, None
    try:
        for chunk in chunks:
            if chunk.path:
                if out is not None:
                    raise UploadRefused(f"'{current}' ended without its last chunk")
                current, target = chunk.path, _target(job_dir, chunk.path)
                partial = target.with_name(f".{target.name}.upload")
                partial.unlink(missing_ok=True)
                out = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
            if out is None:
                raise UploadRefused("a chunk came before any file's name")
            out.write(chunk.data)
            size += len(chunk.data)
            if chunk.last:
                out.close()
                out = None
                os.replace(partial, target)
                files += 1
    finally:
        if out is not None:
            out.close()
            partial.unlink(missing_ok=True)
    return files, size
