"""What an environment is made of, and the content key that names it on disk."""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from dataclasses import asdict, dataclass
from typing import Any

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._]*(?:-[A-Za-z0-9._]+)*$")

#: The platform part of every key: the same requirements resolve to different wheels elsewhere.
PLATFORM = f"{sys.platform}-{platform.machine()}"


@dataclass(frozen=True)
class EnvSpec:
    """A request for a virtualenv: a python version and what to install into it.

    ``requirements`` and ``overrides`` are lines as uv reads them in a requirements file
    (``torch==2.15.0``); ``overrides`` are passed with ``uv pip install --overrides`` and win over
    any version a dependency asks for. ``requirements_text`` is the verbatim content of a custom
    repo's requirements file; it is installed with ``requirements`` and is part of the key, so an
    edited file gives a new env even when the file name stays the same.
    """

    name: str
    python: str = "3.11"
    requirements: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    requirements_text: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"Invalid env name {self.name!r}: use letters, digits, '.', '_' and single '-'"
            )
        # Accept lists from callers (YAML, pydantic) but store tuples so the spec stays hashable.
        object.__setattr__(self, "requirements", tuple(self.requirements))
        object.__setattr__(self, "overrides", tuple(self.overrides))

    def install_payload(self, python_version: str) -> dict[str, Any]:
        """Everything that decides what ends up in the env, in canonical form.

        ``python_version`` is the *resolved* full version (``3.11.7``), not the request
        (``3.11``): a new patch release on the machine must not silently reuse an env built for
        another interpreter. ``name`` and ``description`` are left out on purpose — two specs
        that install the same things share the same content.
        """
        return {
            "python": python_version,
            "requirements": sorted(r.strip() for r in self.requirements),
            "overrides": sorted(o.strip() for o in self.overrides),
            "requirements_text": self.requirements_text,
            "platform": PLATFORM,
        }

    def key(self, python_version: str) -> str:
        """First 12 hex digits of the sha256 of :meth:`install_payload` as canonical JSON."""
        canonical = json.dumps(
            self.install_payload(python_version), sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["requirements"] = list(self.requirements)
        data["overrides"] = list(self.overrides)
        return data
