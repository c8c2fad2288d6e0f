"""`visionyard` — the command line, built on runner.client.Client."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from protos import visionyard_pb2 as pb
from runner.client import Client, ClientError
from runner.cli.progress import cause_name, follow, format_metrics, state_name, summary
from runner.settings import DEFAULT_NODE_HOME, Paths, resolve_home

console = Console()


def _client(args) -> Client:
    return Client(address=args.address, home=args.home, token=getattr(args, "token", None),
                  tls_ca=getattr(args, "tls_ca", None), client_cert=getattr(args, "client_cert", None),
                  client_key=getattr(args, "client_key", None))


def _dict(message, **options) -> dict:
    from google.protobuf import json_format  # only --json output needs it

    return json_format.MessageToDict(message, preserving_proto_field_name=True, **options)


def _json(message) -> str:
    return json.dumps(_dict(message), indent=2)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


# ---------------------------------------------------------------- commands


RAY_MAX_CONCURRENT_JOBS = 256


def cmd_serve(args) -> int:
    from runner.daemon.server import RayOptions, TcpOptions, serve
    from runner.core.gc import Policy
    from runner.auth import TOKEN_ENV
    from runner.daemon.predictions import PredictLimits
    from runner.launch.ray.uploads import UploadLimits

    policy = Policy(env_max_idle_days=args.gc_env_days, envs_max_gb=args.gc_envs_max_gb,
                    checkout_max_idle_days=args.gc_checkout_days, job_dir_max_age_days=args.gc_job_days)
    tcp = TcpOptions(token=getattr(args, "token", None) or os.environ.get(TOKEN_ENV), tls_cert=args.tls_cert,
                     tls_key=args.tls_key, tls_client_ca=args.tls_client_ca, insecure=args.insecure_listen)
    ray = None
    if args.backend == "ray":
        if not args.ray_address:
            raise SystemExit("--backend ray needs --ray-address (the head's dashboard, e.g. http://head:8265)")
        ray = RayOptions(args.ray_address, cpus_per_job=args.ray_cpus_per_job, python=args.ray_python,
                         lost_after=args.ray_lost_after, reporter_address=args.reporter_address,
                         node_home=args.ray_node_home, shared_home=args.ray_shared_home,
                         upload_limits=UploadLimits(file_bytes=args.upload_max_file_mb << 20,
                                                    job_bytes=args.upload_max_job_mb << 20,
                                                    job_files=args.upload_max_files))
    elif args.ray_address:
        raise SystemExit("--ray-address goes with --backend ray")
    max_jobs = args.max_concurrent_jobs or (RAY_MAX_CONCURRENT_JOBS if ray else 1)
    predict = PredictLimits.with_concurrency(args.max_concurrent_predicts, max_pixels=args.predict_max_pixels)
    serve(resolve_home(args.home), listen=args.listen, max_concurrent_jobs=max_jobs, gpus=args.gpus,
          cancel_jobs_on_stop=args.cancel_jobs_on_stop, gc_policy=policy, tcp=tcp, ray=ray, predict=predict)
    return 0


def cmd_submit(args) -> int:
    with _client(args) as client:
        job = client.submit(args.spec)
        console.print(f"submitted job [bold]{job.id}[/] ({job.name})")
        if not args.follow:
            return 0
        final = follow(client, job, console, show_logs=args.logs)
        summary(final, console)
        return 0 if final.state == pb.SUCCEEDED else 1


def cmd_status(args) -> int:
    with _client(args) as client:
        job = client.get(args.job)
    if args.json:
        print(_json(job))
    else:
        summary(job, console)
    return 0


def cmd_list(args) -> int:
    states = [pb.JobState.Value(s.upper()) for s in [*(args.state or []), *(["failed"] if args.failed else [])]]
    causes = [pb.FailureCause.Value(f"CAUSE_{c.upper()}") for c in args.cause or []]
    with _client(args) as client:
        jobs = client.list(states, args.limit, causes=causes)
    if args.json:
        print(json.dumps([_dict(j) for j in jobs], indent=2))
        return 0
    table = Table("id", "name", "state", "epoch", "created", "metrics")
    for job in jobs:
        state = state_name(job.state) + (f" ({cause_name(job.cause)})" if job.cause else "")
        table.add_row(job.id, job.name, state, f"{job.epoch}/{job.total_epochs}",
                      _when(job.created_at), format_metrics(dict(job.metrics)))
    console.print(table)
    return 0


def cmd_logs(args) -> int:
    with _client(args) as client:
        for event in client.watch(args.job, logs_only=True, snapshot=not args.follow):
            print(event.log.text, flush=True)
    return 0


def cmd_watch(args) -> int:
    with _client(args) as client:
        final = follow(client, client.get(args.job), console, show_logs=args.logs)
    summary(final, console)
    return 0 if final.state == pb.SUCCEEDED else 1


def cmd_cancel(args) -> int:
    with _client(args) as client:
        job = client.cancel(args.job)
        if args.wait:
            job = client.wait(job.id)
    console.print(f"job {job.id}: {state_name(job.state)}")
    return 0


def cmd_models(args) -> int:
    with _client(args) as client:
        models = client.models(args.framework or "", args.task or "", args.tag or "")
    if args.json:
        print(json.dumps([_dict(m) for m in models], indent=2))
        return 0
    table = Table("framework", "model", "name", "params (M)", "input", "batch", "lr", "tags")
    for m in models:
        table.add_row(m.framework, m.name, m.display_name, f"{m.params_millions:.1f}", str(m.input_size),
                      str(m.recommended_batch_size), f"{m.recommended_learning_rate:g}", ", ".join(m.tags))
    console.print(table)
    return 0


def cmd_schema(args) -> int:
    with _client(args) as client:
        schema = client.schema(args.framework, args.task or "")
    if args.json:
        print(_json(schema))
        return 0
    console.print(f"[bold]{schema.framework}[/] tasks: {', '.join(schema.tasks)}; "
                  f"dataset formats: {', '.join(schema.dataset_formats)}")
    table = Table("advanced.<path>", "type", "default", "allowed", "description")
    for f in schema.fields:
        allowed = ", ".join(f.choices) if f.choices else _range(f)
        table.add_row(f.path, f.type, f.default_json, allowed, f.description)
    console.print(table)
    presets = Table("preset", "description", "values")
    for p in schema.presets:
        presets.add_row(p.name, p.description, json.dumps(_dict(p.values)))
    console.print(presets)
    return 0


def _range(field: pb.ConfigField) -> str:
    low = f"{field.minimum:g}" if field.HasField("minimum") else ""
    high = f"{field.maximum:g}" if field.HasField("maximum") else ""
    return f"{low}..{high}" if low or high else ""


def cmd_envs(args) -> int:
    with _client(args) as client:
        if args.envs_command == "prepare":
            started = time.monotonic()
            env = client.prepare_env(args.name)
            console.print(f"env {env.name} ready at {env.path} ({time.monotonic() - started:.1f} s)")
        elif args.envs_command == "rm":
            for name in client.remove_env(args.name):
                console.print(f"removed {name}")
        else:
            table = Table("name", "spec", "size", "created", "last used", "path")
            for env in client.envs():
                table.add_row(env.name, env.spec_name, f"{env.size_bytes / 2**20:.0f} MiB", _when(env.created_at),
                              _when(env.last_used_at), env.path)
            console.print(table)
    return 0


def cmd_gc(args) -> int:
    with _client(args) as client:
        reply = client.collect_garbage(args.dry_run, env_max_idle_days=args.env_days, envs_max_gb=args.envs_max_gb,
                                       checkout_max_idle_days=args.checkout_days, job_dir_max_age_days=args.job_days)
    verb = "would free" if reply.dry_run else "freed"
    table = Table("kind", "name", "size", "why", "path")
    for item in reply.removed:
        table.add_row(item.kind, item.name, f"{item.bytes / 2**20:.1f} MiB", item.reason, item.path)
    if reply.removed:
        console.print(table)
    console.print(f"{verb} {reply.freed_bytes / 2**20:.1f} MiB ({len(reply.removed)} item(s))")
    return 0


def cmd_repos(args) -> int:
    with _client(args) as client:
        if args.repos_command == "add":
            repo = client.add_repo(args.spec)
            console.print(f"added repo [bold]{repo.name}[/] ({repo.url} @ {repo.commit[:12]}); "
                          f"submit jobs with `framework: custom` and `repo: {repo.name}`")
        elif args.repos_command == "show":
            repo = client.repo(args.name)
            console.print(f"# {repo.name} ({repo.source})", highlight=False)
            print(repo.spec_yaml, end="")
        elif args.repos_command == "rm":
            console.print(f"removed repo {client.remove_repo(args.name).name}")
        elif args.repos_command == "prepare":
            started = time.monotonic()
            ready = client.prepare_repo(args.name)
            console.print(f"repo {ready.repo.name} checked out at {ready.checkout}; env {ready.env.name} ready "
                          f"({time.monotonic() - started:.1f} s)")
        else:
            table = Table("name", "source", "tasks", "dataset", "commit", "url")
            for repo in client.repos():
                table.add_row(repo.name, repo.source, ", ".join(repo.tasks), repo.dataset_format, repo.commit[:12],
                              repo.url)
            console.print(table)
    return 0


def cmd_predict(args) -> int:
    with _client(args) as client:
        response = client.predict(args.job, args.image, top_k=args.top_k, checkpoint=args.checkpoint,
                                  annotate=bool(args.save))
    saved = _save_prediction_images(response, args.save) if args.save else {}
    if args.json:
        print(json.dumps(_prediction_json(response), indent=2))
        for note in _image_notes(response, saved):
            print(note, file=sys.stderr)
        return 0
    _plain(f"task {response.task or '?'}, image {response.width}x{response.height}, "
           f"{len(response.predictions)} prediction(s)")
    for rank, p in enumerate(response.predictions, 1):
        _plain(f"{rank}. {_describe_prediction(p)}")
    if response.text:
        _plain(f"text: {response.text}")
    if response.timings_ms:
        _plain(f"timings: {_format_timings(dict(response.timings_ms))}")
    for note in _image_notes(response, saved):
        _plain(note)
    return 0


def _plain(text: str) -> None:
    """A line as is: labels may hold [brackets] (no rich markup) and lines stay unwrapped."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


PREDICT_IMAGE_FIELDS = ("image_png", "mask_png")
TIMING_ORDER = ("preprocess", "inference", "postprocess", "total", "load")


def _save_prediction_images(response: pb.PredictResponse, path: str) -> dict[str, str]:
    """Write the annotated/super-resolved image to ``path`` (or the class-id mask when that is all
    there is; with both, the mask goes next to it as ``<stem>-mask<suffix>``). Returns field → path."""
    target = Path(path)
    if response.image_png:
        todo = {"image_png": target}
        if response.mask_png:
            todo["mask_png"] = target.with_name(f"{target.stem}-mask{target.suffix or '.png'}")
    elif response.mask_png:
        todo = {"mask_png": target}
    else:
        raise ClientError(None, f"this model's task ({response.task or 'unknown'}) returns no image; "
                                "run predict without --save")
    for field, file in todo.items():
        try:
            file.write_bytes(getattr(response, field))
        except OSError as exc:
            raise ClientError(None, f"cannot write {file}: {exc.strerror}") from None
    return {field: str(file) for field, file in todo.items()}


def _image_notes(response: pb.PredictResponse, saved: dict[str, str]) -> list[str]:
    notes = []
    for field in PREDICT_IMAGE_FIELDS:
        size = len(getattr(response, field))
        if field in saved:
            notes.append(f"{field} ({size} bytes) saved to {saved[field]}")
        elif size:
            notes.append(f"{field} ({size} bytes) not shown; --save PATH writes it")
    return notes


def _prediction_json(response: pb.PredictResponse) -> dict:
    """The response as proto JSON, every plain field shown (a box's 0.0 too), images left out."""
    shown = pb.PredictResponse()
    shown.CopyFrom(response)
    for field in PREDICT_IMAGE_FIELDS:
        shown.ClearField(field)
    data = _dict(shown, always_print_fields_with_no_presence=True)
    for field in PREDICT_IMAGE_FIELDS:
        data.pop(field, None)
    return data


def _describe_prediction(p: pb.Prediction) -> str:
    parts = [f"{p.label or p.index:<20} {p.score:.4f}"]
    if p.HasField("box"):
        parts.append(f"box [{p.box.x1:.1f}, {p.box.y1:.1f}, {p.box.x2:.1f}, {p.box.y2:.1f}]")
    if p.polygon:
        parts.append(f"polygon {len(p.polygon)} points")
    if p.keypoints:
        parts.append(f"{len(p.keypoints)} keypoints")
    if p.HasField("rotated_box"):
        r = p.rotated_box
        parts.append(f"rotated box [cx {r.cx:.1f}, cy {r.cy:.1f}, w {r.w:.1f}, h {r.h:.1f}, angle {r.angle:.3f} rad]")
    return "  ".join(parts)


def _format_timings(timings: dict[str, float]) -> str:
    keys = [k for k in TIMING_ORDER if k in timings] + sorted(set(timings) - set(TIMING_ORDER))
    return ", ".join(f"{k} {timings[k]:.1f} ms" for k in keys)


def cmd_ui(args) -> int:
    paths = Paths(resolve_home(args.home))
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", paths.mlflow_uri,
           "--default-artifact-root", paths.mlflow_artifacts.as_uri(), "--host", args.host, "--port", str(args.port)]
    console.print(f"MLflow UI on http://{args.host}:{args.port} (store {paths.mlflow_uri})")
    return subprocess.call(cmd)


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command` (the subcommand being run), the local `datasets` commands
    are built only when they run (their choices come from the dataset layer)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default=argparse.SUPPRESS, help="daemon address (default: $VISIONYARD_ADDRESS or the home's socket)")
    common.add_argument("--home", default=argparse.SUPPRESS, help="runner home (default: $VISIONYARD_HOME or ~/.visionyard)")
    common.add_argument("--token", default=argparse.SUPPRESS,
                        help="the daemon's token, for TCP (default: $VISIONYARD_TOKEN or the home's auth-token file)")
    common.add_argument("--tls-ca", default=argparse.SUPPRESS,
                        help="PEM file of the CA that signed the daemon's certificate (TLS; default: $VISIONYARD_TLS_CA)")
    common.add_argument("--client-cert", default=argparse.SUPPRESS,
                        help="this client's certificate (PEM), for a daemon started with --tls-client-ca")
    common.add_argument("--client-key", default=argparse.SUPPRESS, help="... and its private key (PEM)")
    parser = argparse.ArgumentParser(prog="visionyard", description="Train computer-vision models through one runner.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, description=None):
        p = sub.add_parser(name, parents=[common], help=help_text, description=description or help_text)
        p.set_defaults(func=func)
        return p

    p = add("serve", cmd_serve, "run the daemon in the foreground",
            description="Run the daemon in the foreground. Jobs outlive it: stopping the daemon (SIGTERM, "
                        "Ctrl-C) or losing it (a crash, kill -9) leaves running jobs running under their "
                        "supervisors, and the next start on the same home adopts them (or records how they "
                        "ended meanwhile); jobs it left preparing are prepared again. "
                        "--cancel-jobs-on-stop cancels running jobs at a clean stop instead.")
    p.add_argument("--tls-cert", type=Path, help="serve --listen over TLS with this certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="... and this private key (PEM)")
    p.add_argument("--tls-client-ca", type=Path, help="also require client certificates signed by this CA (PEM)")
    p.add_argument("--insecure-listen", action="store_true",
                   help="allow --listen on a non-loopback address without TLS (the token travels in clear text)")
    p.add_argument("--cancel-jobs-on-stop", action="store_true",
                   help="cancel running jobs when the daemon stops (default: they go on and are adopted "
                        "at the next start)")
    p.add_argument("--listen", help="also listen on HOST:PORT (e.g. 127.0.0.1:50051); clients must send the "
                                    "daemon's token (--token, $VISIONYARD_TOKEN, or the home's auth-token file, made "
                                    "0600 on first start). The token lets its holder run code as this user (it can "
                                    "add repos), like access to the Docker socket")
    p.add_argument("--max-concurrent-jobs", type=_positive_int,
                   default=os.environ.get("VISIONYARD_MAX_CONCURRENT_JOBS"),
                   help="jobs running at once (default 1, or $VISIONYARD_MAX_CONCURRENT_JOBS; with --backend ray "
                        f"{RAY_MAX_CONCURRENT_JOBS}: the cluster's free CPUs and GPUs decide)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="where jobs run: this machine (default), or a Ray cluster (--ray-address). A Ray job "
                        "leaves the queue when the cluster has its CPUs (and GPU) free, its env is built on the "
                        "node (--ray-node-home), it runs under its supervisor there and reports to --listen")
    p.add_argument("--ray-address", help="the Ray head's dashboard address, e.g. http://head:8265")
    p.add_argument("--ray-cpus-per-job", type=float, default=1.0,
                   help="CPUs a job reserves on the Ray cluster (default 1; its OMP_NUM_THREADS)")
    p.add_argument("--ray-python", default="python3",
                   help="the Python with Ray on the nodes' PATH: runs a job's agent and supervisor (default python3)")
    p.add_argument("--ray-node-home", default=DEFAULT_NODE_HOME,
                   help=f"where a node keeps envs, checkouts and job dirs (default {DEFAULT_NODE_HOME}); "
                        "a job's checkpoints and outputs come back to this daemon's home when it ends")
    p.add_argument("--ray-shared-home", action="store_true",
                   help="the nodes see this daemon's home at the same path (a shared file system): envs, "
                        "checkouts and job dirs are made there by the daemon, nothing is copied")
    from adapters.image_limits import DEFAULT_MAX_PIXELS  # the daemon's settings: what `serve` starts
    from runner.daemon.predictions import DEFAULT_CONCURRENT_PREDICTS, QUEUE_PER_SLOT
    from runner.launch.ray.uploads import UploadLimits

    limits = UploadLimits()
    p.add_argument("--upload-max-file-mb", type=_positive_int, default=limits.file_bytes >> 20,
                   help=f"the largest file a Ray node may send back into a job dir (default {limits.file_bytes >> 20})")
    p.add_argument("--upload-max-job-mb", type=_positive_int, default=limits.job_bytes >> 20,
                   help=f"what a Ray node may send back into one job dir in all (default {limits.job_bytes >> 20})")
    p.add_argument("--upload-max-files", type=_positive_int, default=limits.job_files,
                   help=f"how many files a Ray node may send back into one job dir (default {limits.job_files})")
    p.add_argument("--ray-lost-after", type=float, default=60.0,
                   help="seconds the Ray head may not answer before its running jobs fail as lost (default 60)")
    p.add_argument("--reporter-address",
                   help="HOST:PORT at which the nodes reach --listen (default: the --listen address)")
    p.add_argument("--gpus", default=None, help="GPU indices to hand out, e.g. 0,1 (default: detected)")
    p.add_argument("--max-concurrent-predicts", type=_positive_int, default=DEFAULT_CONCURRENT_PREDICTS,
                   help=f"predicts run at once (default {DEFAULT_CONCURRENT_PREDICTS}); {QUEUE_PER_SLOT}× as many "
                        "more wait their turn, the rest are refused (RESOURCE_EXHAUSTED)")
    p.add_argument("--predict-max-pixels", type=_positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse a predict image with more pixels (default {DEFAULT_MAX_PIXELS:,}); checked from "
                        "its header before anything is decoded")
    p.add_argument("--gc-env-days", type=float, default=30.0,
                   help="automatic gc: remove envs unused for this many days (default 30; 0: never)")
    p.add_argument("--gc-envs-max-gb", type=float, default=0.0,
                   help="automatic gc: keep envs under this many GB, least recently used go first (default 0: no cap)")
    p.add_argument("--gc-checkout-days", type=float, default=30.0,
                   help="automatic gc: remove repo checkouts no job uses, unused for this many days (default 30)")
    p.add_argument("--gc-job-days", type=float, default=0.0,
                   help="automatic gc: remove job dirs (logs, checkpoints) of jobs finished this many days ago; "
                        "records and MLflow runs stay (default 0: never)")
    p = add("gc", cmd_gc, "remove unused envs, repo checkouts and old job dirs, and say what was freed",
            description="Remove envs, repo checkouts and job dirs nobody needs: never what a queued, preparing "
                        "or running job uses; job records and MLflow runs stay. Limits not given take the "
                        "daemon's policy (visionyard serve --gc-*), which it also applies every hour.")
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    p.add_argument("--env-days", type=float, help="envs unused for more days than this (0: none)")
    p.add_argument("--envs-max-gb", type=float, help="then least recently used envs until under this size (0: no cap)")
    p.add_argument("--checkout-days", type=float, help="repo checkouts unused for more days than this (0: none)")
    p.add_argument("--job-days", type=float, help="job dirs of jobs finished more days ago than this (0: none)")
    p = add("submit", cmd_submit, "submit a job spec (YAML)")
    p.add_argument("spec")
    p.add_argument("--follow", "-f", action="store_true", help="show progress until the job ends")
    p.add_argument("--logs", action="store_true", help="with --follow, also print the job's log")
    p = add("status", cmd_status, "show one job")
    p.add_argument("job")
    p.add_argument("--json", action="store_true")
    p = add("list", cmd_list, "list jobs, newest first")
    p.add_argument("--json", action="store_true")
    p.add_argument("--state", action="append", choices=[s.lower() for s in pb.JobState.keys()][1:])
    p.add_argument("--failed", action="store_true", help="only failed jobs (the same as --state failed)")
    p.add_argument("--cause", action="append", choices=[cause_name(n) for n in pb.FailureCause.values()][1:],
                   help="only jobs that ended for this cause (repeatable)")
    p.add_argument("--limit", type=int, default=0)
    p = add("logs", cmd_logs, "print a job's log")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true")
    p = add("watch", cmd_watch, "follow a job's progress")
    p.add_argument("job")
    p.add_argument("--logs", action="store_true")
    p = add("cancel", cmd_cancel, "cancel a job")
    p.add_argument("job")
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    p = add("models", cmd_models, "list catalog models")
    p.add_argument("--framework")
    p.add_argument("--task")
    p.add_argument("--tag")
    p.add_argument("--json", action="store_true")
    p = add("schema", cmd_schema, "show a framework's advanced settings and presets")
    p.add_argument("framework")
    p.add_argument("--task")
    p.add_argument("--json", action="store_true")
    p = add("envs", cmd_envs, "list, prepare or remove environments")
    envs_sub = p.add_subparsers(dest="envs_command")
    envs_sub.add_parser("list", parents=[common])
    envs_sub.add_parser("prepare", parents=[common]).add_argument("name")
    envs_sub.add_parser("rm", parents=[common]).add_argument("name")
    p = add("repos", cmd_repos, "custom GitHub repos: list, add a YAML spec, show, prepare, remove")
    repos_sub = p.add_subparsers(dest="repos_command")
    repos_sub.add_parser("list", parents=[common])
    repos_sub.add_parser("add", parents=[common]).add_argument("spec", help="repo spec YAML")
    repos_sub.add_parser("show", parents=[common]).add_argument("name")
    repos_sub.add_parser("prepare", parents=[common]).add_argument("name")
    repos_sub.add_parser("rm", parents=[common]).add_argument("name")
    p = add("predict", cmd_predict, "predict with a job's checkpoint")
    p.add_argument("job")
    p.add_argument("image")
    p.add_argument("--top-k", type=_positive_int, default=5, help="at most this many predictions (default 5)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--json", action="store_true", help="print the response as JSON (images left out)")
    p.add_argument("--save", metavar="PATH",
                   help="write the annotated (or super-resolved) image, or a semantic mask, to PATH")
    if command in (None, "datasets"):
        from runner.cli import datasets  # local commands over the dataset layer

        datasets.add_parser(sub, common)
    else:
        sub.add_parser("datasets", help="check a dataset, or convert it to another format")
    p = add("ui", cmd_ui, "open the MLflow UI on the home's store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    args.address = getattr(args, "address", None)
    args.home = getattr(args, "home", None)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except ClientError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `visionyard status JOB --json | head -1`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's own flush at exit must not fail again
        return 128 + signal.SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
