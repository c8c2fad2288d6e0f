"""Live terminal view of a job: a rich progress bar per epoch with the latest metrics."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from protos import visionyard_pb2 as pb

SHOWN_METRICS = ("train/loss", "val/loss", "val/accuracy", "val/top5", "val/f1", "val/mAP50-95", "val/mIoU",
                 "val/psnr", "lr")


def state_name(state: int) -> str:
    return pb.JobState.Name(state)


def cause_name(cause: int) -> str:
    """A failure cause as `list --cause` takes it: out_of_memory, dataset, ..."""
    return pb.FailureCause.Name(cause).removeprefix("CAUSE_").lower()


def format_metrics(values: dict[str, float], keys=SHOWN_METRICS) -> str:
    shown = [k for k in keys if k in values] or sorted(values)
    return "  ".join(f"{k} {values[k]:.4g}" for k in shown)


def follow(client, job: pb.Job, console: Console | None = None, show_logs: bool = False) -> pb.Job:
    """Render events until the job is final; returns the final job."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console()
    total = job.total_epochs or job.spec.training.epochs or None
    latest: dict[str, float] = {}
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        epochs = progress.add_task(f"{job.name} epochs", total=total, info="queued")
        batches = progress.add_task("  batches", total=None, info="", visible=False)
        for event in client.watch(job.id, include_logs=show_logs):
            kind = event.WhichOneof("kind")
            if kind == "status":
                message = f" ({event.status.message})" if event.status.message else ""
                console.log(f"{state_name(event.status.state)}{message}")
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
                console.print(event.log.text, markup=False, highlight=False)
        progress.update(batches, visible=False)
    return client.get(job.id)


def summary(job: pb.Job, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"job {job.id} — {job.name}", show_header=False)
    colour = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow"}.get(state_name(job.state), "white")
    table.add_row("state", f"[{colour}]{state_name(job.state)}[/]")
    if job.cause:
        table.add_row("cause", cause_name(job.cause))
    if job.placement:
        table.add_row("runs on" if job.state == pb.RUNNING else "ran on", job.placement)
    for key in sorted(job.metrics):
        table.add_row(key, f"{job.metrics[key]:.4f}")
    if job.best_checkpoint:
        table.add_row("best checkpoint", job.best_checkpoint)
    if job.last_checkpoint:
        table.add_row("last checkpoint", job.last_checkpoint)
    if job.mlflow_run_id:
        table.add_row("mlflow run", job.mlflow_run_id)
    console.print(table)
    if job.error:
        console.print(f"[red]error:[/] {job.error}", markup=True, highlight=False)
