"""Clones of custom repos and clean checkouts of their pinned commits (gitpython).

Layout under ``root`` (``<home>/repos``)::

    clones/<name>-<hash of url>/       a bare clone per url; fetched only when a pinned commit is missing
    checkouts/<name>-<sha12>/          the files of one commit, no .git; jobs run here but never write here
    checkouts/.tmp-<...>/              a checkout being made; renamed into place when complete
    .locks/<name>-<hash of url>.lock   held while a clone is made, fetched or checked out

A checkout is a plain tree (``read-tree`` into a private index + ``checkout-index``) rather than a
work tree with ``.git``: a repo that shells out to ``git fetch``/``git status`` at start (YOLOv7's
helpers do) finds no repository to touch, and the tree stays identical for every job. Every blob
is checked before anything is written: a partial mirror fails with the missing paths named,
instead of giving a tree that breaks later.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from fnmatch import fnmatch
from pathlib import Path
from typing import TextIO

import filelock
import git

from custom_repos.spec import RepoSpec

#: Marker inside each checkout: which url/commit it holds (read by translate.env_spec).
CHECKOUT_MARKER = ".visionyard-checkout.json"
#: Git never prompts for credentials, and a stalled transfer (<1 KB/s for 30 s) is abandoned.
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "/bin/true",
    "SSH_ASKPASS": "/bin/true",
    "GCM_INTERACTIVE": "never",
    "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
    "GIT_HTTP_LOW_SPEED_TIME": "30",
}
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")


class RepoError(RuntimeError):
    """Getting a repo's files failed; the message says which step, for which url and commit."""


class RepoCache:
    """Clones and checkouts under one root, safe to share between threads and processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()
        self.clones = self.root / "clones"
        self.checkouts = self.root / "checkouts"
        self.locks = self.root / ".locks"
        for folder in (self.clones, self.checkouts, self.locks):
            folder.mkdir(parents=True, exist_ok=True)

    def checkout(self, spec: RepoSpec, log: TextIO | None = None) -> Path:
        """The folder holding ``spec.commit``'s files, cloning/fetching/checking out only as needed."""
        url = normalize_url(spec.url)
        clone_name = f"{spec.name}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"
        clone = self.clones / clone_name
        if len(spec.commit) == 40:  # fast path: no lock, no git process
            ready = self.checkouts / _checkout_name(spec, spec.commit)
            if ready.is_dir():
                _log(log, f"[visionyard] using checkout {ready}\n")
                return _used(ready)
        lock = filelock.FileLock(str(self.locks / f"{clone_name}.lock"))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            _log(log, f"[visionyard] waiting for another job preparing {spec.name}\n")
            lock.acquire()
        try:
            if not clone.is_dir():
                self._clone(url, clone, log)
            with git.Repo(clone) as repo:  # closed: no git processes left behind in the daemon
                sha = _resolve(repo, spec.commit, url)
                if sha is None:
                    _log(log, f"[visionyard] commit {spec.commit} is not in the cached clone; fetching {url}\n")
                    self._fetch(repo, url, spec.commit)
                    sha = _resolve(repo, spec.commit, url)
                if sha is None:
                    raise RepoError(f"Commit {spec.commit} not found in {url} (after a fetch). "
                                    "Check the spec's `commit:`; it must be on a branch or tag of the repo.")
                final = self.checkouts / _checkout_name(spec, sha)
                if final.is_dir():
                    _log(log, f"[visionyard] using checkout {final}\n")
                    return _used(final)
                self._materialise(repo, spec, url, sha, final, log)
                return final
        finally:
            lock.release()

    # -- steps (each called with the clone's lock held) --------------------------------------

    def _clone(self, url: str, clone: Path, log: TextIO | None) -> None:
        _log(log, f"[visionyard] cloning {url}\n")
        _remove_stale(self.clones, clone.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{clone.name}-", dir=self.clones))
        try:
            with git.Repo.clone_from(url, tmp / "repo", bare=True, env=GIT_ENV) as repo, \
                    repo.config_writer() as config:  # a bare clone has no fetch refspec of its own
                config.set_value('remote "origin"', "fetch", _FETCH_REFSPECS[0])
            os.rename(tmp / "repo", clone)
        except git.GitCommandError as exc:
            raise RepoError(f"Cloning {url} failed: {_git_message(exc)}{_network_hint(exc)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        _log(log, f"[visionyard] cloned {url} into {clone}\n")

    def _fetch(self, repo: git.Repo, url: str, commit: str) -> None:
        try:
            repo.git.fetch("origin", *_FETCH_REFSPECS, env=GIT_ENV)
        except git.GitCommandError as exc:
            raise RepoError(f"Fetching {url} failed: {_git_message(exc)}{_network_hint(exc)}") from None
        if len(commit) == 40 and _resolve(repo, commit, url) is None:
            # A commit on no branch or tag (e.g. a pull request's): hosts like GitHub serve it by sha.
            try:
                repo.git.fetch("origin", commit, env=GIT_ENV)
            except git.GitCommandError:
                pass  # not served by sha either; the caller reports it as not found

    def _materialise(self, repo: git.Repo, spec: RepoSpec, url: str, sha: str, final: Path,
                     log: TextIO | None) -> None:
        """Write ``sha``'s files into a temp dir, check them, and rename it to ``final``."""
        _log(log, f"[visionyard] checking out {spec.name} @ {sha[:12]} into {final}\n")
        _remove_stale(self.checkouts, final.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=self.checkouts))
        try:
            entries = _tree_entries(repo, sha)
            skipped = [path for _, _, path in entries if _excluded(path, spec.exclude)]
            wanted = [entry for entry in entries if not _excluded(entry[2], spec.exclude)]
            missing = _missing_blobs(repo, wanted)
            if missing:
                shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                raise RepoError(
                    f"Checkout of {url} @ {sha[:12]} is incomplete: the clone lacks the content of {shown}. "
                    "Clone from a complete copy of the repo, or list such paths under the spec's `exclude:`.")
            work = tmp / "tree"
            work.mkdir()
            _checkout_files(repo, sha, work, [path for mode, _, path in wanted if mode != "160000"], tmp)
            (work / CHECKOUT_MARKER).write_text(json.dumps(
                {"name": spec.name, "url": url, "commit": sha, "excluded": skipped}, indent=1))
            os.rename(work, final)
        except git.GitCommandError as exc:
            raise RepoError(f"Checkout of {url} @ {sha[:12]} failed: {_git_message(exc)}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if skipped:
            _log(log, f"[visionyard] left out {len(skipped)} excluded path(s): {', '.join(skipped[:5])}\n")


def checkout_commit(checkout: Path) -> str | None:
    """The full sha a checkout made by RepoCache holds, or None for another folder."""
    try:
        return json.loads((Path(checkout) / CHECKOUT_MARKER).read_text())["commit"]
    except (OSError, ValueError, KeyError):
        return None


def normalize_url(url: str) -> str:
    """https/file URLs as written; a local path made absolute (``~`` expanded)."""
    if url.startswith(("https://", "http://", "file://")):
        return url
    return str(Path(url).expanduser().absolute())


def _excluded(path: str, patterns: list[str]) -> bool:
    """True when ``path`` matches a glob of ``exclude:`` or lies in a folder it names."""
    return any(fnmatch(path, g) or path.startswith(g.rstrip("/") + "/") for g in patterns)


def _used(checkout: Path) -> Path:
    """Stamp a checkout as used now: garbage collection removes the ones unused for long."""
    try:
        os.utime(checkout)
    except OSError:
        pass
    return checkout


def _checkout_name(spec: RepoSpec, sha: str) -> str:
    if not spec.exclude:
        return f"{spec.name}-{sha[:12]}"
    digest = hashlib.sha256("\n".join(sorted(spec.exclude)).encode()).hexdigest()[:6]
    return f"{spec.name}-{sha[:12]}-x{digest}"


def _resolve(repo: git.Repo, commit: str, url: str) -> str | None:
    """The full sha for ``commit`` (a sha or unique prefix), or None when the clone lacks it."""
    try:
        return repo.git.rev_parse("--verify", f"{commit}^{{commit}}").strip()
    except git.GitCommandError as exc:
        if "ambiguous" in _git_message(exc):
            raise RepoError(f"Commit prefix {commit} is ambiguous in {url}; use more hex digits") from None
        return None


def _tree_entries(repo: git.Repo, sha: str) -> list[tuple[str, str, str]]:
    """(mode, object id, path) of every file in the commit's tree."""
    out = repo.git.ls_tree("-r", "-z", "--full-tree", sha, strip_newline_in_stdout=False)
    entries = []
    for record in out.split("\0"):
        if record:
            meta, path = record.split("\t", 1)
            mode, _kind, obj = meta.split()
            entries.append((mode, obj, path))
    return entries


def _missing_blobs(repo: git.Repo, entries: list[tuple[str, str, str]]) -> list[str]:
    blobs = [(obj, path) for mode, obj, path in entries if mode != "160000"]
    if not blobs:
        return []
    with tempfile.TemporaryFile() as stdin:
        stdin.write("".join(f"{obj}\n" for obj, _ in blobs).encode())
        stdin.seek(0)
        out = repo.git.execute(["git", "cat-file", "--batch-check"], istream=stdin)
    missing_ids = {line.split()[0] for line in out.splitlines() if line.endswith(" missing")}
    return [path for obj, path in blobs if obj in missing_ids]


def _checkout_files(repo: git.Repo, sha: str, work: Path, paths: list[str], scratch: Path) -> None:
    """Write ``paths`` of ``sha`` into ``work`` through a private index (the clone is untouched)."""
    env = {"GIT_INDEX_FILE": str(scratch / "index")}
    repo.git.execute(["git", "read-tree", sha], env=env)
    with tempfile.TemporaryFile() as stdin:
        stdin.write("".join(f"{p}\0" for p in paths).encode())
        stdin.seek(0)
        repo.git.execute(["git", "-c", "core.autocrlf=false", f"--work-tree={work}", "checkout-index", "-f", "-z",
                          "--stdin"],
                         istream=stdin, env=env)


def _remove_stale(parent: Path, name: str) -> None:
    """Temp dirs of an earlier attempt at ``name`` that crashed (we hold ``name``'s lock)."""
    for stale in parent.glob(f".tmp-{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _git_message(exc: git.GitCommandError) -> str:
    text = exc.stderr or exc.stdout or str(exc)
    text = text.strip().removeprefix("stderr:").strip().strip("'").strip()
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.strip().startswith(("Cloning into", "remote: Enumerating"))]
    return " ".join(lines) or str(exc)


def _network_hint(exc: git.GitCommandError) -> str:
    text = _git_message(exc)
    if any(sign in text for sign in ("Could not resolve host", "Failed to connect", "timed out", "too slow")):
        return (" (no network on this machine? A spec's url may also be the path or file:// URL of a local "
                "clone)")
    return ""


def _log(log: TextIO | None, text: str) -> None:
    if log is not None:
        log.write(text)
        log.flush()
