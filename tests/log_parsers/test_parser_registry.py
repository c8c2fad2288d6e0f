"""The built-in parser registry: one rule for registering a name again."""

from __future__ import annotations

import pytest

from adapters.registry import AlreadyRegisteredError, UnknownNameError
from log_parsers import LogParser, build_parser, builtin_parsers, register_parser
from log_parsers.registry import BUILTINS


class Impostor(LogParser):
    def feed_line(self, line):
        return []


def test_registering_a_parser_again_is_a_no_op_and_a_different_one_is_refused():
    yolov7 = BUILTINS.get("yolov7")
    assert register_parser("yolov7")(yolov7) is yolov7  # the same class: kept as it was
    with pytest.raises(AlreadyRegisteredError,
                       match=r"^log parser 'yolov7' is already registered as log_parsers\.yolov7\.YoloV7Parser; "
                             r"refusing tests\.log_parsers\.test_parser_registry\.Impostor$"):
        register_parser("yolov7")(Impostor)
    assert BUILTINS.get("yolov7") is yolov7 and type(build_parser("yolov7")) is yolov7
    assert Impostor.name == LogParser.name  # a refused class is left untouched
    assert builtin_parsers() == ["convnext", "generic", "ppyoloe", "yolov7"]


def test_an_unknown_parser_lists_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        build_parser("yolo")
    assert str(info.value) == "Unknown log parser 'yolo'. Valid: convnext, generic, ppyoloe, yolov7"
    assert isinstance(info.value, ValueError)
