"""Command templates: ``{placeholder}`` fields inside the argv elements of a repo spec.

An element may hold several placeholders and literal text (``--img={image_size}``); ``{{`` and
``}}`` are literal braces. Rendering never splits or joins elements, so an element that renders
to the empty string stays one empty argument (YOLOv7's ``--weights ''``).
"""

from __future__ import annotations

import shlex
import string
from collections.abc import Iterable, Mapping
from pathlib import PurePath
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
    "repo_dir": "the job's own working tree of the repo (<job_dir>/repo, the checkout's files linked; the default cwd)",
    "dataset_dir": "the dataset root (staged under <job_dir>/data for yolo)",
    "train_dir": "training images (yolo: <job_dir>/data/images/train)",
    "val_dir": "validation images (yolo: <job_dir>/data/images/val)",
    "num_classes": "classes found in the dataset",
    "seed": "training.seed",
    "workers": "training.num_workers",
    "use_gpu": "true on a GPU, false on the CPU (PaddleDetection's use_gpu)",
}
#: Placeholders that only make sense for one dataset format.
FORMAT_PLACEHOLDERS: dict[str, dict[str, str]] = {
    "yolo": {"data_yaml": "<job_dir>/data.yaml, written for this job"},
    "imagefolder": {},
    "coco": {"train_annotations": "<job_dir>/data/annotations/instances_train.json, written for this job",
             "val_annotations": "<job_dir>/data/annotations/instances_val.json, written for this job"},
}
#: ``{config_files.<name>}``: the file the spec's ``config_files`` entry ``<name>`` was written to.
CONFIG_FILES = "config_files"


#: Placeholders of a repo's `predict.command`.
PREDICT_PLACEHOLDERS: dict[str, str] = {
    "python": "the repo env's python interpreter",
    "model": "the job's model",
    "checkpoint": "the job's best (or last) checkpoint",
    "source": "a folder holding the batch's images",
    "output_dir": "a fresh folder for the batch's answers",
    "image_size": "the job's image size",
    "device": "cpu | cuda:0",
    "device_index": "cpu | 0",
    "device_type": "cpu | cuda",
    "job_dir": "the job's folder",
    "num_classes": "the job's classes",
    "top_k": "how many predictions an image gets (classification)",
    "shim_dir": "visionyard's custom_repos/shims: predict scripts for repos that have none (convnext_predict.py)",
    "use_gpu": "true on a GPU, false on the CPU",
}


def valid_predict_placeholders(advanced_keys: Iterable[str], config_files: Iterable[str] = ()) -> list[str]:
    """A predict command's placeholders; ``{config_files.<name>}`` is the file the job's training wrote."""
    return [*PREDICT_PLACEHOLDERS, *(f"advanced.{key}" for key in advanced_keys),
            *(f"{CONFIG_FILES}.{name}" for name in config_files)]


def valid_placeholders(dataset_format: str, advanced_keys: Iterable[str],
                       config_files: Iterable[str] = ()) -> list[str]:
    """Every placeholder a spec with this format, these advanced settings and these config files may use."""
    names = [*PLACEHOLDERS, *FORMAT_PLACEHOLDERS.get(dataset_format, {})]
    return names + [f"advanced.{key}" for key in advanced_keys] + [f"{CONFIG_FILES}.{name}" for name in config_files]


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


def render(template: str, values: Mapping[str, Any], shell: bool = False) -> str:
    """``template`` with each placeholder replaced by :func:`format_value` of its value; in a
    shell script (`shell`), each value quoted for where it stands (bare, in '...' or in "..."),
    so it stays literal text."""
    parts = []
    state = _ShellState()
    for literal, name, _spec, _conversion in _parse(template):
        parts.append(literal)
        if shell:
            state.feed(literal)
        if name is not None:
            text = format_value(values[name])
            parts.append(state.quote(text) if shell else text)
    return "".join(parts)


class _ShellState:
    """Which quotes a POSIX shell script is inside, after the text fed so far."""

    def __init__(self) -> None:
        self.quote_char = ""  # "", "'" or '"'
        self.escaped = False

    def feed(self, text: str) -> None:
        for char in text:
            if self.escaped:
                self.escaped = False
            elif self.quote_char == "'":
                if char == "'":
                    self.quote_char = ""
            elif char == "\\":
                self.escaped = True
            elif self.quote_char == '"':
                if char == '"':
                    self.quote_char = ""
            elif char in "'\"":
                self.quote_char = char

    def quote(self, value: str) -> str:
        if self.escaped:  # a backslash right before the placeholder: it escapes our first character
            self.escaped = False
            return "\\" + self.quote(value)  # noqa: the backslash now escapes itself
        if self.quote_char == "'":
            return value.replace("'", "'\\''")
        if self.quote_char == '"':
            return "".join("\\" + c if c in '\\"$`' else c for c in value)
        return shlex.quote(value)


SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"})


def render_command(command: list[str], values: Mapping[str, Any]) -> list[str]:
    """A spec's command as argv: every element rendered on its own (a value never splits into more
    elements, whatever spaces it holds), and the script of a shell's ``-c`` with quoted values
    (``$(...)``, backticks, ``;``, newlines in a value stay literal)."""
    script = _shell_script_index(command)
    return [render(element, values, shell=i == script) for i, element in enumerate(command)]


def _shell_script_index(command: list[str]) -> int | None:
    """Where the script is when `command` runs a shell with ``-c`` (also through ``env``)."""
    at = 0
    while at < len(command) and PurePath(command[at]).name == "env":
        at += 1
        while at < len(command) and ("=" in command[at] or command[at].startswith("-")):
            at += 1
    if at >= len(command) or PurePath(command[at]).name not in SHELLS:
        return None
    for i in range(at + 1, len(command)):
        flag = command[i]
        if flag.startswith("-") and not flag.startswith("--") and "c" in flag[1:]:
            return i + 1 if i + 1 < len(command) else None
        if not flag.startswith("-"):
            return None
    return None


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
