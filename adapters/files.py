"""Files a training child writes whole or not at all; a repo checkout as a job's own working tree."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_PREFIX, PARTIAL_SUFFIX = ".", ".tmp"  # `.best.pt.tmp`: what the daemon sweeps after a job


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path next to `path` to write into; renamed onto `path` when the block succeeds, and
    removed when it fails (a full disk: the partial file must not keep the disk full)."""
    partial = path.with_name(f"{PARTIAL_PREFIX}{path.name}{PARTIAL_SUFFIX}")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
        raise


def remove_partials(folder: Path) -> list[Path]:
    """Remove what writes interrupted by a kill left in `folder` (recursively); what was removed."""
    removed = []
    for partial in folder.rglob(f"{PARTIAL_PREFIX}*{PARTIAL_SUFFIX}") if folder.is_dir() else ():
        try:
            partial.unlink()
            removed.append(partial)
        except OSError:
            pass
    return removed


def link_tree(source: Path, dest: Path, skip: frozenset[str] = frozenset({".git"})) -> None:
    """``source``'s files at the same places under ``dest`` (made), as hard links: a job's own working tree
    of a shared checkout in a few ms per thousand files. What the job writes there is new files of its own;
    ``source``'s files are made read-only first, so a job that writes into one of them in place fails with
    "Permission denied" instead of changing the checkout every job shares (replacing the file works: that
    only unlinks the job's link). Symbolic links stay links; a file that can't be linked (another file
    system) is copied. The top-level names in ``skip`` are left out, and so is ``dest`` when it lies inside
    ``source``. (A Ray node's agent does the same with its own few lines: runner/payload/node_agent.py.)"""
    source, dest = Path(source), Path(dest)
    inside = os.path.abspath(dest)

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = os.path.abspath(folder) == os.path.abspath(source)
        return {n for n in names if (top and n in skip) or os.path.abspath(os.path.join(folder, n)) == inside}

    def place(origin: str, target: str) -> None:
        mode = os.stat(origin).st_mode
        if mode & 0o222:
            os.chmod(origin, stat.S_IMODE(mode) & ~0o222)
        try:
            os.link(origin, target)
        except OSError:
            shutil.copy2(origin, target)

    shutil.copytree(source, dest, symlinks=True, ignore=ignore, copy_function=place, dirs_exist_ok=True)


def made_by_run(path: Path) -> bool:
    """A file of a :func:`link_tree` working tree the job wrote itself (not a link to the shared checkout)."""
    try:
        return Path(path).stat().st_nlink == 1
    except OSError:
        return False
