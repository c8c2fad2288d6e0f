"""`visionyard repos check SPEC [--job JOB] [--log LOG]`: a repo spec tried end to end, on this machine.

Local, like `datasets check`: no daemon is asked (a spec is checked before it is added, and the daemon
knows only added ones). The steps live in custom_repos/check.py; this module shows its report as
text or JSON. Exit code 0 when every step passed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from runner.cli.output import Column, Output

STATUS_STYLES = {"ok": "green", "failed": "red", "skipped": "dim"}
#: Lines of a shown file before the rest is left out (--json has all of it).
FILE_LINES = 200


def add_parser(repos_sub, common, as_json) -> None:
    p = repos_sub.add_parser(
        "check", parents=[common, as_json], help="try a repo spec end to end before adding it (no daemon)",
        description="Check a repo spec on this machine without training: load it as `repos add` does, check the "
                    "repo out at its pinned commit, resolve its env with `uv pip install --dry-run` (nothing "
                    "built), translate a job (--job, or one from the spec's defaults with a generated dataset) "
                    "into the exact command and the files a job's launch writes, and run the spec's parser over "
                    "a sample log (--log), showing what each line yields. Exit code 1 when a step fails.")
    p.add_argument("spec", help="repo spec YAML")
    p.add_argument("--job", help="a job spec YAML to translate (default: the spec's first task and model, "
                                 "training defaults, a generated placeholder dataset)")
    p.add_argument("--log", help="a sample of the repo's output to run the parser over")
    p.add_argument("--device", help="the device the command is rendered for: cpu, cuda or cuda:N (default: the "
                                    "job's training.device, else cpu)")


def cmd_repos_check(args, out: Output) -> int:
    from custom_repos.check import check_repo
    from runner.settings import resolve_home

    report = check_repo(Path(args.spec), home=resolve_home(args.home), job_path=Path(args.job) if args.job else None,
                        log_path=Path(args.log) if args.log else None, device=args.device,
                        validate_job=validate_as_submitted)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        render(report, out)
    return 0 if report["ok"] else 1


def validate_as_submitted(raw: dict[str, Any], spec) -> dict[str, Any]:
    """The daemon's own check of a submitted job (over the wire format, then validate_job_spec), with the
    spec under check as the only repo; the job dict the daemon would store."""
    from custom_repos.registry import UnknownRepoError
    from runner.spec.validate import validate_job_spec
    from runner.spec.wire import spec_from_proto, spec_to_proto

    class OneRepo:
        def get(self, name: str):
            if name != spec.name:
                raise UnknownRepoError(f"Unknown repo '{name}'. Valid: {spec.name}")
            return spec

        def list(self):
            return [(spec, "user")]

    checked = validate_job_spec(spec_from_proto(spec_to_proto(raw)), repos=OneRepo())
    return checked.model_dump(mode="json", exclude_none=True)


# ------------------------------------------------------------------ text


def render(report: dict[str, Any], out: Output) -> None:
    for step in report["steps"]:
        status = out.paint(step["status"].ljust(8), STATUS_STYLES[step["status"]])
        seconds = f"  ({step['seconds']:.1f} s)" if step["status"] != "skipped" else ""
        out.line(f"{out.paint(step['name'].ljust(9), 'bold')}{status}{step['summary']}{seconds}")
        show = _DETAILS.get(step["name"])
        if show is not None and step["status"] != "skipped":
            show(step, out)
    problems = report["problems"]
    errors = [p for p in problems if p["severity"] == "error"]
    if problems:
        out.line()
    for p in problems:
        where = ": ".join(part for part in (p["file"], p["field"]) if part)
        out.line(f"{p['severity']}: {where}: {p['message']}", style="red" if p["severity"] == "error" else "yellow")
    warnings = len(problems) - len(errors)
    if report["ok"]:
        out.line(f"ok: {report['spec']} passed every check" + (f" ({warnings} warning(s))" if warnings else ""),
                 style="green")
    else:
        out.line(f"{report['spec']}: {len(errors)} error(s), {warnings} warning(s)", style="red")


def _env(step: dict[str, Any], out: Output) -> None:
    if step.get("python"):
        out.line(f"  python: {step['python']}")
    if step.get("would_install"):
        out.line(f"  would install: {', '.join(step['would_install'])}")


def _job(step: dict[str, Any], out: Output) -> None:
    if "task" in step:
        out.line(f"  dataset: {step['dataset']}; epochs {step['epochs']}, batch size {step['batch_size']}, "
                 f"image size {step['image_size']}; classes: {', '.join(map(str, step['classes'][:20]))}"
                 + (" ..." if len(step["classes"]) > 20 else ""))


def _launch(step: dict[str, Any], out: Output) -> None:
    if "argv" not in step:
        return
    out.line(f"  cwd: {step['cwd']}")
    for name, value in step["env"].items():
        out.line(f"  env: {name}={value}")
    if step["pythonpath"]:
        out.line(f"  PYTHONPATH (prepended): {':'.join(step['pythonpath'])}")
    out.line(f"  unset: {' '.join(step['unset_env'])}", style="dim")
    out.line(f"  command: {shlex.join(step['argv'])}", style="cyan")
    for note in step["notes"]:
        out.line(f"  dataset warning: {note}", style="yellow")
    for f in step["files"]:
        if f.get("note"):
            out.line(f"  {f['path']}  ({f['note']})")
            continue
        out.line(f"  {f['path']}  ({f['bytes']} bytes)", style="bold")
        if f["content"] is None:
            out.line("    (binary, not shown)", style="dim")
            continue
        text = f["content"].splitlines()
        for line in text[:FILE_LINES]:
            out.line(f"    {line}")
        if len(text) > FILE_LINES or f["truncated"]:
            out.line("    ... (the rest: --json)", style="dim")


def _log(step: dict[str, Any], out: Output) -> None:
    if "lines" not in step:
        return
    out.line("  (numbered as in the file; + marks a progress-bar refresh, text ended by \\r)", style="dim")
    for record in step["lines"]:
        text = f"  {record['number']:>5}{' ' if record['final'] else '+'} {record['text']}"
        if out.width is not None and len(text) > out.width:
            text = text[:out.width - 1] + "…"
        out.line(text, style="" if record["events"] else "dim")
        yields = "; ".join(_describe(e) for e in record["events"])
        if yields:
            out.line(f"         → {yields}", style="green")
        for notice in record["notices"]:
            out.line(f"         ! {notice}", style="yellow")
    if step["held_back"]:
        out.line(f"  at the end of the log → {'; '.join(_describe(e) for e in step['held_back'])}", style="green")
    for name, path in step.get("from_files", {}).items():
        out.line(f"  {name}: from the metric file {path} (metric_files:, not checked here); a job drops the log's "
                 "values of it", style="dim")
    if step["epochs"]:
        names = sorted({name for epoch in step["epochs"] for name in epoch["metrics"]})
        out.table([Column("epoch", right=True), *(Column(n, right=True, drop=1) for n in names)],
                  [[str(e["epoch"]), *(_number(e["metrics"][n]) if n in e["metrics"] else "-" for n in names)]
                   for e in step["epochs"]], title="metrics a job would record")
    for table in step["per_class"]:
        keys = list(dict.fromkeys(k for row in table["rows"] for k in row["values"]))
        out.table([Column("class"), *(Column(k, right=True, drop=1) for k in keys)],
                  [[row["class"], *(_number(row["values"][k]) if k in row["values"] else "-" for k in keys)]
                   for row in table["rows"]], title=f"per-class rows, epoch {table['epoch']}")


def _describe(event: dict[str, Any]) -> str:
    kind = event["kind"]
    if kind == "metrics":
        return f"epoch {event['epoch']}: " + ", ".join(f"{k}={_number(v)}" for k, v in event["values"].items())
    if kind == "progress":
        where = f"epoch {event['epoch']}" + (f"/{event['total_epochs']}" if event["total_epochs"] else "")
        if event["step"]:
            where += f", step {event['step']}" + (f"/{event['total_steps']}" if event["total_steps"] else "")
        return f"progress {where}"
    if kind == "class_row":
        values = ", ".join(f"{k}={_number(v)}" for k, v in event["values"].items())
        return f"epoch {event['epoch']} class {event['class']}: {values}"
    return kind


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"


_DETAILS = {"env": _env, "job": _job, "launch": _launch, "log": _log}
