"""`--json`: the daemon's answer as JSON, one shape per message, for scripts and `jq`.

A message is its proto3 JSON (as grpcurl prints it) with three choices fixed: field names as in
protos/visionyard.proto (`best_checkpoint`, not `bestCheckpoint`); every field present, at its
default when unset (0, "", [], {}, false; enums by name), except `optional` fields and unset
sub-messages, which appear only when set; 64-bit integers (sizes, sequence numbers) as JSON
numbers, not strings. A command that answers a list prints a JSON array; `watch --json` prints
one compact object per event per line, as the events come. README.md ("JSON output") lists
each command's shape.
"""

from __future__ import annotations

import json
import sys

from google.protobuf.descriptor import FieldDescriptor

INT64_TYPES = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64,
                         FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_SINT64})
TYPE_MESSAGE = FieldDescriptor.TYPE_MESSAGE


def to_dict(message) -> dict:
    from google.protobuf import json_format

    data = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)
    _int64_as_numbers(message.DESCRIPTOR, data)
    return data


def _int64_as_numbers(descriptor, data: dict) -> None:
    if descriptor.full_name.startswith("google.protobuf."):  # Struct, Value: plain JSON already
        return
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        entry = field.message_type if field.type == TYPE_MESSAGE else None
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            for key in value:
                value[key] = _convert(value_field, value[key])
        elif field.is_repeated:
            data[field.name] = [_convert(field, v) for v in value]
        else:
            data[field.name] = _convert(field, value)


def _convert(field, value):
    if field.type in INT64_TYPES:
        return int(value)
    if field.type == TYPE_MESSAGE and isinstance(value, dict):
        _int64_as_numbers(field.message_type, value)
    return value


def to_json(answer) -> dict | list[dict]:
    """A message as a dict, a list of messages as a list of dicts."""
    return [to_dict(m) for m in answer] if isinstance(answer, list) else to_dict(answer)


def print_json(data) -> None:
    """A document (an object or an array), indented."""
    print(json.dumps(data, indent=2, ensure_ascii=False))


def print_message(message) -> None:
    print_json(to_dict(message))


def print_messages(messages) -> None:
    print_json([to_dict(m) for m in messages])


def event_dict(event) -> dict:
    """A JobEvent with `kind` (status, metrics, log, checkpoint or progress) naming the part it carries."""
    return {"kind": event.WhichOneof("kind"), **to_dict(event)}


def print_event(event) -> None:
    """One event, one line, flushed at once (a reader sees it as it happens)."""
    sys.stdout.write(json.dumps(event_dict(event), ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()
