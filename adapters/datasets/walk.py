"""Walking a dataset's folders: bounded, loop-free and stoppable. Every reader that lists a
folder's files recursively does it here.

The link rule, the same for every format:

- a link to a folder of the dataset itself (a sibling class, an ancestor: a loop) or to a folder
  that holds the dataset is not followed: the images there count once, where they really are. A
  warning names the link;
- a link to a folder outside the dataset (a shared image store linked on purpose) is followed.
  Each real folder, known by ``(st_dev, st_ino)``, is read at most once per walk, links into
  ``/proc``, ``/sys`` and ``/dev`` never, and at most ``MAX_LINKED_ENTRIES`` files and folders are
  read through links per dataset (past that, an error names the link).

The folders a walk reaches without links are read first, so they keep their own place even when
a link to them comes first in name order.

A walk, and the per-file loops of the readers (``check_cancelled``), stop with ``CheckCancelled``
once the current ``Deadline`` has passed or been cancelled: a check that timed out ends its
thread and lets go of what it read.

Both are context rather than arguments, so a reader lists files with ``walk(folder)`` alone: the
format registry runs each reader inside its dataset's ``dataset_scope``, and the daemon runs a
submit check inside a ``deadline_scope``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from adapters.datasets.problems import Problems

log = logging.getLogger("visionyard.datasets")

#: Files and folders a dataset's links may lead to, all links together.
MAX_LINKED_ENTRIES = 2_000_000
#: Folders no link is followed into.
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")
#: A folder's entries read between two deadline checks.
CHECK_EVERY = 4096


class CheckCancelled(Exception):
    """The dataset check ran past its deadline or was cancelled; what it read is dropped."""


class Deadline:
    """A point in time (``seconds`` from now; None: none) and a cancel switch, read by the walk."""

    def __init__(self, seconds: float | None = None):
        self.at = None if seconds is None else time.monotonic() + seconds
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def expired(self) -> bool:
        return self.cancelled or (self.at is not None and time.monotonic() >= self.at)

    def check(self) -> None:
        if self.expired:
            raise CheckCancelled("the dataset check was stopped: it ran past its time limit")


_deadline: ContextVar[Deadline | None] = ContextVar("dataset_deadline", default=None)


@contextmanager
def deadline_scope(deadline: Deadline) -> Iterator[Deadline]:
    """Walks and readers in this block (this thread) stop once ``deadline`` expires."""
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def check_cancelled() -> None:
    """Raise ``CheckCancelled`` when the current deadline expired; cheap enough to call per file."""
    deadline = _deadline.get()
    if deadline is not None:
        deadline.check()


@dataclass
class _Scope:
    """One dataset being read: its folder, where warnings go, what its links have cost so far."""

    root: str
    real: str
    problems: Problems | None = None
    linked_entries: int = 0
    over_limit: bool = False
    reported: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, root, problems: Problems | None = None) -> _Scope:
        root = os.path.abspath(os.fspath(root))
        return cls(root, os.path.realpath(root), problems)

    def warn(self, link: str, message: str) -> None:
        if link in self.reported:  # a reader may list the same folder twice
            return
        self.reported.add(link)
        if self.problems is not None:
            self.problems.warning(link, message, kind="skipped-link")
        else:
            log.warning("%s: %s", link, message)

    def count_linked(self, link: str, entries: int) -> bool:
        """Add ``entries`` read through ``link``; False (after reporting it once) past the limit."""
        self.linked_entries += entries
        if self.linked_entries <= MAX_LINKED_ENTRIES:
            return True
        if not self.over_limit:
            self.over_limit = True
            message = (f"links lead to over {MAX_LINKED_ENTRIES:,} files and folders outside the dataset; "
                       "link smaller folders or copy the images into the dataset")
            if self.problems is not None:
                self.problems.error(link, message, kind="link-limit")
            else:
                log.warning("%s: %s", link, message)
        return False


_scope: ContextVar[_Scope | None] = ContextVar("dataset_scope", default=None)


@contextmanager
def dataset_scope(root, problems: Problems | None = None) -> Iterator[None]:
    """Walks in this block belong to the dataset at ``root``; skipped links are warnings in ``problems``."""
    token = _scope.set(_Scope.of(root, problems))
    try:
        yield
    finally:
        _scope.reset(token)


def within(path: str, folder: str) -> bool:
    """Whether the (real, absolute) ``path`` is ``folder`` or lies below it."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def walk(top, root=None) -> Iterator[tuple[str, list[str]]]:
    """``(folder, its visible file names)`` for ``top`` and each visible folder below it.

    Folder paths are as reached (through a followed link, not resolved); hidden (dot) files and
    folders below ``top`` are skipped, and so are folders that can't be read (as ``os.walk``
    does). A file name may be a link to a file, or a broken link (its read then fails, naming
    it). ``root`` is the dataset's folder (default: the current ``dataset_scope``'s, else ``top``).
    """
    scope = _scope.get()
    if root is not None or scope is None:
        scope = _Scope.of(root if root is not None else top, scope.problems if scope is not None else None)
    top = os.path.abspath(os.fspath(top))
    real, via = os.path.realpath(top), ""
    plain = os.path.normpath(os.path.join(scope.real, os.path.relpath(top, scope.root)))
    if within(top, scope.root) and real != plain:  # ``top`` is reached through a link (a class folder that is one)
        if reason := _refusal(top, real, os.path.realpath(os.path.dirname(top)), scope):
            scope.warn(top, reason)
            return
        via = top
    deadline = _deadline.get()
    visited: set[tuple[int, int]] = set()
    folders = [(top, real, via)]  # (path as reached, real path, the link it was reached through)
    links: deque[tuple[str, str, str]] = deque()  # (link, real path of its folder, the link before it)
    while folders or links:
        if not folders:  # the folders reached without (more) links come first: they keep their place
            link, holder, via = links.popleft()
            target = os.path.realpath(link)
            reason = _refusal(link, target, holder, scope)
            if reason is None and _key(target) in visited:
                reason = f"links to {target}, a folder this walk has read already; not followed (its images count once)"
            if reason:
                scope.warn(link, reason)
            elif not scope.over_limit:
                folders.append((link, target, via or link))
            continue
        path, real, via = folders.pop()
        if deadline is not None:
            deadline.check()
        key = _key(path)
        if key is None or key in visited:  # unreadable, or one folder mounted twice
            continue
        visited.add(key)
        listed = _list(path, deadline)
        if listed is None:
            continue
        files, subdirs, linked, entries = listed
        if via and not scope.count_linked(via, entries):
            links.clear()
            folders = [f for f in folders if not f[2]]
            continue
        yield path, files
        links.extend((os.path.join(path, name), real, via) for name in linked)
        folders.extend((os.path.join(path, name), os.path.join(real, name), via) for name in reversed(subdirs))


def _list(path: str, deadline: Deadline | None) -> tuple[list[str], list[str], list[str], int] | None:
    """(visible files, visible folders, visible links to folders, all entries) of ``path``; None when
    it can't be read."""
    files, subdirs, linked, entries = [], [], [], 0
    try:
        with os.scandir(path) as it:
            for entry in it:
                entries += 1
                if deadline is not None and entries % CHECK_EVERY == 0:
                    deadline.check()
                if entry.name.startswith("."):
                    continue
                if _is_folder(entry, follow=False):
                    subdirs.append(entry.name)
                elif entry.is_symlink() and _is_folder(entry, follow=True):
                    linked.append(entry.name)
                else:
                    files.append(entry.name)
    except OSError:
        return None
    subdirs.sort()
    linked.sort()
    return files, subdirs, linked, entries


def walk_files(top, keep, root=None) -> list[Path]:
    """The files under ``top`` whose name ``keep(name)`` accepts, sorted (see ``walk``)."""
    return [Path(path) for path in walk_paths(top, keep, root)]


def walk_paths(top, keep, root=None) -> list[str]:
    """``walk_files`` as strings, in the same order (``Path`` order: part by part), without building a ``Path``
    per file: a dataset of 100,000 images is listed in a fraction of the time."""
    found = [os.path.join(folder, name) for folder, names in walk(top, root) for name in names if keep(name)]
    found.sort(key=_parts)
    return found


def _parts(path: str) -> list[str]:
    """What ``PurePosixPath`` compares: the path's parts, empty and "." parts left out."""
    return [part for part in path.split(os.sep) if part and part != "."]


def _refusal(link: str, target: str, holder: str, scope: _Scope) -> str | None:
    """Why the folder link ``link`` (real target ``target``, in the real folder ``holder``) is not
    followed, or None when it is."""
    shown = os.readlink(link) if os.path.islink(link) else target
    if within(holder, target):
        return f"links to {shown!r}, a folder that holds the link itself (a loop); not followed. Remove the link"
    if within(target, scope.real):
        inside = os.path.relpath(target, scope.real)
        return (f"links to {shown!r}, the dataset's own folder {inside!r}; not followed (its images count once, "
                "where they are). Remove the link")
    if within(scope.real, target):
        return f"links to {shown!r}, a folder that holds the dataset (a loop); not followed. Remove the link"
    if any(within(target, system) for system in SYSTEM_FOLDERS):
        return f"links to {shown!r}, a system folder; not followed. Remove the link"
    return None


def _key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _is_folder(entry: os.DirEntry, follow: bool) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False
