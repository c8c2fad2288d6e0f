"""Runner RPCs for predictions: `Predict` through the warm worker of the job's model, and
`ListWorkers` / `StopWorkers` (`PredictStream`, many images through the same worker: `predict_stream`).

A predict is checked first (the job, its checkpoint, the image's header against the pixel limit)
on a pool thread, then waits for a slot of the predict gate (a few at once, a short queue, then
RESOURCE_EXHAUSTED), then hands its image to the worker and waits for the answer on the event loop:
a predict waiting for its worker holds no thread, so many of them never slow other calls. A client
that goes (cancels, or its deadline passes) leaves the worker as it is (it is warm for the next
one): an image not yet sent is left out, one being predicted has its answer dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

from adapters.catalog import default_input_size, find_model
from adapters.frameworks import get_catalog
from envs.specs import get_spec
from protos import visionyard_pb2 as pb
from runner.daemon.exports import newest_export
from runner.daemon.predictions import (PredictBusy, PredictOutputError, ThreadContext, check_boxes, check_input,
                                      response_from_json)
from runner.daemon.workers import (WORKER_LOG, PoolBusy, Worker, WorkerError, WorkerKey, WorkerPool, WorkerStopped)
from runner.launch.adapter_child import adapter_command
from runner.launch.jobdir import JOB_FILE
from runner.launch.local import child_environment
from runner.spec.validate import CUSTOM

RUNTIMES = ("pytorch", "onnx")
MODELS_DIR = "predict-models"  # under the home: a folder per model predicted without a job


@dataclass(frozen=True)
class ModelTarget:
    """A model predicted without a job, in the shape of a job's record where a worker needs one."""

    id: str
    spec: dict
    job_dir: str
    env_name: str = ""
    repo_spec: None = None


class PredictRpcs:
    """Mixed into RunnerServicer; needs `self.rt`, `self.pool`, `self.predict_gate`, `self.workers`
    and `_job_record`."""

    workers: WorkerPool

    async def Predict(self, request: pb.PredictRequest, context) -> pb.PredictResponse:
        loop = asyncio.get_running_loop()
        sync = ThreadContext(context, loop)
        try:
            record, key, boxes = await loop.run_in_executor(self.pool, self._predict_checks, request, sync)
            try:
                async with self.predict_gate.slot():
                    return await self._predict_warm(request, record, key, sync, context, boxes)
            except PredictBusy as exc:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except asyncio.CancelledError:
            sync.cancel()
            raise

    def _predict_checks(self, request: pb.PredictRequest, context) -> tuple:
        """The job and checkpoint to predict with and the request's boxes, or an abort saying why not; the image
        is refused here when its header says it is too large, or is not what the job's task predicts from (an
        image; a video file for a video task), and boxes that the job's model does not take or that are no
        boxes of the image (``check_boxes``), before they reach a worker."""
        record, key = self._predict_job(request, context)
        if not request.image:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image is empty")
        try:
            check_input(request.image, record.spec.get("task", ""), self.predict_gate.limits.max_pixels)
            boxes = check_boxes(request.boxes, request.image, record.spec.get("framework", ""),
                                record.spec.get("task", ""))
        except ValueError as exc:  # too large, not what the job's task predicts from, or boxes it can't take
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return record, key, boxes

    def _predict_job(self, request, context) -> tuple:
        """The job (`request.job_id`) and the worker key of its checkpoint (`request.checkpoint`) to predict
        with, by the runtime asked (`request.runtime`), or the model of `request.model` and its weights; an
        abort saying why not."""
        runtime = request.runtime or "pytorch"
        if runtime not in RUNTIMES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"runtime must be one of {', '.join(RUNTIMES)}")
        if not request.job_id and request.HasField("model"):
            if runtime != "pytorch":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "runtime onnx predicts with a job's export "
                                                                "(visionyard export JOB); a model without a job runs on pytorch")
            target, weights = self._model_target(request.model, context)
            return target, WorkerKey.of(target.id, weights, gpu=self._worker_gpu(request, target, context))
        record = self._job_record(request.job_id, context)
        if record.spec.get("framework") == CUSTOM:
            self._repo_spec(record, context)
            if predict_options(request):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"job {record.id} predicts with its repo's command, "
                                                                "which takes no labels or question")
        which = request.checkpoint or "best"
        checkpoint = {"best": record.best_checkpoint, "last": record.last_checkpoint}.get(which)
        if checkpoint is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "checkpoint must be 'best' or 'last'")
        if not checkpoint or not Path(checkpoint).exists():  # a file, or a save_pretrained folder
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} has no {which} checkpoint yet (state {record.state.value})")
        if not 0 <= request.top_k <= 1000:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "top_k must be between 1 and 1000 (0: 5)")
        onnx = ""
        if runtime == "onnx":
            if record.spec.get("framework") == CUSTOM:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"job {record.id} trained with a repo: it predicts with the repo's command, not onnx")
            onnx = newest_export(Path(record.job_dir), checkpoint)
            if not onnx:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"job {record.id} has no validated ONNX export of its {which} checkpoint; make one with "
                              f"`visionyard export {record.id} --format onnx`" + (" --checkpoint last" if which == "last" else ""))
        return record, WorkerKey.of(record.id, checkpoint, onnx, self._worker_gpu(request, record, context))

    def _worker_gpu(self, request, record, context) -> str:
        """The GPU a predict asks for (`request.device`, else the job's training device): "" for the CPU,
        `cuda` or `cuda:N`; an abort when this runner can never give it."""
        asked = request.device
        if asked and asked not in ("cpu", "auto", "cuda") and not (asked.startswith("cuda:") and asked[5:].isdigit()):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"device {asked!r} is not one: use cpu, cuda or cuda:N")
        devices = getattr(self.rt, "devices", None)
        local = devices is not None and hasattr(devices, "take_gpu")
        wanted = asked or str((record.spec.get("training") or {}).get("device") or "cpu")
        if wanted == "auto":
            wanted = "cuda" if local and devices.gpus else "cpu"
        if wanted == "cpu":
            return ""
        if not local or not devices.gpus or devices.check(wanted):
            if asked:  # asked for by name: say why not
                why = (devices.check(wanted) if local else None) or (
                    "the daemon runs jobs on a Ray cluster: its predict workers run on its own CPUs" if not local
                    else "this runner has no GPU")
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"device {asked}: {why}")
            return ""  # the job trained on a GPU this runner no longer has: its worker runs on the CPU
        return wanted

    async def _predict_warm(self, request: pb.PredictRequest, record, key: WorkerKey, sync: ThreadContext,
                            context, boxes: list | None = None) -> pb.PredictResponse:
        """The image through the job's worker; once more through a new worker when the pool
        stopped the one it reached (idle, or evicted, just then)."""
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            worker, image = await loop.run_in_executor(self.pool, self._predict_start, request, record, key,
                                                       sync)
            try:
                answer = worker.submit(image, request.top_k or 5, request.annotate,
                                       options=predict_options(request, boxes))
                result = await asyncio.wrap_future(answer)
            except WorkerStopped as exc:
                if attempt == 1:
                    continue
                await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except WorkerError as exc:
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"predict failed: {exc}")
            except ValueError as exc:  # this image's own error, from the worker
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"predict failed: {exc}")
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(image)
            try:
                return response_from_json(result, task=record.spec.get("task", ""))
            except PredictOutputError as exc:
                await context.abort(grpc.StatusCode.INTERNAL, str(exc))
        raise AssertionError("unreachable")

    def _predict_start(self, request: pb.PredictRequest, record, key: WorkerKey, context) -> tuple[Worker, str]:
        """The job's worker (started when it has none) and the image, written into the job dir."""
        worker = self._worker_for(record, key, context)
        return worker, self._image_file(record, request.image)

    def _worker_for(self, record, key: WorkerKey, context) -> Worker:
        """The worker of the job's checkpoint (by its runtime), started when there is none."""
        try:
            return self.workers.get(key, lambda: self._start_worker(record, key, context))
        except PoolBusy as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except WorkerError as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    @staticmethod
    def _image_file(record, image: bytes) -> str:
        fd, path = tempfile.mkstemp(dir=record.job_dir, prefix="predict-image-")
        with os.fdopen(fd, "wb") as out:
            out.write(image)
        return path

    def _model_target(self, ref: pb.ModelRef, context) -> tuple["ModelTarget", str]:
        """A model without a job, as its worker sees it: a job.json in a folder of its own under
        the home (`predict-models/`), the weights as its checkpoint ("" for pretrained)."""
        try:
            catalog = get_catalog(ref.framework) if ref.framework != CUSTOM else None
        except (KeyError, ValueError):
            catalog = None
        if catalog is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"model.framework '{ref.framework}' is not a framework. Valid: timm, ultralytics, transformers "
                          "(a custom repo predicts through its jobs)")
        if not ref.model:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model.model is required (e.g. resnet50, yolov8n, "
                                                            "google/vit-base-patch16-224 or a save_pretrained folder)")
        entry = find_model(catalog, ref.model)
        task = ref.task or (entry.tasks[0] if entry else catalog.tasks[0])
        if task not in catalog.tasks:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"model.task '{task}' is not a task of {catalog.name}. Valid: {', '.join(catalog.tasks)}")
        weights = ref.weights
        if weights:
            weights = str(Path(weights).expanduser())
            if not Path(weights).exists():
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"model.weights {weights} does not exist on the daemon's machine")
        spec = {"name": f"predict {ref.model}", "framework": catalog.name, "task": task, "model": ref.model,
                "pretrained": not weights, "image_size": ref.image_size or default_input_size(catalog, ref.model),
                "dataset": {"path": "", "format": catalog.dataset_formats[0]},
                "training": {"epochs": 1, "batch_size": 1, "learning_rate": 0.001, "device": "cpu"}}
        key = hashlib.sha256(json.dumps([spec, weights], sort_keys=True).encode()).hexdigest()[:12]
        folder = self.rt.paths.home / MODELS_DIR / key
        folder.mkdir(parents=True, exist_ok=True)
        job_file = folder / JOB_FILE
        if not job_file.exists():
            job_file.write_text(json.dumps({"job_id": f"model-{key}", "job_dir": str(folder),
                                            "checkpoint_dir": str(folder), "spec": spec}))
        return ModelTarget(f"model:{catalog.name}/{ref.model}", spec, str(folder)), weights

    def _repo_spec(self, record, context):
        """The repo spec a custom job predicts with (the repo's spec now: a `predict:` section added
        after the job trained serves it too), or an abort saying what the spec lacks."""
        from custom_repos.predict import MISSING
        from custom_repos.registry import UnknownRepoError
        from custom_repos.spec import parse_repo_spec

        name = record.spec.get("repo", "")
        try:
            spec = self.rt.repos.get(name)
        except UnknownRepoError:
            spec = parse_repo_spec(record.repo_spec, f"job {record.id}") if record.repo_spec else None
        if spec is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"repo '{name}' of job {record.id} is gone; add it again")
        if spec.predict is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"job {record.id} trained with repo '{name}': {MISSING}")
        return spec

    def _start_repo_worker(self, record, key: WorkerKey, context):
        from custom_repos.git import RepoError
        from custom_repos.translate import env_spec
        from runner.daemon.repo_worker import RepoCommandWorker

        spec = self._repo_spec(record, context)
        gone = threading.Event()
        context.add_callback(gone.set)
        try:
            checkout = self.rt.repo_cache.checkout(spec)
            env = self.rt.envs.ensure(env_spec(spec, checkout), cancel=gone)
        except (RepoError, OSError) as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"repo '{spec.name}' can't predict now: {exc}")
        except Exception as exc:  # noqa: BLE001 (the env build's own message says what failed)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the env of repo '{spec.name}' could not be built: {exc}")
        return RepoCommandWorker(key, spec, record.spec, Path(record.job_dir), checkout, Path(env.python),
                                 self.workers.limits)

    def _start_worker(self, record, key: WorkerKey, context) -> Worker:
        if record.spec.get("framework") == CUSTOM:
            return self._start_repo_worker(record, key, context)
        env = self._job_env(record, context)
        job_dir = Path(record.job_dir)
        if isinstance(record, ModelTarget):  # the model's own weights, or the given ones
            load = ["--weights", key.checkpoint] if key.checkpoint else ["--pretrained"]
        else:
            load = ["--checkpoint", key.checkpoint]
        if key.onnx:
            load += ["--onnx", key.onnx]
        command = adapter_command(Path(env.path) / "bin" / "python", job_dir, self.rt.paths, "--serve", *load,
                                  "--max-pixels", str(self.predict_gate.limits.max_pixels))
        env_vars = self._child_vars(command)
        gpu = self.rt.devices.take_gpu(key.gpu) if key.gpu else None
        if gpu is None:
            device = "cpu (every GPU is training)" if key.gpu else "cpu"
            return Worker(key, command, env_vars, job_dir / WORKER_LOG, self.workers.limits, device=device)
        env_vars["CUDA_VISIBLE_DEVICES"] = gpu.visible_devices
        try:
            return Worker(key, command, env_vars, job_dir / WORKER_LOG, self.workers.limits, device=f"cuda:{gpu.gpu}",
                          on_end=lambda: self.rt.devices.release(gpu))
        except BaseException:
            self.rt.devices.release(gpu)
            raise

    def _child_vars(self, command) -> dict[str, str]:
        """The environment of a predict worker or an export: GPUs hidden, the cores shared with the jobs."""
        env_vars = child_environment({"PYTHONPATH": os.pathsep.join(command.pythonpath), "CUDA_VISIBLE_DEVICES": "",
                                      **command.env})
        if threads := getattr(self.rt, "threads_per_job", 0):  # a worker shares the cores with the jobs
            env_vars.setdefault("OMP_NUM_THREADS", str(threads))
        return env_vars

    def _job_env(self, record, context):
        """The framework env the job trained in (built again here for a job trained on a Ray node), or an abort."""
        env = next(iter(self.rt.envs.list(record.env_name)), None) if record.env_name else None
        if env is None and not record.env_name:  # trained on a Ray node that built the env there: ours
            gone = threading.Event()
            context.add_callback(gone.set)  # the build stops when the client goes
            try:
                env = self.rt.envs.ensure(get_spec(get_catalog(record.spec["framework"]).env), cancel=gone)
            except Exception as exc:  # noqa: BLE001 (the build's own message says what failed)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the env to predict with could not be built: {exc}")
        if env is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"env {record.env_name or '?'} of job {record.id} is gone; prepare it again")
        return env

    def ListWorkers(self, request: pb.ListWorkersRequest, context) -> pb.ListWorkersResponse:
        return pb.ListWorkersResponse(workers=[
            pb.WorkerInfo(job_id=w.key.job_id, checkpoint=w.key.onnx or w.key.checkpoint, runtime=w.runtime,
                          pid=w.pid, state=w.state,
                          device=w.device, rss_bytes=w.rss_bytes, served=w.served, started_at=w.started_at,
                          idle_seconds=w.idle_seconds, load_ms=w.load_ms)
            for w in self.workers.workers() if not request.job_id or w.key.job_id == request.job_id])

    def StopWorkers(self, request: pb.StopWorkersRequest, context) -> pb.StopWorkersResponse:
        return pb.StopWorkersResponse(stopped=self.workers.stop(request.job_id or None))


def predict_options(request, boxes: list | None = None) -> dict:
    """A request's task options for the child (``labels``, ``question``; ``boxes``: its image's, checked), only
    those it sets."""
    options: dict = {"boxes": boxes} if boxes else {}
    if request is None:
        return options
    if request.labels:
        options["labels"] = [str(label) for label in request.labels]
    if request.question:
        options["question"] = request.question
    return options
