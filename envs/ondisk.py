"""What an env leaves on disk: its marker, its python version, its packages, its size."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool) -> None:
    """Write to a unique temp file next to ``path`` and ``replace()`` it: readers see old or new."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def pyvenv_version(env: Path) -> str:
    for line in (env / "pyvenv.cfg").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version_info", "version"):
            return value.strip()
    return "unknown"


def installed_distributions(env: Path, version: str) -> list[str]:
    """``name==version`` of every distribution in the env, from its ``*.dist-info`` dir names.

    Names come out normalized (``python-dateutil``). Reading each METADATA file instead would
    cost ~50 ms on a torch env, paid on every build.
    """
    major_minor = ".".join(version.split(".")[:2])
    site = env / "lib" / f"python{major_minor}" / "site-packages"
    found = set()
    for entry in os.listdir(site):
        if entry.endswith(".dist-info"):
            name, _, dist_version = entry[: -len(".dist-info")].partition("-")
            found.add(f"{re.sub(r'[-_.]+', '-', name).lower()}=={dist_version}")
    return sorted(found)


def disk_usage(root: Path) -> tuple[int, int]:
    """(apparent bytes, each inode once; allocated bytes of files with no other hardlink)."""
    seen: set[tuple[int, int]] = set()
    apparent = unique = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            apparent += st.st_size
            if st.st_nlink == 1 or stat.S_ISDIR(st.st_mode):  # a dir's links are its subdirs
                unique += st.st_blocks * 512
    return apparent, unique
