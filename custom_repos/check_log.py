"""A sample log through a repo spec's parser, line by line, as the daemon reads a job's log.

The log is split the way the daemon splits it (``LineSplitter``: ``\\r`` refreshes are lines of
their own, ANSI codes stripped) and each line goes to one parser built from the spec's ``parser:``,
so every line's record says what it yields (metrics, progress, a per-class row, a notice) or that it
yields nothing. Lines are numbered as in the file (by ``\\n``); a tqdm line holding ``\\r`` refreshes
gives several records with one number. After the last line come the events the parser held back
(``finish()``), then the summary a job would keep: each epoch's metrics (a later value for the same
epoch and name replaces the earlier, as the job store does), its per-class table, the notices and the
patterns that matched no line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from log_parsers import ClassRow, LineSplitter, MetricUpdate, ProgressUpdate, build_parser

#: A sample log larger than this is read up to it (a sample is a few epochs of output, not a whole run).
MAX_BYTES = 32 * 2**20


def check_log(step: dict[str, Any], parser_config: Any, log_path: Path,
              from_files: dict[str, str] | None = None) -> None:
    """Fill ``step`` (a ``custom_repos.check.Step``) with the log's line records and summary.

    ``from_files``: metric name -> the spec's metric file it comes from; a job drops the parser's values of those
    (the summary leaves them out and says so)."""
    source = str(log_path)
    try:
        with open(log_path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        step.problem(source, "", f"cannot read the sample log: {exc.strerror or exc}")
        return
    try:
        parser = build_parser(parser_config)
    except ValueError as exc:
        step.problem(source, "parser", str(exc))
        return
    splitter = LineSplitter()
    lines: list[dict[str, Any]] = []
    pieces = data[:MAX_BYTES].split(b"\n")
    number = 0
    for number, piece in enumerate(pieces, 1):
        chunk = piece + b"\n" if number < len(pieces) else piece
        for line in splitter.feed(chunk):
            lines.append(_record(number, line.text, line.final, parser.feed_line(line), parser.take_notices()))
    for line in splitter.flush():
        lines.append(_record(number, line.text, line.final, parser.feed_line(line), parser.take_notices()))
    held = [_event(e) for e in parser.finish()]
    notices = [n for record in lines for n in record["notices"]] + parser.take_notices()
    unmatched = parser.unmatched()
    epochs, per_class = _summary([e for record in lines for e in record["events"]] + held, from_files or {})
    yielding = sum(1 for record in lines if record["events"])
    step.update(log=source, lines=lines, held_back=held, epochs=epochs, per_class=per_class, notices=notices,
                unmatched=unmatched, truncated=len(data) > MAX_BYTES, from_files=dict(from_files or {}),
                summary=f"{len(lines)} line(s): {yielding} yield something, {len(lines) - yielding} nothing; "
                        f"metrics for {len(epochs)} epoch(s)")
    for text in notices:
        step.problem(source, "parser", text, severity="warning")
    for pattern in unmatched:
        step.problem(source, "parser", f"{pattern} matched no line: a job would be warned that its metrics are "
                                       "missing (fix the regex against a line of this log, or give a log that "
                                       "has such a line)", severity="warning")
    if not any(e["kind"] == "metrics" for record in lines for e in record["events"]) and not any(
            e["kind"] == "metrics" for e in held):
        step.problem(source, "parser", "no line of the log yields a metric: a job with this parser would record none")


def _record(number: int, text: str, final: bool, events: list, notices: list[str]) -> dict[str, Any]:
    return {"number": number, "text": text, "final": final, "events": [_event(e) for e in events],
            "notices": notices}


def _event(event: Any) -> dict[str, Any]:
    if isinstance(event, MetricUpdate):
        return {"kind": "metrics", "epoch": event.step, "values": dict(event.values)}
    if isinstance(event, ProgressUpdate):
        return {"kind": "progress", "epoch": event.epoch, "total_epochs": event.total_epochs, "step": event.step,
                "total_steps": event.total_steps}
    if isinstance(event, ClassRow):
        return {"kind": "class_row", "epoch": event.step, "class": event.name, "values": dict(event.values)}
    return {"kind": type(event).__name__}


def _summary(events: list[dict[str, Any]], from_files: dict[str, str]) -> tuple[list[dict[str, Any]],
                                                                                list[dict[str, Any]]]:
    """Each epoch's metrics from the log (the last value of each name; none a metric file gives) and each epoch's
    per-class rows (a class's last)."""
    metrics: dict[int, dict[str, float]] = {}
    rows: dict[int, dict[str, dict[str, Any]]] = {}
    for event in events:
        if event["kind"] == "metrics":
            values = {k: v for k, v in event["values"].items() if k not in from_files}
            if values:
                metrics.setdefault(event["epoch"], {}).update(values)
        elif event["kind"] == "class_row":
            rows.setdefault(event["epoch"], {})[event["class"]] = event["values"]
    return ([{"epoch": epoch, "metrics": metrics[epoch]} for epoch in sorted(metrics)],
            [{"epoch": epoch, "rows": [{"class": name, "values": values} for name, values in rows[epoch].items()]}
             for epoch in sorted(rows)])
