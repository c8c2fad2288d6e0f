"""The `visionyard` parser and main(): which command runs, with which options; a daemon's error
becomes `error: ...` and exit code 2."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from protos import visionyard_pb2 as pb
from runner.cli import commands as c
from runner.cli.names import cause_name
from runner.cli.output import Output
from runner.cli.version import version
from runner.client import ClientError
from runner.settings import DEFAULT_NODE_HOME

JSON_HELP = "print the answer as JSON (README.md, \"JSON output\", gives its shape)"


class _VersionAction(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"visionyard {version()}")
        parser.exit()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


SERVE_HELP = "run the daemon in the foreground"
SERVE_DESCRIPTION = ("Run the daemon in the foreground. Jobs outlive it: stopping the daemon (SIGTERM, "
                     "Ctrl-C) or losing it (a crash, kill -9) leaves running jobs running under their "
                     "supervisors, and the next start on the same home adopts them (or records how they "
                     "ended meanwhile); jobs it left preparing are prepared again. "
                     "--cancel-jobs-on-stop cancels running jobs at a clean stop instead.")


def _serve_options(p: argparse.ArgumentParser) -> None:
    """`serve`'s options, built only when it runs (their defaults come from the daemon's modules)."""
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
                        f"{c.RAY_MAX_CONCURRENT_JOBS}: the cluster's free CPUs and GPUs decide)")
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
    from runner.daemon.workers import WorkerLimits

    workers = WorkerLimits()
    p.add_argument("--predict-workers", type=_positive_int, default=workers.workers,
                   help=f"warm predict workers kept at once, one per model (default {workers.workers}); the idle one "
                        "used longest ago makes room for a new model")
    p.add_argument("--predict-memory-gb", type=float, default=workers.memory_bytes / 2**30,
                   help=f"their resident memory together (default {workers.memory_bytes / 2**30:g}); over it, idle "
                        "workers are stopped, longest unused first")
    p.add_argument("--predict-idle-seconds", type=float, default=workers.idle_seconds,
                   help=f"stop a worker unused this long (default {workers.idle_seconds:g})")
    p.add_argument("--predict-max-batch", type=_positive_int, default=workers.max_batch,
                   help=f"images a worker predicts in one batch (default {workers.max_batch}); those that arrive "
                        f"within {workers.max_wait_ms:g} ms of each other go together")
    p.add_argument("--gc-env-days", type=float, default=30.0,
                   help="automatic gc: remove envs unused for this many days (default 30; 0: never)")
    p.add_argument("--gc-envs-max-gb", type=float, default=0.0,
                   help="automatic gc: keep envs under this many GB, least recently used go first (default 0: no cap)")
    p.add_argument("--gc-checkout-days", type=float, default=30.0,
                   help="automatic gc: remove repo checkouts no job uses, unused for this many days (default 30)")
    p.add_argument("--gc-job-days", type=float, default=0.0,
                   help="automatic gc: remove job dirs (logs, checkpoints) of jobs finished this many days ago; "
                        "records and MLflow runs stay (default 0: never)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `command` (the subcommand being run), `serve`'s options and the local
    `datasets` commands are built only when they run (their defaults and choices come from the
    daemon's modules and the dataset layer)."""
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
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help=JSON_HELP)
    parser = argparse.ArgumentParser(prog="visionyard", description="Train computer-vision models through one runner.")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, description=None, json=False):
        parents = [common, as_json] if json else [common]
        p = sub.add_parser(name, parents=parents, help=help_text, description=description or help_text)
        p.set_defaults(func=func, json=False)
        return p

    if command in (None, "serve"):
        _serve_options(add("serve", c.cmd_serve, SERVE_HELP, description=SERVE_DESCRIPTION))
    else:
        sub.add_parser("serve", help=SERVE_HELP)
    p = add("gc", c.cmd_gc, "remove unused envs, repo checkouts and old job dirs, and say what was freed",
            description="Remove envs, repo checkouts and job dirs nobody needs: never what a queued, preparing "
                        "or running job uses; job records and MLflow runs stay. Limits not given take the "
                        "daemon's policy (visionyard serve --gc-*), which it also applies every hour.", json=True)
    p.add_argument("--dry-run", action="store_true", help="say what would be removed; remove nothing")
    p.add_argument("--env-days", type=float, help="envs unused for more days than this (0: none)")
    p.add_argument("--envs-max-gb", type=float, help="then least recently used envs until under this size (0: no cap)")
    p.add_argument("--checkout-days", type=float, help="repo checkouts unused for more days than this (0: none)")
    p.add_argument("--job-days", type=float, help="job dirs of jobs finished more days ago than this (0: none)")
    p = add("submit", c.cmd_submit, "submit a job spec (YAML)", json=True)
    p.add_argument("spec")
    p.add_argument("--follow", "-f", action="store_true", help="show progress until the job ends")
    p.add_argument("--logs", action="store_true", help="with --follow, also print the job's log")
    p = add("status", c.cmd_status, "show one job: its record, every metric, its files", json=True)
    p.add_argument("job")
    p = add("list", c.cmd_list, "list jobs, newest first: state, epoch, the task's primary metric, duration",
            json=True)
    p.add_argument("--state", action="append", choices=[s.lower() for s in pb.JobState.keys()][1:])
    p.add_argument("--failed", action="store_true", help="only failed jobs (the same as --state failed)")
    p.add_argument("--cause", action="append", choices=[cause_name(n) for n in pb.FailureCause.values()][1:],
                   help="only jobs that ended for this cause (repeatable)")
    p.add_argument("--limit", type=int, default=0)
    p = add("logs", c.cmd_logs, "print a job's log")
    p.add_argument("job")
    p.add_argument("--follow", "-f", action="store_true")
    p = add("watch", c.cmd_watch, "follow a job's progress; exit code 0 only on success",
            description="Follow a job's progress until it ends; exit code 0 only on success. With --json, "
                        "one JSON object per event, one per line, as the events come.", json=True)
    p.add_argument("job")
    p.add_argument("--logs", action="store_true", help="also show the job's log lines")
    p = add("cancel", c.cmd_cancel, "cancel a job", json=True)
    p.add_argument("job")
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    p = add("models", c.cmd_models, "list catalog models", json=True)
    p.add_argument("--framework")
    p.add_argument("--task")
    p.add_argument("--tag")
    p = add("schema", c.cmd_schema, "show a framework's advanced settings and presets", json=True)
    p.add_argument("framework")
    p.add_argument("--task")
    p = add("envs", c.cmd_envs, "list, prepare or remove environments")
    envs_sub = p.add_subparsers(dest="envs_command")
    envs_sub.add_parser("list", parents=[common, as_json], help="every env built (the default)")
    envs_sub.add_parser("prepare", parents=[common, as_json], help="build an env now").add_argument("name")
    envs_sub.add_parser("rm", parents=[common, as_json], help="remove an env (or every env of a spec)").add_argument("name")
    p = add("repos", c.cmd_repos, "custom GitHub repos: list, check a YAML spec, add it, show, prepare, remove")
    repos_sub = p.add_subparsers(dest="repos_command")
    repos_sub.add_parser("list", parents=[common, as_json], help="every repo (the default)")
    repos_sub.add_parser("add", parents=[common, as_json], help="add a repo spec").add_argument("spec", help="repo spec YAML")
    repos_sub.add_parser("show", parents=[common, as_json], help="a repo's spec").add_argument("name")
    repos_sub.add_parser("prepare", parents=[common, as_json], help="check out and build its env now").add_argument("name")
    repos_sub.add_parser("rm", parents=[common, as_json], help="remove a repo you added").add_argument("name")
    from runner.cli.repos_check import add_parser as add_repos_check  # a local command: asks no daemon

    add_repos_check(repos_sub, common, as_json)
    p = add("predict", c.cmd_predict, "predict with a job's checkpoint: one image, or many (files, folders, globs)",
            description="Predict with a job's checkpoint through its warm worker. One image: the predictions "
                        "(--save writes the annotated image). Several, a folder, a glob, a video, or --out: streamed "
                        "through the worker in batches, one line per image (--json: one JSON object per "
                        "line), and with --out DIR a predictions.jsonl and the annotated images there.")
    p.add_argument("job", metavar="JOB", help="the job whose checkpoint predicts (with --framework: the first image)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders (their images and videos, "
                                                              "recursively), glob patterns or videos")
    p.add_argument("--framework", help="predict with a model instead of a job: timm, ultralytics or transformers")
    p.add_argument("--model", help="with --framework: the model (resnet50, yolov8n, a hub id or a save_pretrained "
                                   "folder)")
    p.add_argument("--weights", help="with --framework: a weights file or folder (default: the model's pretrained "
                                     "weights, from the local cache)")
    p.add_argument("--task", help="with --framework: the task (default: the model's first)")
    p.add_argument("--out", metavar="DIR", help="write predictions.jsonl and the annotated images (a video's as an "
                                                "annotated video) into DIR")
    p.add_argument("--stride", type=_positive_int, default=1, help="of a video, predict every N-th frame (default 1)")
    p.add_argument("--format", choices=["jsonl", "coco"], default="jsonl",
                   help="with --out: coco also writes results.coco.json (COCO's results format: boxes, polygons, "
                        "keypoints; image_id = the image's index)")
    p.add_argument("--top-k", type=_positive_int, default=5, help="at most this many predictions (default 5)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--runtime", choices=["pytorch", "onnx"], default="pytorch",
                   help="onnx: predict with the checkpoint's validated ONNX export (visionyard export), onnxruntime")
    p.add_argument("--device", default="", help="the worker's device: cpu, cuda or cuda:N (default: the job's "
                                                "training device; a GPU only while training leaves one free)")
    p.add_argument("--json", action="store_true", help="print the response as JSON (images left out); for many "
                                                       "images, one JSON object per line")
    p.add_argument("--save", metavar="PATH",
                   help="write the annotated (or super-resolved) image, or a semantic mask, to PATH (depth "
                        "estimation: the coloured preview, and the 16-bit depth map beside it as <stem>-depth.png)")
    p.add_argument("--labels", type=lambda text: [label.strip() for label in text.split(",") if label.strip()],
                   default=[], metavar="A,B,...", help="zero-shot classification and detection: the labels to rank "
                                                       "or find (default: the job's classes)")
    p.add_argument("--question", default="", help="visual question answering: the question about the image")
    from runner.cli.predict import BOXES_HELP, parse_boxes

    p.add_argument("--boxes", type=parse_boxes, default=None, metavar="X1,Y1,X2,Y2;...|FILE.json", help=BOXES_HELP)
    if command in (None, "datasets"):
        from runner.cli import datasets  # local commands over the dataset layer

        datasets.add_parser(sub, common, as_json)
    else:
        sub.add_parser("datasets", help="check a dataset, or convert it to another format")
    p = add("export", c.cmd_export, "export a job's checkpoint to ONNX, validated against PyTorch",
            description="Export a job's checkpoint with its framework's exporter (Ultralytics export, torch.onnx) "
                        "into the job dir, and validate it: the same images (8 of the job's validation images, or "
                        "--images) through PyTorch and onnxruntime, the largest raw difference and how many "
                        "predictions agree. A failed validation is an error and keeps no model. Then "
                        "`visionyard predict JOB IMAGE --runtime onnx` predicts with it.", json=True)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--dynamic", action="store_true", help="free height and width too (batch is always free)")
    p.add_argument("--half", action="store_true", help="float16 weights (half the size)")
    p.add_argument("--opset", type=_positive_int, default=0, help="the ONNX opset (default: the exporter's)")
    p.add_argument("--images", nargs="+", metavar="PATH", default=[],
                   help="images or folders to validate with (default: the job's validation images)")
    p.add_argument("--count", type=_positive_int, default=8, help="how many images to validate with (default 8)")
    p.add_argument("--device", default="cpu", help="export and validate on cpu (default), cuda or cuda:N")
    p = add("results", c.cmd_results, "a job's validation results: per-class metrics and the confusion matrix",
            description="The validation results of a job's epoch (default: the epoch of its best checkpoint), as "
                        "its training recorded them: the metrics, a table of per-class metrics and the confusion "
                        "matrix (rows: ground truth; counts and normalised by row). --json prints one object with "
                        "every class and the whole matrix.", json=True)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--epoch", default="best", help="best (default), last or an epoch number")
    p.add_argument("--top", type=_positive_int, default=25,
                   help="classes shown when there are more: the lowest-scoring first (default 25)")
    p.add_argument("--plots", metavar="DIR", help="also write PNGs there: the confusion matrix (counts and "
                                                   "normalised), per-class bars, the training curves, the "
                                                   "precision-recall curves (detection-like tasks) and a gallery "
                                                   "of validation images with predictions and ground truth, from "
                                                   "the newest `visionyard eval JOB` of its val split")
    p.add_argument("--evals", action="store_true", help="list the job's evaluations (visionyard eval) instead")
    p = add("eval", c.cmd_eval, "evaluate a job's checkpoint with visionyard's evaluator (the same for every framework)",
            description="Run a job's checkpoint over a dataset through the predict path, in the job's env, and score "
                        "it with visionyard's evaluator of the task (pycocotools for boxes, masks and keypoints; one "
                        "confusion-matrix code for classification and segmentation; PSNR/SSIM; CER/WER), whatever "
                        "framework trained it: jobs evaluated on the same data compare to the digit. Default: the "
                        "job's validation split, as training split it. Shows what `results` shows; kept in the job "
                        "dir (evals/) and its MLflow run.", json=True)
    p.add_argument("job", metavar="JOB")
    p.add_argument("--dataset", metavar="PATH", help="a dataset folder (default: the job's own)")
    p.add_argument("--format", help="the dataset's format (with --dataset)")
    p.add_argument("--split", choices=["val", "train", "all"], default="val")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--batch", type=_positive_int, default=16, help="images per predict batch (default 16)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--top", type=_positive_int, default=25, help="classes shown when there are more (default 25)")
    p.add_argument("--plots", metavar="DIR", help="also write PNGs there: the confusion matrix, per-class bars, "
                                                   "the precision-recall curves (detection) and a gallery of the "
                                                   "images with predictions and ground truth, mistakes first")
    p = add("compare", c.cmd_compare, "jobs of one task side by side: metrics, curves, per-class values",
            description="Two or more jobs of one task (any frameworks and repos) side by side: each one's best "
                        "epoch with its primary and other metrics, how long it trained, where its numbers come "
                        "from, and the per-class values of the best epochs (with each job's difference to the "
                        "first) when every job recorded them. --plot draws the primary metric of each job per "
                        "epoch and per minute of training, overlaid.", json=True)
    p.add_argument("jobs", metavar="JOB", nargs="+")
    p.add_argument("--top", type=_positive_int, default=25,
                   help="classes shown when there are more: those the jobs differ most on (default 25)")
    p.add_argument("--plot", metavar="PNG", help="write the overlaid curves there")
    p = add("workers", c.cmd_workers, "list the warm predict workers (model, memory, images served, idle time)",
            json=True)
    p.add_argument("job", nargs="?", help="only this job's workers")
    p.add_argument("--stop", action="store_true", help="stop them (every worker, or the job's)")
    from runner.cli import sweeps  # its commands import what they show inside their functions

    sweeps.add_parsers(sub, add, common, as_json)
    p = add("ui", c.cmd_ui, "open the MLflow UI on the home's store")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p = sub.add_parser("completion", help="print a shell completion script: bash or zsh",
                       description="Print a completion script for bash or zsh, made from this parser. bash: "
                                   "`source <(visionyard completion bash)` (e.g. in ~/.bashrc); zsh: "
                                   "`source <(visionyard completion zsh)` in ~/.zshrc after compinit, or save it "
                                   "as _visionyard in a folder of $fpath.")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=c.cmd_completion, json=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    args.address = getattr(args, "address", None)
    args.home = getattr(args, "home", None)
    out = Output()
    try:
        code = args.func(args, out)
        sys.stdout.flush()
        return code
    except ClientError as exc:
        out.error(str(exc))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `visionyard list | head -1`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's own flush at exit must not fail again
        return 128 + signal.SIGPIPE
