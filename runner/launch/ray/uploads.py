"""What a Ray node sends back into its job's dir (``Reporter.Upload``): only an allow-list of the
job dir (files under ``checkpoints/`` and ``output/``, the report journal, the exit record, which
is validated and rewritten, never taken as sent), within size and count limits, each file whole
or not at all, nothing left behind when refused."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from runner.launch.ray.node_files import EXIT_RECORD, RESULT_FOLDERS, RESULT_RECORDS
from runner.settings import LOW_DISK_BYTES

MAX_PATH_CHARS, MAX_NAME_BYTES, MAX_DEPTH = 1024, 255, 32
EXIT_RECORD_MAX_BYTES = 4096



class UploadRefused(ValueError):
    """A file of an upload names no place the node may write, or is not what it claims to be."""


class UploadTooLarge(UploadRefused):
    """An upload goes past a limit of the daemon's (a file's or a job's size, a job's file count,
    the disk's free space)."""


@dataclass(frozen=True)
class UploadLimits:
    """How much one node may send back into its job dir (``serve --upload-max-*``)."""

    file_bytes: int = 16 << 30
    job_bytes: int = 64 << 30
    job_files: int = 10_000
    min_free_bytes: int = LOW_DISK_BYTES  # what the disk keeps free for the store and the logs


def _check_name(rel: str) -> list[str]:
    """The parts of an upload's path, or why the node may not write there."""
    shown = repr(rel[:80] + ("…" if len(rel) > 80 else ""))
    if not rel:
        raise UploadRefused("a file of the upload has no name")
    if len(rel) > MAX_PATH_CHARS:
        raise UploadRefused(f"{shown} is longer than {MAX_PATH_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        raise UploadRefused(f"{shown} holds a control character")
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise UploadRefused(f"{shown} is not a plain relative path (no '/' at either end, no '.', '..' or '//')")
    if len(parts) > MAX_DEPTH or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise UploadRefused(f"{shown} is nested deeper than {MAX_DEPTH} folders or has a name over "
                            f"{MAX_NAME_BYTES} bytes")
    if parts[-1].startswith(".") and parts[-1].endswith(".upload"):
        raise UploadRefused(f"{shown} is named like a file still being received")
    if not (rel in RESULT_RECORDS or (len(parts) > 1 and parts[0] in RESULT_FOLDERS)):
        raise UploadRefused(f"{shown} is not a result a node sends back: only files under "
                            f"{'/, '.join(RESULT_FOLDERS)}/ and {', '.join(RESULT_RECORDS)}")
    return parts


def _target(job_dir: Path, rel: str, made: list[Path]) -> Path:
    """Where an uploaded file goes; the folders it makes are added to `made`."""
    parts = _check_name(rel)
    folder = job_dir
    for part in parts[:-1]:  # no link followed: a folder that is a link can't lead out
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise UploadRefused(f"'{rel}' leads through {folder.name}, which is not a folder of the job dir")
        if not folder.exists():
            folder.mkdir()
            made.append(folder)
    target = folder / parts[-1]
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise UploadRefused(f"'{rel}' is a folder or a link in the job dir, not a file")
    return target


def _results_held(job_dir: Path) -> dict[str, int]:
    """What the job dir holds of a node's results now: name → size."""
    held = {}
    for name in RESULT_RECORDS:
        if (job_dir / name).is_file():
            held[name] = (job_dir / name).stat().st_size
    for folder in RESULT_FOLDERS:
        if (job_dir / folder).is_dir() and not (job_dir / folder).is_symlink():
            for root, _dirs, files in os.walk(job_dir / folder):
                for name in files:
                    path = Path(root) / name
                    try:
                        held[path.relative_to(job_dir).as_posix()] = path.lstat().st_size
                    except OSError:
                        pass
    return held


def exit_record(data: bytes) -> bytes:
    """A node's exit record, checked and written anew: only what the daemon reads of it."""
    try:
        record = json.loads(data) if len(data) <= EXIT_RECORD_MAX_BYTES else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise UploadRefused(f"{EXIT_RECORD} is not a JSON object of at most {EXIT_RECORD_MAX_BYTES} bytes")
    code, signum, when = record.get("code"), record.get("signal"), record.get("time")
    cancelled, lost = record.get("cancelled", False), record.get("lost", False)

    def whole(value, low, high) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    if not ((whole(code, 0, 255) and signum is None) or (code is None and whole(signum, 1, 64))):
        raise UploadRefused(f"{EXIT_RECORD} must hold an exit code 0-255 or a signal 1-64, not code={code!r} "
                            f"signal={signum!r}"[:300])
    if not isinstance(cancelled, bool) or not isinstance(lost, bool):
        raise UploadRefused(f"{EXIT_RECORD}: 'cancelled' and 'lost' must be true or false")
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not 0 < when < 1e11:
        when = time.time()
    return json.dumps({"code": code, "signal": signum, "cancelled": cancelled, "lost": lost, "time": when}).encode()


def receive(job_dir: Path, chunks, limits: UploadLimits = UploadLimits()) -> tuple[int, int]:
    """Write an upload's files into the job dir, each complete or not at all; (files, bytes).
    A refused file leaves nothing behind: neither its partial file nor the folders made for it."""
    held = _results_held(job_dir)
    files = size = 0
    current, target, partial, out, written, made = None, None, None, None, 0, []
    record = bytearray()  # the exit record, checked before it is written

    def others() -> int:
        return sum(v for k, v in held.items() if k != current)

    try:
        for chunk in chunks:
            if chunk.path:
                if out is not None:
                    raise UploadRefused(f"'{current}' ended without its last chunk")
                current, written, made = chunk.path, 0, []
                target = _target(job_dir, chunk.path, made)
                if current not in held and len(held) >= limits.job_files:
                    raise UploadTooLarge(f"the job dir already holds {len(held)} files sent back; the limit is "
                                         f"{limits.job_files} (serve --upload-max-files)")
                partial = target.with_name(f".{target.name}.upload")
                partial.unlink(missing_ok=True)
                out = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb")
                record.clear()
            if out is None:
                raise UploadRefused("a chunk came before any file's name")
            written += len(chunk.data)
            _within(limits, current, written, others(), job_dir, len(chunk.data))
            if current == EXIT_RECORD:
                if written > EXIT_RECORD_MAX_BYTES:
                    raise UploadRefused(f"{EXIT_RECORD} is larger than {EXIT_RECORD_MAX_BYTES} bytes")
                record += chunk.data
            else:
                out.write(chunk.data)
            size += len(chunk.data)
            if chunk.last:
                if current == EXIT_RECORD:
                    out.write(exit_record(bytes(record)))
                out.close()
                os.replace(partial, target)
                out, made = None, []
                held[current] = written
                files += 1
        if out is not None:
            raise UploadRefused(f"the upload ended before the last chunk of '{current}'")
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise (UploadTooLarge if full else UploadRefused)(
            f"'{current}' could not be written into the job dir: {exc.strerror or exc}") from None
    finally:
        if out is not None:  # a file that did not arrive whole
            out.close()
            partial.unlink(missing_ok=True)
        for folder in reversed(made):  # and the folders made for it
            try:
                folder.rmdir()
            except OSError:
                pass
    return files, size


def _within(limits: UploadLimits, name: str, written: int, others: int, job_dir: Path, coming: int) -> None:
    if written > limits.file_bytes:
        raise UploadTooLarge(f"'{name}' is larger than {limits.file_bytes / 2**20:.0f} MiB, the limit for one file "
                             "(serve --upload-max-file-mb)")
    if others + written > limits.job_bytes:
        raise UploadTooLarge(f"the files sent back into the job dir pass {limits.job_bytes / 2**20:.0f} MiB, the "
                             "limit for one job (serve --upload-max-job-mb)")
    if coming and shutil.disk_usage(job_dir).free - coming < limits.min_free_bytes:
        raise UploadTooLarge(f"the disk holding {job_dir} is full; '{name}' was not kept")
