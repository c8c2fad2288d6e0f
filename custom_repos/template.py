"""Command templates: ``{placeholder}`` fields inside the argv elements of a repo spec.

An element may hold several placeholders and literal text (``--img={image_size}``); ``{{`` and
``}}`` are literal braces. Rendering never splits or joins elements, so an element that renders
to the empty string stays one empty argument (YOLOv7's ``--weights ''``).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

#: Placeholders every spec may use, with what they render to (shown in error messages and docs).
PLACEHOLDERS: dict[str, str] = {
    "python": "the repo env's python interpreter",
    "model": "the job's model",
    "epochs": "training.epochs",
    "batch_size": "training.batch_size",
    "learning_rate": "training.learning_rate",
    "image_size": "image_size, else training.image_size, else the spec's default_image_size",
    "device": "cpu | cuda:0",
    "device_index": "cpu | 0 (YOLOv7's --device)",
    "device_type": "cpu | cuda (ConvNeXt's --device)",
    "output_dir": "<job_dir>/output",
    "job_dir": "the job's folder",
    "dataset_dir": "the dataset root (staged under <job_dir>/data for yolo)",
    "train_dir": "training images (yolo: <job_dir>/data/images/train)",
    "val_dir": "validation images (yolo: <job_dir>/data/images/val)",
    "num_classes": "classes found in the dataset",
    "seed": "training.seed",
    "workers": "training.num_workers",
}
#: Placeholders that only make sense for one dataset format.
FORMAT_PLACEHOLDERS: dict[str, dict[str, str]] = {
    "yolo": {"data_yaml": "<job_dir>/data.yaml, written for this job"},
    "imagefolder": {},
}


def valid_placeholders(dataset_format: str, advanced_keys: Iterable[str]) -> list[str]:
    """Every placeholder a spec with this format and these advanced settings may use."""
    names = [*PLACEHOLDERS, *FORMAT_PLACEHOLDERS.get(dataset_format, {})]
    return names + [f"advanced.{key}" for key in advanced_keys]


def placeholders(template: str) -> list[str]:
    """The placeholder names in ``template``; ValueError for malformed braces or format specs."""
    names = []
    for _literal, name, spec, conversion in _parse(template):
        if name is None:
            continue
        if not name:
            raise ValueError("empty placeholder '{}' (write '{{}}' for literal braces)")
        if spec or conversion:
            raise ValueError(f"placeholder '{{{name}...}}' has a format spec or conversion; "
                             "only plain '{name}' is supported")
        names.append(name)
    return names


def check(template: str, valid: Iterable[str]) -> str | None:
    """A message for the first problem in ``template`` (unknown placeholder, bad braces), or None."""
    allowed = list(valid)
    try:
        names = placeholders(template)
    except ValueError as exc:
        return str(exc)
    for name in names:
        if name not in allowed:
            return f"unknown placeholder '{{{name}}}'. Valid: {', '.join(allowed)}"
    return None


def render(template: str, values: Mapping[str, Any]) -> str:
    """``template`` with each placeholder replaced by :func:`format_value` of its value."""
    parts = []
    for literal, name, _spec, _conversion in _parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(format_value(values[name]))
    return "".join(parts)


def format_value(value: Any) -> str:
    """How a value appears on a command line: booleans as true/false, None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(template: str):
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:  # "Single '}' encountered", "expected '}' before end of string"
        raise ValueError(f"{exc} in {template!r} (write '{{{{' or '}}}}' for literal braces)") from None
