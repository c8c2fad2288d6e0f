"""Following a job as it runs: in a colour terminal a rich progress bar per epoch with the latest
metrics; otherwise (a pipe, a CI log, `NO_COLOR`) one plain line per state change and per epoch."""

from __future__ import annotations

from datetime import datetime

from protos import visionyard_pb2 as pb
from runner.cli.names import format_metrics, state_name
from runner.cli.output import Output


def follow(client, job: pb.Job, out: Output, show_logs: bool = False) -> pb.Job:
    """Show the job's events until it is final; returns the final job."""
    events = client.watch(job.id, include_logs=show_logs)
    if out.styled:
        _bars(events, job, out)
    else:
        _lines(events, job, out)
    return client.get(job.id)


def _lines(events, job: pb.Job, out: Output) -> None:
    total = job.total_epochs or job.spec.training.epochs or 0
    latest: dict[str, float] = {}
    for event in events:
        kind = event.WhichOneof("kind")
        stamp = datetime.fromtimestamp(event.time).strftime("%H:%M:%S") if event.time else "--:--:--"
        if kind == "status":
            message = f" ({event.status.message})" if event.status.message else ""
            out.line(f"{stamp} {state_name(event.status.state)}{message}")
        elif kind == "metrics":
            latest.update(event.metrics.values)
            of = f"/{total}" if total else ""
            out.line(f"{stamp} epoch {event.metrics.step}{of}  {format_metrics(latest)}")
        elif kind == "progress" and event.progress.total_epochs:
            total = event.progress.total_epochs
        elif kind == "log":
            out.line(event.log.text)
        out.stream.flush()


def _bars(events, job: pb.Job, out: Output) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = out.console
    total = job.total_epochs or job.spec.training.epochs or None
    latest: dict[str, float] = {}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        epochs = progress.add_task(f"{job.name} epochs", total=total, info="queued")
        batches = progress.add_task("  batches", total=None, info="", visible=False)
        for event in events:
            kind = event.WhichOneof("kind")
            if kind == "status":
                message = f" ({event.status.message})" if event.status.message else ""
                console.log(f"{state_name(event.status.state)}{message}", markup=False)
                progress.update(epochs, info=state_name(event.status.state).lower())
            elif kind == "metrics":
                latest.update(event.metrics.values)
                progress.update(epochs, completed=event.metrics.step, info=format_metrics(latest))
            elif kind == "progress":
                p = event.progress
                if p.total_epochs and progress.tasks[epochs].total != p.total_epochs:
                    progress.update(epochs, total=p.total_epochs)
                progress.update(batches, visible=True, total=p.total_steps or None, completed=p.step,
                                description=f"  epoch {p.epoch} batches")
            elif kind == "log":
                console.print(event.log.text, markup=False, highlight=False, soft_wrap=True)  # as written: no wrapping
        progress.update(batches, visible=False)
