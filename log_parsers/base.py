"""Parser plumbing: line splitting, ANSI stripping, the event records and the parser base class.

A training repo's stdout+stderr land in one log file. tqdm-style progress bars rewrite one
terminal line with `\\r`, colour output adds ANSI escapes, and the daemon reads the file in
arbitrary byte chunks. `LineSplitter` turns those chunks into clean `Line`s; a `LogParser`
turns lines into `MetricUpdate`/`ProgressUpdate` events (and `ClassRow`s, where the parser reads a
per-class table). Everything here is pure (text in,
events out), imports only the stdlib and never prints.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = [
    "LOOSE_NUMBER", "NUMBER", "ClassRow", "Event", "Line", "LineSplitter", "LogParser", "MetricUpdate",
    "ProgressUpdate", "strip_ansi", "to_float",
]

# A number as Python's %g / %f / str(float) print it (also nan/inf, which losses can become).
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
# The same, loosely and ~2x cheaper to match: for hot regexes whose matches go through float()
# anyway (which rejects "1.2.3"). Possessive, so a following lookahead cannot make it back off.
LOOSE_NUMBER = r"[-+]?[\d.][\d.eE+-]*+|[-+]?(?:nan|inf)"

# CSI sequences (colours, cursor moves: ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and the
# remaining two-character escapes (ESC 7, ESC M, ...: ESC followed by one of 0-? @-Z \ ] ^ _).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[0-?@-Z\\-_]")

# A line that never ends (a binary blob, a runaway progress bar without `\r`) must not grow the
# carried buffer without bound: past this many characters it is emitted as a line of its own.
MAX_LINE_CHARS = 1 << 20


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences (colours, cursor movement, OSC titles/links)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def to_float(text: str | None) -> float | None:
    """`float(text)`, or None when it does not parse (parsers skip such values)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Line:
    text: str    # ANSI codes stripped, trailing whitespace stripped
    final: bool  # True when ended by "\n"; False when ended by "\r" (a refresh that will be overwritten)


@dataclass(frozen=True, slots=True)
class MetricUpdate:
    step: int                  # epoch, 1-based
    values: dict[str, float]


@dataclass(frozen=True, slots=True)
class ProgressUpdate:
    epoch: int                 # 1-based
    total_epochs: int | None
    step: int | None = None    # batches done within the epoch, 1-based
    total_steps: int | None = None


@dataclass(frozen=True, slots=True)
class ClassRow:
    """One class's row of a validation's per-class table (a parser's `per_class:`, see per_class.py)."""

    step: int                         # the epoch of the validation the row follows, 1-based
    name: str                         # the class, as printed
    values: dict[str, float | int]    # per-class key (`AP50`, `support`, ...) -> value; ints stay ints


Event = MetricUpdate | ProgressUpdate | ClassRow


def _append_refreshes(pieces: list[str], append) -> None:
    """Progress-bar refreshes (text ended by a lone \\r) as non-final lines; empty ones dropped."""
    for piece in pieces:
        if "\x1b" in piece:
            piece = _ANSI.sub("", piece)
        piece = piece.rstrip()
        if piece:
            append(Line(piece, False))


class LineSplitter:
    """Bytes or str chunks in, complete lines out.

    Splits on `\\n`, `\\r\\n` and `\\r`; carries a partial line across feeds; decodes UTF-8 with
    errors='replace' through an incremental decoder, so a multi-byte character split across two
    chunks decodes correctly. Rules worth knowing:

    - A chunk that ends in `\\r` holds that line back until the next feed (or flush): only the
      next character tells a `\\r\\n` line end (final) from a `\\r` refresh (not final).
    - Empty `\\r` pieces (tqdm starts every refresh with `\\r`) are dropped; empty `\\n` lines are
      kept, since a blank line is real output.
    """

    __slots__ = ("_decoder", "_pending")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, chunk: bytes | str) -> list[Line]:
        text = chunk if isinstance(chunk, str) else self._decoder.decode(chunk)
        if not text:
            return []
        if self._pending:
            text = self._pending + text
        parts = text.split("\n")
        rest = parts.pop()
        out: list[Line] = []
        append = out.append
        for part in parts:
            if "\r" in part:
                if part[-1] == "\r":  # "\r\n": an ordinary line end
                    part = part[:-1]
                if "\r" in part:
                    *refreshes, part = part.split("\r")
                    _append_refreshes(refreshes, append)
            if "\x1b" in part:
                part = _ANSI.sub("", part)
            append(Line(part.rstrip(), True))
        if "\r" in rest:
            *refreshes, tail = rest.split("\r")
            if not tail:  # ends with "\r": keep the last piece (and its "\r") for the next feed
                tail = refreshes.pop() + "\r"
            _append_refreshes(refreshes, append)
            rest = tail
        if len(rest) > MAX_LINE_CHARS:
            append(Line(strip_ansi(rest).rstrip(), True))
            rest = ""
        self._pending = rest
        return out

    def flush(self) -> list[Line]:
        """The remaining partial line (and any bytes of an unfinished UTF-8 char), as final."""
        rest = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if not rest:
            return []
        if rest[-1] == "\r":
            rest = rest[:-1]
        out = self.feed(rest)  # emits the complete `\r` refreshes, keeps the tail pending
        tail, self._pending = self._pending, ""
        tail = strip_ansi(tail).rstrip()
        if tail:
            out.append(Line(tail, True))
        return out


class LogParser:
    """Base: subclasses implement `parse_line`; the daemon calls `feed_line` per Line.

    Parsers keep state across lines (the current epoch, train metrics held until validation
    arrives), so use one instance per log. `feed(chunk)` is the one-call route for a daemon
    that does not keep its own `LineSplitter`: it splits with an internal one, and `finish()`
    flushes that splitter before emitting what the parser held back.
    """

    name: str = "base"

    def __init_subclass__(cls, **kwargs) -> None:
        # feed_line is parse_line: alias it per subclass so the daemon's per-line call does not
        # pay for an extra Python frame (~0.1 us a line, ~5% of the budget at 200k lines/s).
        super().__init_subclass__(**kwargs)
        if "feed_line" not in cls.__dict__ and "parse_line" in cls.__dict__:
            cls.feed_line = cls.parse_line

    def __init__(self) -> None:
        self._splitter = LineSplitter()
        self._last_progress: tuple[int, int] = (0, 0)

    # -- what subclasses implement ----------------------------------------------------------
    def parse_line(self, line: Line) -> list[Event]:
        raise NotImplementedError

    def finish(self) -> list[Event]:
        """End of log: emit anything held back (e.g. a last epoch's train metrics)."""
        return self._parse_lines(self._splitter.flush())

    def take_notices(self) -> list[str]:
        """What the parser noticed about the log since the last call (regex parsers: a validation line
        twice in one epoch); the daemon keeps them as the job's warnings."""
        return []

    def unmatched(self) -> list[str]:
        """The parser's patterns that never matched, named (regex parsers); built-in parsers: none."""
        return []

    # -- entry points -----------------------------------------------------------------------
    def feed_line(self, line: Line) -> list[Event]:
        """What the daemon calls per Line (the same as parse_line)."""
        return self.parse_line(line)

    def feed(self, chunk: bytes | str) -> list[Event]:
        """Split a raw chunk of the log with this parser's own splitter and parse its lines."""
        return self._parse_lines(self._splitter.feed(chunk))

    def parse_text(self, text: str) -> list[Event]:
        """Convenience for tests and benches: split + parse every line + finish."""
        events = self.feed(text)
        events.extend(self.finish())
        return events

    # -- helpers for subclasses -------------------------------------------------------------
    def _parse_lines(self, lines: list[Line]) -> list[Event]:
        events: list[Event] = []
        parse = self.parse_line
        for line in lines:
            found = parse(line)
            if found:
                events.extend(found)
        return events

    def _progress(self, epoch: int, total_epochs: int | None, step: int | None,
                  total_steps: int | None) -> ProgressUpdate | None:
        """A ProgressUpdate, or None when (epoch, step) is not past the last one emitted.

        Progress only moves forward, so comparing with the last emitted pair gives "at most one
        update per distinct (epoch, step)" without remembering every pair (a tqdm bar repaints
        the same step several times).
        """
        key = (epoch, step or 0)
        if key <= self._last_progress:
            return None
        self._last_progress = key
        return ProgressUpdate(epoch, total_epochs, step, total_steps)
