"""LineSplitter and strip_ansi: tables of (chunks, expected lines)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from log_parsers import Line, LineSplitter, strip_ansi

DATA = Path(__file__).parent / "data"


def T(text: str) -> Line:
    return Line(text, True)


def F(text: str) -> Line:
    return Line(text, False)


def split(chunks: list[bytes | str], flush: bool = True) -> list[Line]:
    splitter = LineSplitter()
    lines = [line for chunk in chunks for line in splitter.feed(chunk)]
    return lines + splitter.flush() if flush else lines


SPLIT_CASES = [
    # (chunks, expected lines)
    (["a\nb\n"], [T("a"), T("b")]),
    (["a\r\nb\r\n"], [T("a"), T("b")]),
    (["\r 10%|#   | 1/4\r 50%|##  | 2/4\r100%|####| 4/4\n"],
     [F(" 10%|#   | 1/4"), F(" 50%|##  | 2/4"), T("100%|####| 4/4")]),
    (["par", "tial\n"], [T("partial")]),
    (["a", "b", "c", "\n"], [T("abc")]),
    (["abc\r", "\n"], [T("abc")]),                      # "\r\n" split across feeds
    (["abc\r", "def\n"], [F("abc"), T("def")]),        # a real "\r" refresh split across feeds
    (["a\rb\r", "c\n"], [F("a"), F("b"), T("c")]),
    ([b"caf\xc3", b"\xa9\n"], [T("café")]),             # 2-byte char split across chunks
    ([b"\xe2", b"\x96", b"\x88|\n"], [T("█|")]),        # 3-byte tqdm block, one byte per chunk
    ([b"\xf0\x9f", b"\x9a\x80 go\n"], [T("🚀 go")]),
    ([b"bad \xff byte\n"], [T("bad \ufffd byte")]),
    ([b"bytes ", "then str\n"], [T("bytes then str")]),
    (["\x1b[34m\x1b[1mtrain: \x1b[0mScanning\n"], [T("train: Scanning")]),
    (["\x1b[3", "4mblue\x1b[0m\n"], [T("blue")]),       # escape split across feeds
    (["trailing   \t\n"], [T("trailing")]),
    (["   leading kept\n"], [T("   leading kept")]),
    (["\n\n"], [T(""), T("")]),                         # blank lines are real output
    (["\r\r\rx\n"], [T("x")]),                          # empty refreshes are dropped
    (["  padded   \r  more  \n"], [F("  padded"), T("  more")]),
    (["no newline"], [T("no newline")]),                # flush: the partial line, as final
    (["abc\r"], [T("abc")]),                            # flush resolves a held "\r"
    (["a\rb"], [F("a"), T("b")]),
    ([b"ab\xc3"], [T("ab\ufffd")]),                     # flush: an unfinished UTF-8 char
    ([""], []),
    ([b""], []),
]


@pytest.mark.parametrize("chunks, expected", SPLIT_CASES)
def test_splitter_table(chunks, expected):
    assert split(chunks) == expected


def test_partial_line_waits_for_its_end():
    splitter = LineSplitter()
    assert splitter.feed("epoch 1 lo") == []
    assert splitter.feed("ss=0.5\nepoch 2") == [T("epoch 1 loss=0.5")]
    assert splitter.feed("abc\r") == [] and splitter.feed("x") == [F("epoch 2abc")]
    assert splitter.flush() == [T("x")]
    assert splitter.flush() == []


@pytest.mark.parametrize("name", ["yolov7_tiny_2epochs.log", "convnext_tiny_2epochs.log"])
def test_any_chunking_gives_the_same_lines(name):
    """A real log fed in random byte chunks (1..300) splits exactly like the whole file at once."""
    raw = (DATA / name).read_bytes()
    whole = split([raw])
    rng = random.Random(7)
    for _ in range(5):
        chunks, i = [], 0
        while i < len(raw):
            n = rng.randint(1, 300)
            chunks.append(raw[i:i + n])
            i += n
        assert split(chunks) == whole
    assert split([raw[i:i + 1] for i in range(len(raw))]) == whole


def test_real_tqdm_rows_become_refreshes_and_one_final_line():
    lines = split([(DATA / "yolov7_tiny_2epochs.log").read_bytes()])
    rows = [line for line in lines if line.text.startswith("       0/1        0G")]
    assert [line.final for line in rows] == [False] * (len(rows) - 1) + [True]
    assert rows[-1].text.endswith("2/2 [00:09<00:00,  4.85s/it]")
    assert not any("\x1b" in line.text or "\r" in line.text for line in lines)


ANSI_CASES = [
    ("\x1b[34m\x1b[1mhyperparameters: \x1b[0mlr0=0.01", "hyperparameters: lr0=0.01"),
    ("\x1b[1;31mError\x1b[m", "Error"),
    ("\x1b[2K\x1b[1Aup", "up"),                      # erase line, cursor up (nested tqdm bars)
    ("\x1b]0;title\x07text", "text"),                # OSC window title
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink
    ("\x1b7saved\x1b8", "saved"),                    # two-character escapes
    ("no escapes [0m here", "no escapes [0m here"),
]


@pytest.mark.parametrize("text, expected", ANSI_CASES)
def test_strip_ansi(text, expected):
    assert strip_ansi(text) == expected


def test_a_line_that_never_ends_is_cut():
    from log_parsers.base import MAX_LINE_CHARS

    splitter = LineSplitter()
    out = []
    for _ in range(3):
        out += splitter.feed("x" * (MAX_LINE_CHARS // 2 + 1))
    assert len(out) == 1 and out[0].final and len(out[0].text) == MAX_LINE_CHARS + 2
