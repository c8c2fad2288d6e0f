"""Where the CLI's output goes and how it looks.

Tables and records are laid out here, to the terminal's width: an identifier or a path (a job id,
a model id, a checkpoint) is printed whole, never wrapped or cut. When the terminal is too narrow,
names and descriptions wrap, lesser columns go (the highest `drop` first), and when even the
columns that always stay don't fit, each row becomes a block of `key: value` lines.

In a colour terminal, headers are bold, states coloured and a rule drawn under the header. With
`NO_COLOR` set, the same layout in plain text; when stdout is no terminal (a pipe, a file),
plain text with no width limit: no colour, no box drawing, no ANSI codes. Only the live progress
view (`watch`, `submit --follow`) loads rich: the tables answer without it, in the CLI's time budget.

A terminal is stdout's being a tty, or what rich's variables say: `TTY_COMPATIBLE=1` (or `0`),
`FORCE_COLOR`. Its width is `$COLUMNS`, else the terminal's own.
"""

from __future__ import annotations

import os
import shutil
import sys
import unicodedata
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

#: The narrowest a wrapping column (a name, a description) gets before it is dropped instead.
WRAP_MIN = 12
GAP = "  "
#: SGR codes of the styles a cell may ask for.
SGR = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


@dataclass(frozen=True)
class Column:
    header: str
    drop: int = 0        # 0: shown at any width (what a user copies); else dropped when narrow, highest first
    wrap: bool = False   # may wrap onto more lines in a terminal (names, descriptions); never cut either way
    right: bool = False  # right-aligned (numbers)


@dataclass(frozen=True)
class Styled:
    """A cell's text with a style (a colour), shown only in a colour terminal."""

    text: str
    style: str


Cell = Union[str, Styled]


def text_of(cell: Cell) -> str:
    return cell.text if isinstance(cell, Styled) else cell


def style_of(cell: Cell) -> str:
    return cell.style if isinstance(cell, Styled) else ""


def cells(text: str) -> int:
    """Columns `text` takes in a terminal (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def is_terminal(stream, environ: Mapping[str, str]) -> bool:
    forced = environ.get("TTY_COMPATIBLE", "")
    if forced in ("0", "1"):
        return forced == "1"
    if environ.get("FORCE_COLOR"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Output:
    """Prints lines, tables and `key: value` records to stdout as the terminal (or its absence) allows."""

    def __init__(self, stream=None, environ: Mapping[str, str] | None = None):
        self.stream = stream if stream is not None else sys.stdout
        environ = os.environ if environ is None else environ
        self.terminal = is_terminal(self.stream, environ)
        self.styled = self.terminal and not environ.get("NO_COLOR")
        self.width: int | None = _width(environ) if self.terminal else None
        self._console = None

    @property
    def console(self):
        """A rich Console on the stream, for the live progress view (colour terminals only)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, width=self.width, force_terminal=True, highlight=False,
                                    emoji=False, log_path=False)
        return self._console

    @property
    def arrows(self) -> tuple[str, str]:
        """↑ and ↓ (higher, lower is better), or ASCII where the stream's encoding lacks them."""
        try:
            "↑↓".encode(getattr(self.stream, "encoding", None) or "utf-8")
            return "↑", "↓"
        except (UnicodeEncodeError, LookupError):
            return "^", "v"

    def paint(self, text: str, style: str = "") -> str:
        """`text` in `style` (a space-separated list of SGR names) in a colour terminal; else as is."""
        codes = ";".join(SGR[s] for s in style.split() if s in SGR) if self.styled else ""
        return f"\x1b[{codes}m{text}\x1b[0m" if codes and text else text

    def line(self, text: str = "", style: str = "") -> None:
        """One line as is (the terminal wraps it, if anything)."""
        print(self.paint(text, style), file=self.stream)

    def error(self, message: str) -> None:
        print(f"{self.paint('error:', 'red')} {message}", file=self.stream)

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]], title: str | None = None) -> None:
        texts = [[text_of(cell) for cell in row] for row in rows]
        widths = [max([cells(c.header)] + [cells(r[i]) for r in texts]) for i, c in enumerate(columns)]
        keep = self._fit(columns, widths)
        if title:
            self.line(title, "bold")
        if keep is None:
            self._records(columns, rows)
            return
        shown = self._shown_widths(columns, keep, widths)
        self._row(columns, [Styled(c.header, "bold") for c in columns], keep, widths, shown)
        if self.styled:
            self.line("─" * (sum(shown.values()) + len(GAP) * (len(keep) - 1)), "dim")
        for row in rows:
            self._row(columns, row, keep, widths, shown)

    def pairs(self, items: Sequence[tuple[str, Cell]], title: str | None = None) -> None:
        """A record as `key: value` lines, the values aligned; a value runs on as long as it is."""
        if title:
            self.line(title, "bold")
        width = max((cells(key) for key, _ in items), default=0) + 1
        for key, value in items:
            label = self.paint(key + ":", "bold") + " " * (width - cells(key + ":"))
            print(f"{label} {self.paint(text_of(value), style_of(value))}", file=self.stream)

    # ------------------------------------------------------------ layout

    def _fit(self, columns: Sequence[Column], widths: list[int]) -> list[int] | None:
        """The columns shown: all without a width (a pipe); else without the lesser ones the width
        can't hold. None when even the columns that always stay don't fit."""
        keep = list(range(len(columns)))
        if self.width is None:
            return keep

        def need(i: int) -> int:
            return min(widths[i], WRAP_MIN) if columns[i].wrap else widths[i]

        while sum(map(need, keep)) + len(GAP) * (len(keep) - 1) > self.width:
            lesser = [i for i in keep if columns[i].drop]
            if not lesser:
                return None
            keep.remove(max(lesser, key=lambda i: (columns[i].drop, i)))
        return keep

    def _shown_widths(self, columns, keep: list[int], widths: list[int]) -> dict[int, int]:
        """Each kept column's width: its widest cell; wrapping columns share what the others leave."""
        shown = {i: widths[i] for i in keep}
        wrapping = [i for i in keep if columns[i].wrap]
        if self.width is not None and wrapping:
            room = self.width - len(GAP) * (len(keep) - 1) - sum(widths[i] for i in keep if i not in wrapping)
            level = max(widths[i] for i in wrapping)
            while level > 1 and sum(min(widths[i], level) for i in wrapping) > room:
                level -= 1
            shown.update({i: min(widths[i], level) for i in wrapping})
        return shown

    def _row(self, columns, row: Sequence[Cell], keep: list[int], widths: list[int], shown: dict[int, int]) -> None:
        parts = {i: _wrap(text_of(row[i]), shown[i]) if shown[i] < widths[i] else [text_of(row[i])] for i in keep}
        for n in range(max(len(p) for p in parts.values())):
            line = []
            for i in keep:
                text = parts[i][n] if n < len(parts[i]) else ""
                space = " " * (shown[i] - cells(text))
                painted = self.paint(text, style_of(row[i]))
                line.append(space + painted if columns[i].right else painted + space)
            print(GAP.join(line).rstrip(), file=self.stream)

    def _records(self, columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> None:
        for n, row in enumerate(rows):
            if n:
                self.line()
            self.pairs([(column.header, cell) for column, cell in zip(columns, row)])


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, break_on_hyphens=False) or [""]


def _width(environ: Mapping[str, str]) -> int:
    try:
        return max(int(environ["COLUMNS"]), 20)
    except (KeyError, ValueError):
        return shutil.get_terminal_size().columns
