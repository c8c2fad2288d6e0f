"""Log parsers: a custom repo's stdout+stderr in, metrics in the shared vocabulary out.

    from log_parsers import LineSplitter, build_parser

    parser = build_parser(spec_parser_field)      # "yolov7", {"builtin": ...}, {"patterns": [...]}
    splitter = LineSplitter()
    for chunk in tail(log_file):                  # bytes, any size
        for line in splitter.feed(chunk):
            for event in parser.feed_line(line):  # MetricUpdate | ProgressUpdate | ClassRow
                ...
    for line in splitter.flush():
        ...parser.feed_line(line)
    ...parser.finish()                            # the last epoch's held-back metrics

(or `parser.feed(chunk)` / `parser.finish()`, which keep a splitter inside the parser.)
Stdlib only (and `adapters.registry`, the registry type, itself stdlib only); parsers are pure
and never print. The built-ins are registered by the imports below - this list is the whole
registry.
"""

from log_parsers.base import (
    ClassRow,
    Event,
    Line,
    LineSplitter,
    LogParser,
    MetricUpdate,
    ProgressUpdate,
    strip_ansi,
)
from log_parsers.registry import build_parser, builtin_parsers, register_parser, validate_parser_config

# Built-in parsers (each registers itself with @register_parser).
from log_parsers import convnext, generic, ppyoloe, yolov7  # noqa: F401  isort: skip
from log_parsers.regex_parser import RegexParser  # isort: skip
from log_parsers.per_class import PerClassParser  # isort: skip

__all__ = [
    "ClassRow", "Event", "Line", "LineSplitter", "LogParser", "MetricUpdate", "PerClassParser", "ProgressUpdate",
    "RegexParser",
    "build_parser", "builtin_parsers", "register_parser", "strip_ansi", "validate_parser_config",
]
