"""What each command shows of the daemon's answers: the columns of its table (which stay at any
width, which go first when the terminal is narrow) and the text of each cell."""

from __future__ import annotations

import json
import time
from datetime import datetime

from protos import visionyard_pb2 as pb
from runner.cli.names import cause_name, primary_metric, state_name
from runner.cli.output import Column, Output, Styled

STATE_STYLES = {"SUCCEEDED": "green", "FAILED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}
FINAL = (pb.SUCCEEDED, pb.FAILED, pb.CANCELLED)


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def duration(seconds: float) -> str:
    """3s, 4m05s, 2h03m, 1d04h."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def job_duration(job: pb.Job, now: float | None = None) -> str:
    """How long the job ran (a running one: so far); `-` before it started."""
    if not job.started_at:
        return "-"
    end = job.finished_at if job.state in FINAL and job.finished_at else (now or time.time())
    return duration(end - job.started_at)


def number(value: float) -> str:
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e5 else f"{value:.4g}"


def epoch(job: pb.Job) -> str:
    total = job.total_epochs or job.spec.training.epochs
    if not job.epoch and not total:
        return "-"
    return f"{job.epoch}/{total}" if total else str(job.epoch)


def primary(job: pb.Job, out: Output) -> str:
    """The job's primary metric with its direction and latest value: `val/accuracy ↑ 0.9120`."""
    name, higher = primary_metric(job.spec.task)
    value = number(job.metrics[name]) if name in job.metrics else "-"
    return f"{name} {out.arrows[0 if higher else 1]} {value}"


def state(job: pb.Job) -> Styled:
    name = state_name(job.state)
    return Styled(name + (f" ({cause_name(job.cause)})" if job.cause else ""), STATE_STYLES.get(name, ""))


LIST_COLUMNS = (Column("id"), Column("name", drop=3, wrap=True), Column("state", wrap=True),
                Column("epoch", drop=4, right=True), Column("metric", drop=2), Column("duration", drop=5, right=True))


def show_jobs(jobs: list[pb.Job], out: Output) -> None:
    if not jobs:
        out.line("no jobs")
        return
    now = time.time()
    out.table(LIST_COLUMNS, [[j.id, j.name, state(j), epoch(j), primary(j, out), job_duration(j, now)] for j in jobs])


def show_job(job: pb.Job, out: Output) -> None:
    """Everything about one job: its record, every metric, its files; its error after."""
    spec = job.spec
    rows: list[tuple[str, object]] = [("id", job.id), ("name", job.name), ("state", state(job))]
    rows += [("framework", spec.framework), ("task", spec.task), ("model", spec.model)]
    if spec.repo:
        rows.append(("repo", spec.repo))
    rows += [("epoch", epoch(job)), ("primary metric", primary(job, out))]
    rows += [(key, number(job.metrics[key])) for key in sorted(job.metrics)]
    rows += [("created", when(job.created_at)), ("started", when(job.started_at))]
    if job.finished_at:
        rows.append(("finished", when(job.finished_at)))
    rows.append(("ran for" if job.state in FINAL else "running for", job_duration(job)))
    if job.placement:
        rows.append(("runs on" if job.state == pb.RUNNING else "ran on", job.placement))
    optional = (("device", job.device), ("env", job.env_name), ("job dir", job.job_dir),
                ("best checkpoint", job.best_checkpoint), ("last checkpoint", job.last_checkpoint),
                ("mlflow run", job.mlflow_run_id))
    rows += [(key, value) for key, value in optional if value]
    if job.HasField("exit_code"):
        rows.append(("exit code", str(job.exit_code)))
    out.pairs(rows)
    for warning in job.warnings:
        out.line(f"warning: {warning}")
    if job.error:
        out.error(job.error)


MODEL_COLUMNS = (Column("framework"), Column("model"), Column("name", drop=6, wrap=True),
                 Column("params (M)", drop=2, right=True), Column("input", drop=3, right=True),
                 Column("batch", drop=5, right=True), Column("lr", drop=4, right=True),
                 Column("tags", drop=7, wrap=True))


def show_models(models: list[pb.ModelInfo], out: Output) -> None:
    if not models:
        out.line("no models match")
        return
    out.table(MODEL_COLUMNS, [[m.framework, m.name, m.display_name, f"{m.params_millions:.1f}", str(m.input_size),
                               str(m.recommended_batch_size), f"{m.recommended_learning_rate:g}", ", ".join(m.tags)]
                              for m in models])


def mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


ENV_COLUMNS = (Column("name"), Column("spec", drop=3), Column("size", drop=2, right=True),
               Column("created", drop=5), Column("last used", drop=4), Column("path"))


def show_envs(envs: list[pb.EnvInfo], out: Output) -> None:
    if not envs:
        out.line("no envs yet: a job's first run builds its env (or `visionyard envs prepare NAME`)")
        return
    out.table(ENV_COLUMNS, [[e.name, e.spec_name, mib(e.size_bytes), when(e.created_at), when(e.last_used_at), e.path]
                            for e in envs])


WORKER_COLUMNS = (Column("job"), Column("pid", right=True, drop=4), Column("state"), Column("device", drop=5),
                  Column("runtime", drop=7), Column("memory", right=True, drop=2),
                  Column("served", right=True, drop=1), Column("idle", right=True, drop=3),
                  Column("load", right=True, drop=6), Column("checkpoint"))


def show_workers(workers: list[pb.WorkerInfo], out: Output) -> None:
    if not workers:
        out.line("no predict workers: a job's first predict starts one")
        return
    out.table(WORKER_COLUMNS, [[w.job_id, str(w.pid), w.state, w.device, w.runtime or "pytorch", mib(w.rss_bytes),
                                str(w.served), duration(w.idle_seconds), f"{w.load_ms / 1000:.1f} s", w.checkpoint]
                               for w in workers])


def show_export(reply: pb.ExportResponse, out: Output) -> None:
    """Where the export is, and how it compares with PyTorch."""
    check = reply.validation
    kind = {"top-1": "top-1 class", "boxes": "boxes", "pixels": "pixels"}.get(check.agreement_kind,
                                                                          check.agreement_kind)
    options = ", ".join(["dynamic"] * reply.dynamic + ["float16"] * reply.half)
    out.line(f"exported {reply.path}")
    out.line(f"  {mib(reply.size_bytes)}, {reply.format} opset {reply.opset}{', ' + options if options else ''}, by "
             f"{reply.exporter}, in {reply.seconds:.1f} s")
    out.line(f"  validated on {check.images} image(s): max |PyTorch - ONNX| {check.max_abs_diff:.3g} "
             f"(tolerance {check.tolerance:.3g}, {check.worst_output}); {kind} agree {check.agreement:.0%}")
    out.line(f"  PyTorch {check.pytorch_images_per_s:.1f} images/s, ONNX {check.onnx_images_per_s:.1f} images/s "
             "(one batch of the validation images, CPU threads as the daemon gives them)")
    out.line(f"  predict with it: visionyard predict {reply.job_id} IMAGE --runtime onnx")


REPO_COLUMNS = (Column("name"), Column("source", drop=4), Column("tasks", drop=5, wrap=True),
                Column("dataset", drop=3), Column("commit", drop=2), Column("url"))


def show_repos(repos: list[pb.RepoInfo], out: Output) -> None:
    if not repos:
        out.line("no repos")
        return
    out.table(REPO_COLUMNS, [[r.name, r.source, ", ".join(r.tasks), r.dataset_format, r.commit, r.url] for r in repos])


def show_repo(repo: pb.RepoInfo, out: Output) -> None:
    """The repo spec as YAML, under a comment naming where it comes from."""
    out.line(f"# {repo.name} ({repo.source}): {repo.url} @ {repo.commit}")
    out.stream.write(repo.spec_yaml)


GC_COLUMNS = (Column("kind", drop=3), Column("name", drop=4, wrap=True), Column("size", drop=2, right=True),
              Column("why", drop=1, wrap=True), Column("path"))


def show_gc(reply: pb.CollectGarbageResponse, out: Output) -> None:
    if reply.removed:
        out.table(GC_COLUMNS, [[r.kind, r.name, mib(r.bytes), r.reason, r.path] for r in reply.removed])
    verb = "would free" if reply.dry_run else "freed"
    out.line(f"{verb} {mib(reply.freed_bytes)} ({len(reply.removed)} item(s))")


FIELD_COLUMNS = (Column("advanced.<path>"), Column("type", drop=3), Column("default", drop=4),
                 Column("allowed", drop=2, wrap=True), Column("description", drop=1, wrap=True))
CONTROL_COLUMNS = (Column("training.<control>"), Column("honoured", drop=3), Column("how", drop=1, wrap=True),
                   Column("left out", drop=2, wrap=True))
PRESET_COLUMNS = (Column("preset"), Column("description", drop=2, wrap=True), Column("values", drop=1, wrap=True))


def show_schema(schema: pb.ConfigSchema, values_of, out: Output) -> None:
    """`values_of(preset)`: a preset's values as a dict."""
    out.line(f"{schema.framework} tasks: {', '.join(schema.tasks)}; "
             f"dataset formats: {', '.join(schema.dataset_formats)}")
    if schema.controls:
        out.line("training controls (training: in a job spec; the same meaning for every framework):")
        out.table(CONTROL_COLUMNS, [[c.name, "yes" if c.supported else "no", c.how, c.default] for c in schema.controls])
        out.line()
    out.table(FIELD_COLUMNS, [[f.path, f.type, f.default_json, ", ".join(f.choices) if f.choices else _range(f),
                               f.description + (f" Deprecated: use {f.replaced_by}." if f.replaced_by else "")]
                              for f in schema.fields])
    if schema.presets:
        out.line()
        out.table(PRESET_COLUMNS, [[p.name, p.description, json.dumps(values_of(p), sort_keys=True)] for p in schema.presets])


def _range(field: pb.ConfigField) -> str:
    low = f"{field.minimum:g}" if field.HasField("minimum") else ""
    high = f"{field.maximum:g}" if field.HasField("maximum") else ""
    return f"{low}..{high}" if low or high else ""
