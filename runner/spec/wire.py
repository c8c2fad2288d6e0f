"""The job spec on the wire: a raw dict (parsed YAML) <-> protobuf ``JobSpec``, and the error that
names a spec's bad fields. Light on purpose: the client imports it (no pydantic, no catalogs)."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import json_format

from protos import visionyard_pb2 as pb

#: The states a job never leaves (the store's `JobState` takes them from here).
TERMINAL_STATES = frozenset({pb.SUCCEEDED, pb.FAILED, pb.CANCELLED})


class SpecError(ValueError):
    """One or more problems with a job spec, each as (field path, message)."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("\n".join(f"{path}: {msg}" if path else msg for path, msg in problems))


def spec_from_proto(message: pb.JobSpec) -> dict[str, Any]:
    """The raw dict a protobuf JobSpec carries (only fields the sender set)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def spec_to_proto(spec: dict[str, Any]) -> pb.JobSpec:
    """A raw dict (e.g. parsed YAML) as a protobuf JobSpec; unknown keys raise SpecError."""
    try:
        return json_format.ParseDict(spec, pb.JobSpec())
    except json_format.ParseError as exc:
        raise SpecError([("", _parse_error_message(str(exc)))]) from None


def _parse_error_message(text: str) -> str:
    match = re.search(r'has no field named "([^"]+)" at "([^"]*)"', text)
    if match:
        field, where = match.groups()
        where = where.replace("JobSpec", "").strip(".")
        path = f"{where}.{field}" if where else field
        valid = re.search(r"Available Fields\(except extensions\): \"\[(.*)\]\"", text)
        names = re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), valid.group(1)) if valid else ""
        allowed = f" Valid: {names}" if names else ""
        return f"{path}: unknown field.{allowed}".replace("'", "")
    return text


def quote(value: Any, limit: int = 200) -> str:
    """A value for an error message: repr'd (control characters visible), at most `limit` chars."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"
