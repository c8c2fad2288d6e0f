"""The `visionyard` commands, each on runner.client.Client: what to ask the daemon, and whether to
show the answer as text (runner/cli/views.py) or as JSON (runner/cli/jsonout.py)."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

from protos import visionyard_pb2 as pb
from runner.cli import jsonout, views
from runner.cli.output import Output
from runner.client import Client, ClientError
from runner.settings import Paths, resolve_home

RAY_MAX_CONCURRENT_JOBS = 256


def _client(args) -> Client:
    return Client(address=args.address, home=args.home, token=getattr(args, "token", None),
                  tls_ca=getattr(args, "tls_ca", None), client_cert=getattr(args, "client_cert", None),
                  client_key=getattr(args, "client_key", None))


def _seconds_since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"


def cmd_serve(args, out: Output) -> int:
    from runner.daemon.server import RayOptions, TcpOptions, serve
    from runner.core.gc import Policy
    from runner.auth import TOKEN_ENV
    from runner.daemon.predictions import PredictLimits
    from runner.daemon.workers import WorkerLimits
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
    workers = WorkerLimits(workers=args.predict_workers, idle_seconds=args.predict_idle_seconds,
                           memory_bytes=int(args.predict_memory_gb * 2**30), max_batch=args.predict_max_batch)
    serve(resolve_home(args.home), listen=args.listen, max_concurrent_jobs=max_jobs, gpus=args.gpus,
          cancel_jobs_on_stop=args.cancel_jobs_on_stop, gc_policy=policy, tcp=tcp, ray=ray, predict=predict,
          workers=workers)
    return 0


def cmd_submit(args, out: Output) -> int:
    if args.json and args.follow:
        raise SystemExit("visionyard submit: --json prints the job it stored and does not follow it; "
                         "follow it with `visionyard watch JOB --json` (one JSON object per event)")
    with _client(args) as client:
        job = client.submit(args.spec)
        if args.json:
            jsonout.print_message(job)
            return 0
        out.line(f"submitted job {job.id} ({job.name})")
        if not args.follow:
            return 0
        from runner.cli.progress import follow

        final = follow(client, job, out, show_logs=args.logs)
    views.show_job(final, out)
    return 0 if final.state == pb.SUCCEEDED else 1


def cmd_status(args, out: Output) -> int:
    with _client(args) as client:
        job = client.get(args.job)
    if args.json:
        jsonout.print_message(job)
    else:
        views.show_job(job, out)
    return 0


def cmd_list(args, out: Output) -> int:
    states = [pb.JobState.Value(s.upper()) for s in [*(args.state or []), *(["failed"] if args.failed else [])]]
    causes = [pb.FailureCause.Value(f"CAUSE_{c.upper()}") for c in args.cause or []]
    with _client(args) as client:
        jobs = client.list(states, args.limit, causes=causes)
    if args.json:
        jsonout.print_messages(jobs)
    else:
        views.show_jobs(jobs, out)
    return 0


def cmd_logs(args, out: Output) -> int:
    with _client(args) as client:
        for event in client.watch(args.job, logs_only=True, snapshot=not args.follow):
            print(event.log.text, flush=True)
    return 0


def cmd_watch(args, out: Output) -> int:
    with _client(args) as client:
        if args.json:
            for event in client.watch(args.job, include_logs=args.logs):
                jsonout.print_event(event)
            final = client.get(args.job)
        else:
            from runner.cli.progress import follow

            final = follow(client, client.get(args.job), out, show_logs=args.logs)
    if not args.json:
        views.show_job(final, out)
    return 0 if final.state == pb.SUCCEEDED else 1


def cmd_cancel(args, out: Output) -> int:
    with _client(args) as client:
        job = client.cancel(args.job)
        if args.wait:
            job = client.wait(job.id)
    if args.json:
        jsonout.print_message(job)
    else:
        out.line(f"job {job.id}: {views.state(job).text}")
    return 0


def cmd_models(args, out: Output) -> int:
    with _client(args) as client:
        models = client.models(args.framework or "", args.task or "", args.tag or "")
    if args.json:
        jsonout.print_messages(models)
    else:
        views.show_models(models, out)
    return 0


def cmd_schema(args, out: Output) -> int:
    with _client(args) as client:
        schema = client.schema(args.framework, args.task or "")
    if args.json:
        jsonout.print_message(schema)
    else:
        views.show_schema(schema, lambda preset: jsonout.to_dict(preset)["values"], out)
    return 0


def cmd_envs(args, out: Output) -> int:
    command = args.envs_command or "list"
    started = time.monotonic()
    with _client(args) as client:
        if command == "prepare":
            answer = client.prepare_env(args.name)
        elif command == "rm":
            answer = client.remove_env(args.name)
        else:
            answer = client.envs()
    if args.json:
        jsonout.print_json({"removed": answer} if command == "rm" else jsonout.to_json(answer))
    elif command == "list":
        views.show_envs(answer, out)
    elif command == "rm":
        for name in answer:
            out.line(f"removed {name}")
    else:
        out.line(f"env {answer.name} ready at {answer.path} ({_seconds_since(started)})")
    return 0


def cmd_gc(args, out: Output) -> int:
    with _client(args) as client:
        reply = client.collect_garbage(args.dry_run, env_max_idle_days=args.env_days, envs_max_gb=args.envs_max_gb,
                                       checkout_max_idle_days=args.checkout_days, job_dir_max_age_days=args.job_days)
    if args.json:
        jsonout.print_message(reply)
    else:
        views.show_gc(reply, out)
    return 0


def cmd_repos(args, out: Output) -> int:
    command = args.repos_command or "list"
    if command == "check":  # local: the spec is checked before any daemon knows it
        from runner.cli.repos_check import cmd_repos_check

        return cmd_repos_check(args, out)
    started = time.monotonic()
    with _client(args) as client:
        if command == "add":
            answer = client.add_repo(args.spec)
        elif command == "show":
            answer = client.repo(args.name)
        elif command == "rm":
            answer = client.remove_repo(args.name)
        elif command == "prepare":
            answer = client.prepare_repo(args.name)
        else:
            answer = client.repos()
    if args.json:
        jsonout.print_json(jsonout.to_json(answer))
    elif command == "list":
        views.show_repos(answer, out)
    elif command == "show":
        views.show_repo(answer, out)
    elif command == "add":
        verb = "replaced the spec of repo" if answer.replaced else "added repo"
        out.line(f"{verb} {answer.name} ({answer.url} @ {answer.commit}); "
                 f"submit jobs with `framework: custom` and `repo: {answer.name}`")
    elif command == "rm":
        out.line(f"removed repo {answer.name}")
    else:
        out.line(f"repo {answer.repo.name} checked out at {answer.checkout}; env {answer.env.name} ready "
                 f"({_seconds_since(started)})")
    return 0


def cmd_predict(args, out: Output) -> int:
    from runner.cli.predict import save_images, show_prediction
    from runner.cli.video import VIDEO_SUFFIXES

    if args.framework:  # a model without a job: the positional JOB was the first image
        if not args.model:
            raise ClientError(None, "--framework needs --model (e.g. --framework timm --model resnet50)")
        args.images = [args.job, *args.images]
        args.job = {"framework": args.framework, "model": args.model, "weights": _absolute(args.weights),
                    "task": args.task or ""}
    elif args.model or args.weights or args.task:
        raise ClientError(None, "--model, --weights and --task go with --framework (a model without a job)")
    if not args.images:
        raise ClientError(None, "predict needs an image (a file, a folder, a glob or a video) after the job")
    first = Path(args.images[0])
    if (args.out or len(args.images) > 1 or first.is_dir() or (not first.exists() and glob.has_magic(str(first)))
            or first.suffix.lower() in VIDEO_SUFFIXES):
        if args.save:
            raise ClientError(None, "--save writes one image's result; for many images use --out DIR")
        from runner.cli.predict_many import predict_many

        with _client(args) as client:
            return predict_many(client, args, out)
    from runner.cli.predict import boxes_of

    with _client(args) as client:
        response = client.predict(args.job, args.images[0], top_k=args.top_k, checkpoint=args.checkpoint,
                                  annotate=bool(args.save), runtime=args.runtime, device=args.device,
                                  labels=args.labels, question=args.question,
                                  boxes=boxes_of(args.boxes, args.images[0]))
    saved = save_images(response, args.save) if args.save else {}
    show_prediction(response, saved, out, as_json=args.json)
    return 0


def _absolute(path: str | None) -> str:
    """A local path as the daemon (whose working folder is not ours) finds it."""
    return str(Path(path).expanduser().absolute()) if path else ""


def cmd_export(args, out: Output) -> int:
    with _client(args) as client:
        reply = client.export(args.job, format=args.format, checkpoint=args.checkpoint, dynamic=args.dynamic,
                              half=args.half, opset=args.opset, images=[_absolute(p) for p in args.images],
                              count=args.count, device=args.device)
    if args.json:
        jsonout.print_json(jsonout.to_json(reply))
    else:
        views.show_export(reply, out)
    return 0


def cmd_results(args, out: Output) -> int:
    from runner.cli import results

    if args.evals:
        with _client(args) as client:
            evals = client.evaluations(args.job)
        if args.json:
            jsonout.print_json([results.eval_json(e) for e in evals])
        else:
            results.show_evals(args.job, evals, out)
        return 0
    with _client(args) as client:
        reply = client.results(args.job, args.epoch)
    written = results.write_plots(reply, args.plots) if args.plots else []
    if args.json:
        jsonout.print_json({**results.results_json(reply), **({"plots": written} if args.plots else {})})
    else:
        results.show_results(reply, out, top=args.top)
        for path in written:
            out.line(f"wrote {path}")
    return 0


def cmd_eval(args, out: Output) -> int:
    from runner.cli import results

    with _client(args) as client:
        reply = client.evaluate(args.job, checkpoint=args.checkpoint, dataset=_absolute(args.dataset),
                                format=args.format or "", split=args.split, batch=args.batch, device=args.device)
    answer = pb.GetResultsResponse(result=reply.result)
    written = results.write_plots(answer, args.plots) if args.plots else []
    if args.json:
        jsonout.print_json({**results.eval_json(reply), **({"plots": written} if args.plots else {})})
    else:
        results.show_eval(reply, out, top=args.top)
        for path in written:
            out.line(f"wrote {path}")
    return 0


def cmd_compare(args, out: Output) -> int:
    from runner.cli import results

    with _client(args) as client:
        reply = client.compare(args.jobs)
    written = results.write_compare_plot(reply, args.plot) if args.plot else ""
    if args.json:
        jsonout.print_json(results.compare_json(reply))
    else:
        results.show_compare(reply, out, top=args.top)
        if written:
            out.line(f"wrote {written}")
    return 0


def cmd_workers(args, out: Output) -> int:
    with _client(args) as client:
        if args.stop:
            stopped = client.stop_workers(args.job or "")
            if args.json:
                jsonout.print_json({"stopped": stopped})
            else:
                out.line(f"stopped {stopped} predict worker(s)")
            return 0
        workers = client.workers(args.job or "")
    if args.json:
        jsonout.print_json(jsonout.to_json(workers))
    else:
        views.show_workers(workers, out)
    return 0


def cmd_ui(args, out: Output) -> int:
    paths = Paths(resolve_home(args.home))
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", paths.mlflow_uri,
           "--default-artifact-root", paths.mlflow_artifacts.as_uri(), "--host", args.host, "--port", str(args.port)]
    out.line(f"MLflow UI on http://{args.host}:{args.port} (store {paths.mlflow_uri})")
    return subprocess.call(cmd)


def cmd_completion(args, out: Output) -> int:
    from runner.cli.app import build_parser
    from runner.cli.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return 0
