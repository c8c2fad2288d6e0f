"""`visionyard sweep FILE [--follow] [--resume]` and `visionyard sweeps list | status | cancel | plot`.

A sweep's trials are ordinary jobs (`visionyard list`, `watch`, `status` show them too); these
commands show the sweep: each trial's sampled values, state, objective and where it was pruned.
`--follow` redraws the table at every change (rich, in a terminal; one line per change otherwise).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

from protos import visionyard_pb2 as pb
from runner.cli import jsonout
from runner.cli.output import Column, Output, Styled

TRIAL_COLUMNS = (Column("trial", right=True), Column("job"), Column("params"), Column("state"),
                 Column("objective", right=True), Column("epoch", right=True), Column("pruned at", right=True),
                 Column("reason", drop=1, wrap=True))
SWEEP_COLUMNS = (Column("id"), Column("name"), Column("state"), Column("trials", right=True),
                 Column("pruned", right=True), Column("failed", right=True), Column("best", right=True),
                 Column("objective", drop=2), Column("created", drop=3))
STATE_STYLES = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan", "FINISHED": "green",
                "CANCELLED": "yellow", "STOPPED": "yellow"}


def add_parsers(sub, add, common, as_json) -> None:
    p = add("sweep", cmd_sweep, "start a hyperparameter sweep from a sweep file (YAML)",
            description="Start a hyperparameter sweep: an Optuna study the daemon owns, whose trials are ordinary "
                        "jobs (the base job spec with the sampled values), pruned on their live metrics. The file "
                        "names `base` (a job file, or an inline spec), `space`, `objective`, `sampler`, `pruner`, "
                        "`trials`, `parallel`, `timeout` and `max_failed` (README.md, \"Hyperparameter sweeps\").", json=True)
    p.add_argument("spec", help="sweep file (YAML)")
    p.add_argument("--follow", "-f", action="store_true", help="show the trials live until the sweep ends")
    p.add_argument("--resume", action="store_true", help="add the file's `trials` to the ended sweep of its name (a grid sweep: its points "
                   "without a result, at most that many)")
    p = add("sweeps", cmd_sweeps, "list sweeps, show or cancel one, plot its history")
    sweeps_sub = p.add_subparsers(dest="sweeps_command")
    sweeps_sub.add_parser("list", parents=[common, as_json], help="every sweep, newest first (the default)")
    sweeps_sub.add_parser("status", parents=[common, as_json], help="a sweep and its trials").add_argument("sweep")
    sweeps_sub.add_parser("cancel", parents=[common, as_json], help="cancel a sweep and its running trials"
                          ).add_argument("sweep")
    plot = sweeps_sub.add_parser("plot", parents=[common, as_json], help="draw a sweep's history, parameter importance and "
                                                                "parallel coordinates (PNG)")
    plot.add_argument("sweep")
    plot.add_argument("-o", "--output", required=True, help="the PNG to write")


def cmd_sweep(args, out: Output) -> int:
    from runner.cli.commands import _client

    with _client(args) as client:
        sweep = client.create_sweep(args.spec, resume=args.resume)
        if not args.follow:
            if args.json:
                jsonout.print_message(sweep)
            else:
                out.line(f"sweep {sweep.id} ({sweep.name}): {sweep.trials} trials, {sweep.parallel} at once, "
                         f"{sweep.direction} {sweep.metric}")
                if args.resume and sweep.message:
                    out.line(sweep.message)
                for warning in sweep.warnings:
                    out.line(f"warning: {warning}", "yellow")
            return 0
        return follow(client, sweep, out, as_json=args.json)


def cmd_sweeps(args, out: Output) -> int:
    from runner.cli.commands import _client

    command = getattr(args, "sweeps_command", None) or "list"
    with _client(args) as client:
        if command == "list":
            sweeps = client.sweeps()
            if getattr(args, "json", False):
                jsonout.print_messages(sweeps)
            else:
                show_sweeps(sweeps, out)
            return 0
        if command == "plot":
            sweep = client.sweep(args.sweep)
            written = plot_sweep(sweep, args.output)
            if args.json:
                jsonout.print_json({"files": written})
            else:
                out.line(f"wrote {', '.join(map(str, written))}")
            return 0
        sweep = client.cancel_sweep(args.sweep) if command == "cancel" else client.sweep(args.sweep)
    if args.json:
        jsonout.print_message(sweep)
    else:
        show_sweep(sweep, out)
    return 0


def follow(client, sweep: pb.Sweep, out: Output, as_json: bool = False) -> int:
    """The sweep at every change until it ends; exit code 0 when it finished with a complete trial."""
    last = sweep
    if as_json:
        for last in client.watch_sweep(sweep.id):
            print(json.dumps(jsonout.to_dict(last)), flush=True)
    elif out.styled:
        from rich.live import Live

        with Live(_rich_table(sweep), console=out.console, refresh_per_second=4) as live:
            for last in client.watch_sweep(sweep.id):
                live.update(_rich_table(last))
    else:
        seen: dict[int, tuple] = {}
        for last in client.watch_sweep(sweep.id):
            for trial in last.trial_list:
                key = (trial.state, trial.epoch, trial.pruned_at)
                if seen.get(trial.number) != key:
                    seen[trial.number] = key
                    out.line(f"trial {trial.number} {trial.job_id or '-'} {_params(trial)} {trial.state} "
                             f"epoch {trial.epoch} {_objective(trial)}{f'  {trial.reason}' if trial.reason else ''}")
            out.stream.flush()
        show_sweep(last, out)
    return 0 if last.state == "FINISHED" and last.best_trial >= 0 else 1


def show_sweep(sweep: pb.Sweep, out: Output) -> None:
    best = f"trial {sweep.best_trial}: {sweep.best_value:.4g} {sweep.best_params_json}" if sweep.best_trial >= 0 else "-"
    out.pairs([("id", sweep.id), ("name", sweep.name), ("state", Styled(sweep.state, STATE_STYLES.get(sweep.state, ""))),
               ("objective", f"{sweep.direction} {sweep.metric}"),
               ("trials", f"{len(sweep.trial_list)} of {sweep.trials} ({sweep.done} ended, {sweep.pruned} pruned, "
                          f"{sweep.failed} failed), {sweep.parallel} at once"),
               ("best", best), *([("message", sweep.message)] if sweep.message else []),
               *([("mlflow run", sweep.mlflow_run_id)] if sweep.mlflow_run_id else []),
               *[("warning", w) for w in sweep.warnings]])
    out.table(TRIAL_COLUMNS, [_trial_row(t) for t in sweep.trial_list])


def show_sweeps(sweeps: list[pb.Sweep], out: Output) -> None:
    out.table(SWEEP_COLUMNS, [(s.id, s.name, Styled(s.state, STATE_STYLES.get(s.state, "")), f"{s.done}/{s.trials}",
                               str(s.pruned), str(s.failed), f"{s.best_value:.4g}" if s.best_trial >= 0 else "-",
                               f"{s.direction} {s.metric}",
                               datetime.fromtimestamp(s.created_at).strftime("%Y-%m-%d %H:%M"))
                              for s in sweeps])


def _trial_row(trial: pb.SweepTrial) -> tuple:
    state = trial.state if trial.state != "RUNNING" else pb.JobState.Name(trial.job_state) if trial.job_state else "RUNNING"
    return (str(trial.number), trial.job_id or "-", _params(trial), Styled(state, STATE_STYLES.get(trial.state, "")),
            _objective(trial), str(trial.epoch or "-"), str(trial.pruned_at or "-"), trial.reason or "")


def _params(trial: pb.SweepTrial) -> str:
    params = json.loads(trial.params_json or "{}")
    short = [path.rsplit(".", 1)[-1] for path in params]  # the last name, unless two paths share it
    names = short if len(set(short)) == len(short) else list(params)
    return " ".join(f"{name}={_value(v)}" for name, v in zip(names, params.values()))


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _objective(trial: pb.SweepTrial) -> str:
    return f"{trial.value:.4g}" if trial.has_value else "-"


def _rich_table(sweep: pb.Sweep):
    from rich.table import Table

    best = f", best {sweep.best_value:.4g} (trial {sweep.best_trial})" if sweep.best_trial >= 0 else ""
    table = Table(title=f"sweep {sweep.name} ({sweep.id}): {sweep.state}, {sweep.done}/{sweep.trials} trials{best}")
    for column in TRIAL_COLUMNS:
        table.add_column(column.header, justify="right" if column.right else "left")
    for trial in sweep.trial_list:
        row = _trial_row(trial)
        style = STATE_STYLES.get(trial.state, "")
        table.add_row(*row[:3], f"[{style}]{row[3].text}[/]" if style else row[3].text, *row[4:])
    return table



def plot_sweep(sweep: pb.Sweep, output: str) -> list[str]:
    """Optuna's figures of the sweep, drawn here (matplotlib, off-screen) from the trials the daemon sent:
    the optimisation history at `output`, and beside it `-importance` and `-parallel` (the importance
    needs two complete trials whose values differ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as figures

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = rebuilt_study(sweep)
    if not study.trials:
        raise SystemExit(f"sweep {sweep.id} has no ended trial to plot yet")
    from pathlib import Path

    path = Path(output)
    stem = path.with_suffix("")
    written = []
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
        for name, draw in (("", figures.plot_optimization_history), ("-importance", figures.plot_param_importances),
                           ("-parallel", figures.plot_parallel_coordinate)):
            target = path if not name else stem.with_name(stem.name + name).with_suffix(path.suffix or ".png")
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importance of a single complete trial
                print(f"{target.name}: not drawn ({exc})", file=sys.stderr)
                continue
            figure = (axes.flat[0] if hasattr(axes, "flat") else axes).get_figure()
            figure.savefig(target, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(str(target))
    return written


def rebuilt_study(sweep: pb.Sweep):
    """An in-memory study holding the sweep's ended trials, for Optuna's figures."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    spec = json.loads(sweep.spec_json or "{}")
    distributions = {}
    for path, param in (spec.get("space") or {}).items():
        if param["type"] == "categorical":
            distributions[path] = CategoricalDistribution(param["choices"])
        elif param["type"] == "int":
            distributions[path] = IntDistribution(int(param["low"]), int(param["high"]), log=param.get("log", False),
                                                  step=int(param.get("step") or 1))
        else:
            distributions[path] = FloatDistribution(param["low"], param["high"], log=param.get("log", False),
                                                    step=param.get("step"))
    study = optuna.create_study(direction=sweep.direction or "maximize")
    states = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "PRUNED": optuna.trial.TrialState.PRUNED,
              "FAIL": optuna.trial.TrialState.FAIL}
    for trial in sweep.trial_list:
        if trial.state not in states:
            continue
        params = json.loads(trial.params_json or "{}")
        complete = trial.state == "COMPLETE" and trial.has_value
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: distributions[k] for k in params if k in distributions},
            value=trial.value if complete else None,
            state=states[trial.state] if complete or trial.state != "COMPLETE" else states["FAIL"],
            intermediate_values={trial.pruned_at: trial.value} if trial.state == "PRUNED" and trial.has_value else None))
    return study
