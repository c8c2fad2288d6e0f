"""`EvaluateJob`: a job's checkpoint over a dataset through the predict path, scored by visionyard's own evaluator.

The evaluation runs as a child in the job's framework env (``python -m adapters.entrypoint --eval``,
``adapters.evaluate``), GPUs hidden unless the request names one, on a pool thread of the daemon,
killed when the client goes. It writes into a folder of its own under the job dir::

    jobs/<id>/evals/<checkpoint>-<split>[-<dataset folder>-<path hash>]/eval.json, eval.log

The same evaluation again replaces it; one that fails keeps its log in ``<name>.failed/``. A running
job is evaluated on a copy of its checkpoint (its training may replace the file meanwhile), and its
training is not disturbed. A finished evaluation is added to the job's MLflow run (``evals/<name>/``,
metrics ``eval/<name>/val/...``). `GetResults` with ``evals`` lists a job's evaluations;
`CompareJobs` uses them when every job has one on the same data (the dataset hash).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import grpc

from adapters.evaluation.record import ValidationRecord
from protos import visionyard_pb2 as pb
from runner.daemon.job_children import keep_failed, last_error, replace_dir, run_child
from runner.daemon.results import result_to_proto
from runner.launch.adapter_child import adapter_command
from runner.spec.validate import CUSTOM

EVALS = "evals"  # under a job dir
EVAL_FILE = "eval.json"  # adapters.evaluate's, the daemon's copy
LOG_FILE = "eval.log"
SPLITS = ("val", "train", "all")
EVAL_TIMEOUT = 3600.0  # seconds for one evaluation
MAX_EVALS = 2  # at once, in the whole daemon (each is a child with torch and the model)
ACTIVE = ("QUEUED", "PREPARING", "RUNNING")


def eval_name(which: str, split: str, dataset: str) -> str:
    """``best-val`` for the job's own data; another dataset adds its folder's name and a hash of its path."""
    if not dataset:
        return f"{which}-{split}"
    folder = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(dataset).name)[:40]
    return f"{which}-{split}-{folder}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"


def read_evals(job_dir: Path) -> list[tuple[Path, ValidationRecord]]:
    """(folder, record) of each evaluation kept in the job dir, newest first."""
    found = []
    for path in (Path(job_dir) / EVALS).glob(f"*/{EVAL_FILE}"):
        if path.parent.name.startswith("."):
            continue
        try:
            found.append((path.stat().st_mtime, path.parent, ValidationRecord.from_json(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return [(folder, record) for _, folder, record in sorted(found, key=lambda f: f[0], reverse=True)]


def eval_to_proto(folder: Path, record: ValidationRecord, details: bool = True) -> pb.EvalResponse:
    if not details:
        record.per_class, record.confusion_matrix, record.per_image, record.curves = [], None, None, None
    path = folder / EVAL_FILE
    return pb.EvalResponse(name=folder.name, result=result_to_proto(record, best=False), dataset=record.dataset or "",
                           dataset_hash=record.dataset_hash or "", checkpoint=record.checkpoint or "",
                           split=record.split or "", images=int(record.images or 0), seconds=float(record.seconds or 0),
                           path=str(path), created_at=path.stat().st_mtime if path.exists() else 0.0)


class EvalRpcs:
    """The servicer's evaluation methods (mixed into ``RunnerServicer``)."""

    _eval_gate = threading.BoundedSemaphore(MAX_EVALS)
    _evaluating: set[tuple[str, str]] = set()  # (job id, eval name) running
    _evaluating_lock = threading.Lock()

    async def EvaluateJob(self, request: pb.EvalRequest, context) -> pb.EvalResponse:
        from runner.daemon.predictions import ThreadContext

        loop = asyncio.get_running_loop()
        sync = ThreadContext(context, loop)
        try:
            return await loop.run_in_executor(self.pool, self._evaluate, request, sync)
        except asyncio.CancelledError:
            sync.cancel()
            raise

    def _evaluate(self, request: pb.EvalRequest, context) -> pb.EvalResponse:
        split = request.split or "val"
        if split not in SPLITS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"split {split[:40]!r} is not one: use {', '.join(SPLITS)}")
        if not 0 <= request.batch <= 256:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch must be between 1 and 256 images (0: 16)")
        device = request.device or "cpu"
        if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"device {device!r} is not one: use cpu, cuda or cuda:N")
        dataset = str(Path(request.dataset).expanduser().absolute()) if request.dataset else ""
        if dataset and not Path(dataset).is_dir():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"dataset: {dataset} is not a folder on the daemon's machine")
        if dataset and not request.format:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "format: say the dataset's format (e.g. imagefolder, yolo, "
                                                            "coco; `visionyard datasets check` names it)")
        record = self._job_record(request.job_id, context)
        if record.spec.get("framework") == CUSTOM:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} trained with repo '{record.spec.get('repo', '')}': eval runs a framework's "
                          "predict path; a repo's checkpoint is evaluated by the repo's own scripts")
        which = request.checkpoint or "best"
        checkpoint = {"best": record.best_checkpoint, "last": record.last_checkpoint}.get(which)
        if checkpoint is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "checkpoint must be 'best' or 'last'")
        if not checkpoint or not Path(checkpoint).exists():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} has no {which} checkpoint {'yet ' if record.state.value in ACTIVE else ''}"
                          f"(state {record.state.value}){': it is gone from ' + checkpoint if checkpoint else ''}")
        env = self._job_env(record, context)
        name = eval_name(which, split, dataset)
        with self._evaluating_lock:
            if (record.id, name) in self._evaluating:
                context.abort(grpc.StatusCode.ABORTED, f"an evaluation {name} of job {record.id} is running; wait for it")
            self._evaluating.add((record.id, name))
        try:
            with self._eval_gate:
                return self._run_eval(request, record, env, checkpoint, name, dataset, split, device, context)
        finally:
            with self._evaluating_lock:
                self._evaluating.discard((record.id, name))

    def _run_eval(self, request, record, env, checkpoint: str, name: str, dataset: str, split: str, device: str,
                  context) -> pb.EvalResponse:
        job_dir = Path(record.job_dir)
        evals = job_dir / EVALS
        evals.mkdir(parents=True, exist_ok=True)
        for stale in evals.glob(f".partial-{name}-*"):  # of an evaluation its daemon did not see end
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(dir=evals, prefix=f".partial-{name}-"))
        try:
            evaluated = checkpoint
            if record.state.value in ACTIVE:  # its training may replace the file while the model loads
                evaluated = str(partial / "checkpoint" / Path(checkpoint).name)
                copy = shutil.copytree if Path(checkpoint).is_dir() else shutil.copy2
                Path(evaluated).parent.mkdir()
                copy(checkpoint, evaluated)
            args = ["--eval", "--checkpoint", evaluated, "--out", str(partial), "--split", split,
                    "--batch", str(request.batch or 16), "--device", device]
            args += ["--dataset", dataset, "--format", request.format] if dataset else []
            command = adapter_command(Path(env.path) / "bin" / "python", job_dir, self.rt.paths, *args)
            env_vars = self._child_vars(command)
            if device != "cpu":  # the GPU the request names: the daemon's own view of the devices
                env_vars.pop("CUDA_VISIBLE_DEVICES", None)
                if "CUDA_VISIBLE_DEVICES" in os.environ:
                    env_vars["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
            code = run_child(command, env_vars, partial / LOG_FILE, context, "the evaluation", EVAL_TIMEOUT)
            shutil.rmtree(partial / "checkpoint", ignore_errors=True)
            try:
                found = ValidationRecord.from_json((partial / EVAL_FILE).read_text())
            except (OSError, ValueError, TypeError):
                found = None
            if code != 0 or found is None:
                kept = keep_failed(partial, evals / name)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"evaluation of job {record.id} failed: "
                              f"{last_error(kept / LOG_FILE, 'eval failed:').removeprefix('eval failed: ')} "
                              f"(log: {kept / LOG_FILE})")
            found.checkpoint, found.job = checkpoint, record.id
            (partial / EVAL_FILE).write_text(found.to_json())
            final = evals / name
            replace_dir(partial, final)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        self._track_eval(record, name, final, found)
        return eval_to_proto(final, found)

    def _track_eval(self, record, name: str, folder: Path, found: ValidationRecord) -> None:
        if not record.mlflow_run_id:
            return
        metrics = {f"eval/{name}/{key}": float(value) for key, value in found.metrics.items()
                   if isinstance(value, (int, float))}
        self.rt.tracker.log_export(record.mlflow_run_id, name, [folder / EVAL_FILE, folder / LOG_FILE], metrics,
                                   {f"visionyard.eval.{name}": found.dataset_hash or ""}, under=EVALS)
