"""Files a training child writes whole or not at all."""

from __future__ import annotations

import os
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
