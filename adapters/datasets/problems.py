"""What is wrong with a dataset: each problem names its file (and line or annotation) and a fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ERROR = "error"
WARNING = "warning"
#: Problems of one kind listed before the rest are only counted: a dataset with 50,000 bad
#: label lines needs the first few and a count, not a wall of text.
MAX_PER_KIND = 20


@dataclass(frozen=True)
class Problem:
    severity: str
    file: str
    message: str
    #: Where in the file: "line 3", "annotation id 17", "" for the whole file.
    where: str = ""
    #: A short stable name for the kind of problem, for --json consumers and the per-kind cap.
    kind: str = ""

    def __str__(self) -> str:
        location = f"{self.file}:{self.where}" if self.where else self.file
        return f"{location}: {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class DatasetError(ValueError):
    """The dataset on disk is not what its format promises; the message names the file(s)."""

    def __init__(self, message: str | list[Problem]):
        if isinstance(message, str):
            self.problems = [Problem(ERROR, "", message)]
            super().__init__(message)
        else:
            self.problems = message
            super().__init__("\n".join(str(p) for p in message))


@dataclass
class Problems:
    """Collects problems while a dataset is read; a reader adds, the caller decides what fails."""

    items: list[Problem] = field(default_factory=list)
    #: Problems of a kind beyond MAX_PER_KIND: kind -> (severity, count).
    overflow: dict[str, list] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def error(self, file, message: str, where: str = "", kind: str = "") -> None:
        self._add(Problem(ERROR, str(file), message, where, kind or message))

    def warning(self, file, message: str, where: str = "", kind: str = "") -> None:
        self._add(Problem(WARNING, str(file), message, where, kind or message))

    def _add(self, problem: Problem) -> None:
        seen = self._counts.get(problem.kind, 0)
        self._counts[problem.kind] = seen + 1
        if seen < MAX_PER_KIND:
            self.items.append(problem)
        else:
            self.overflow.setdefault(problem.kind, [problem.severity, 0])[1] += 1

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == WARNING]

    @property
    def has_errors(self) -> bool:
        return any(p.severity == ERROR for p in self.items)

    def error_count(self) -> int:
        return len(self.errors) + sum(n for sev, n in self.overflow.values() if sev == ERROR)

    def warning_count(self) -> int:
        return len(self.warnings) + sum(n for sev, n in self.overflow.values() if sev == WARNING)

    def more(self, severity: str) -> int:
        """How many problems of this severity were counted but not listed."""
        return sum(n for sev, n in self.overflow.values() if sev == severity)

    def raise_errors(self) -> None:
        if self.has_errors:
            errors = self.errors
            hidden = self.more(ERROR)
            if hidden:
                errors = [*errors, Problem(ERROR, "", f"... and {hidden} more problem(s) of the same kinds")]
            raise DatasetError(errors)
