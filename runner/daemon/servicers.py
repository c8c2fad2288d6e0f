"""gRPC servicers: thin, they check input, delegate, and turn errors into status codes."""

from __future__ import annotations

import itertools
import logging
import math
import shutil
import sqlite3
import threading
from concurrent.futures import Executor, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from pathlib import Path

import grpc
from google.protobuf import json_format

from adapters.datasets.walk import CheckCancelled, Deadline, deadline_scope
from adapters.frameworks import all_catalogs, get_catalog
from envs.specs import get_spec
from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.daemon.convert import env_to_proto, history_to_proto, job_to_proto, model_to_proto, schema_to_proto
from runner.core.gc import Policy, collect_garbage
from runner.launch.ray import node_files, uploads
from runner.core.failures import Cause
from runner.core.runtime import Runtime
from runner.settings import LOW_DISK_BYTES
from runner.daemon.evals import EvalRpcs
from runner.daemon.exports import ExportRpcs
from runner.daemon.predict_rpcs import PredictRpcs
from runner.daemon.predict_stream import PredictStreamRpcs
from runner.daemon.predictions import PredictGate, PredictLimits
from runner.daemon.workers import WorkerPool
from runner.daemon.repo_rpcs import RepoRpcs
from runner.daemon.results import ResultsRpcs
from runner.daemon.sweep_rpcs import SweepRpcs
from runner.core.reports import apply_batch
from runner.core.scheduler import Scheduler
from runner.spec.validate import CUSTOM, validate_job_spec
from runner.spec.wire import SpecError, quote, spec_from_proto
from runner.auth import token_matches
from runner.core.store import BatchOutOfOrder, JobNotFound, JobState
from runner.daemon.watch import WatchHub, watch_job

log = logging.getLogger("visionyard.daemon")
SUBMIT_CHECK_SECONDS = 60.0  # a submitted spec's checks (its dataset read) take at most this long
MAX_LIST = 10_000
UPLOAD_WAIT_SECONDS = 30.0  # an upload of a job waits this long for the job's previous one to end


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 0


def _disk_full(folder: Path, free: int) -> str:
    return (f"the disk holding {folder} is full ({free / 2**20:.0f} MiB free); no job can be stored or run "
            "until space is freed there (old job dirs, envs: `visionyard gc`)")


def _record_or_abort(rt: Runtime, job_id: str, context: grpc.ServicerContext):
    if not job_id or len(job_id) > 64 or not job_id.isprintable():
        context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                      f"job_id {quote(job_id, 80)} is not a job id (1 to 64 printable characters; see `visionyard list`)")
    try:
        return rt.store.get(job_id)
    except JobNotFound:
        context.abort(grpc.StatusCode.NOT_FOUND, f"no job {quote(job_id, 80)} (see `visionyard list`)")


class RunnerServicer(RepoRpcs, PredictRpcs, PredictStreamRpcs, ExportRpcs, EvalRpcs, ResultsRpcs, SweepRpcs,
                     pb_grpc.RunnerServicer):
    def __init__(self, rt: Runtime, scheduler: Scheduler, gc_policy: Policy | None = None,
                 watch_hub: WatchHub | None = None, pool: Executor | None = None,
                 predict_limits: PredictLimits | None = None, workers: WorkerPool | None = None):
        self.rt, self.scheduler, self.gc_policy = rt, scheduler, gc_policy or Policy()
        self.watch_hub, self.pool = watch_hub, pool  # WatchJob's and Predict's, on the aio servers' loop
        self.predict_gate = PredictGate(predict_limits or PredictLimits())
        self.workers = workers or WorkerPool()  # warm predict workers; the daemon closes them at its stop
        self._checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="submit-check")

    def SubmitJob(self, request: pb.SubmitJobRequest, context) -> pb.Job:
        try:
            raw = spec_from_proto(request.spec)
        except (ValueError, TypeError, json_format.Error) as exc:  # e.g. NaN or Infinity in `advanced`
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid job spec:\n{exc}")
        spec = self._validated(raw, context)
        problem = self.rt.devices.check(spec.training.device)
        if problem:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid job spec:\ntraining.device: {problem}")
        repo_spec = self.rt.repos.get(spec.repo).model_dump(mode="json") if spec.framework == CUSTOM else None
        home = self.rt.paths.home
        if (free := _free_bytes(home)) < LOW_DISK_BYTES:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _disk_full(home, free))
        try:
            record = self.rt.store.create_job(spec.model_dump(mode="json", exclude_none=True), spec.display_name,
                                              spec.training.epochs, repo_spec=repo_spec)
        except sqlite3.OperationalError as exc:
            if "full" not in str(exc):
                raise
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _disk_full(home, _free_bytes(home)))
        self.scheduler.notify()
        return job_to_proto(record)

    def _validated(self, raw: dict, context):
        """The spec checked off the RPC threads, in bounded time: reading a dataset can be slow. A
        check past its time is stopped (the dataset walk and readers watch its deadline), so its
        thread is free for the next submit and what it read is let go."""
        started = threading.Event()
        deadline = Deadline(SUBMIT_CHECK_SECONDS)

        def check():
            started.set()
            with deadline_scope(deadline):
                return validate_job_spec(raw, repos=self.rt.repos)

        future = self._checks.submit(check)
        try:
            return future.result(timeout=SUBMIT_CHECK_SECONDS)
        except SpecError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid job spec:\n{exc}")
        except (FutureTimeout, CheckCancelled):
            deadline.cancel()
            future.cancel()
            if not started.is_set():
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              "the runner is busy checking other submitted datasets; submit again in a minute")
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid job spec:\ndataset.path: checking it took over {SUBMIT_CHECK_SECONDS:g} s; point it "
                          "at the dataset's own folder (`visionyard datasets check PATH` shows what it holds)")
        except OSError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid job spec:\na path in it can't be read ({exc.strerror or exc})")

    async def GetJob(self, request: pb.GetJobRequest, context) -> pb.Job:
        """On the loop itself: a job's row and latest metrics are one quick read (the store's lock
        is held for a write's few ms at most), so no thread is woken for it."""
        job_id = request.job_id
        if not job_id or len(job_id) > 64 or not job_id.isprintable():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"job_id {quote(job_id, 80)} is not a job id "
                                "(1 to 64 printable characters; see `visionyard list`)")
        try:
            record = self.rt.store.get(job_id)
            job = job_to_proto(record)
            job.history.extend(history_to_proto(self.rt.store.metric_points(record.id)))
            return job
        except JobNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no job {quote(job_id, 80)} (see `visionyard list`)")

    def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        known = {v.number for v in pb.JobState.DESCRIPTOR.values if v.number}
        if bad := [s for s in request.states if s not in known]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"states: {bad[:5]} are not job states. Valid: "
                          f"{', '.join(f'{pb.JobState.Name(n)} ({n})' for n in sorted(known))}")
        if not 0 <= request.limit <= MAX_LIST:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit must be between 0 (all) and {MAX_LIST}")
        causes = {v.number for v in pb.FailureCause.DESCRIPTOR.values if v.number}
        if bad := [c for c in request.causes if c not in causes]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"causes: {bad[:5]} are not failure causes. Valid: "
                          f"{', '.join(f'{pb.FailureCause.Name(n)} ({n})' for n in sorted(causes))}")
        states = [JobState(pb.JobState.Name(s)) for s in request.states]
        records = self.rt.store.list(states, request.limit or MAX_LIST,
                                     causes=[Cause.from_proto(c).value for c in request.causes])
        return pb.ListJobsResponse(jobs=[job_to_proto(r) for r in records])

    def CancelJob(self, request: pb.CancelJobRequest, context) -> pb.Job:
        record = _record_or_abort(self.rt, request.job_id, context)
        if record.state.is_terminal():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} is already {record.state.value}; nothing to cancel")
        self.scheduler.cancel(record.id)
        return job_to_proto(self.rt.store.get(record.id))

    async def WatchJob(self, request: pb.WatchJobRequest, context):
        """A coroutine per stream on the servers' event loop (`runner/daemon/watch.py`); it yields each
        event already serialized."""
        async for data in watch_job(self.rt.store, self.watch_hub, self.pool, request, context):
            yield data

    def ListModels(self, request: pb.ListModelsRequest, context) -> pb.ListModelsResponse:
        catalogs = all_catalogs()
        if request.framework:
            catalogs = [] if request.framework == CUSTOM else [self._catalog(request.framework, context)]
        models = [model_to_proto(c.name, m) for c in catalogs for m in c.models]
        if request.framework in ("", CUSTOM):
            models += [pb.ModelInfo(framework=CUSTOM, name=model, display_name=f"{repo.name}: {model}",
                                    tasks=list(repo.tasks), tags=[f"repo:{repo.name}"])
                       for repo, _ in self.rt.repos.list() for model in repo.models]
        models = [m for m in models if (not request.task or request.task in m.tasks)
                  and (not request.tag or request.tag in m.tags)]
        return pb.ListModelsResponse(models=models)

    def GetConfigSchema(self, request: pb.GetConfigSchemaRequest, context) -> pb.ConfigSchema:
        catalog = self._catalog(request.framework, context)
        if request.task and request.task not in catalog.tasks:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"'{request.task}' is not a {catalog.name} task. Valid: {', '.join(catalog.tasks)}")
        return schema_to_proto(catalog)

    def ListEnvs(self, request, context) -> pb.ListEnvsResponse:
        return pb.ListEnvsResponse(envs=[env_to_proto(e) for e in self.rt.envs.list()])

    def PrepareEnv(self, request: pb.PrepareEnvRequest, context) -> pb.EnvInfo:
        try:
            spec = get_spec(request.name)
        except (KeyError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.args[0])
        try:
            env = self.rt.envs.ensure(spec)
        except Exception as exc:
            context.abort(grpc.StatusCode.INTERNAL, f"env '{request.name}' could not be built: {exc}")
        for record in self.rt.envs.list(env.name):
            return env_to_proto(record)
        context.abort(grpc.StatusCode.INTERNAL, f"env {env.name} vanished after it was built")

    def RemoveEnv(self, request: pb.RemoveEnvRequest, context) -> pb.RemoveEnvResponse:
        busy = {r.env_name for r in self.rt.store.list([JobState.PREPARING, JobState.RUNNING]) if r.env_name}
        targets = [e.name for e in self.rt.envs.list(request.name)]
        if not targets:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no env '{request.name}' (see `visionyard envs list`)")
        in_use = sorted(set(targets) & busy)
        if in_use:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"env {', '.join(in_use)} is in use by a running job")
        return pb.RemoveEnvResponse(removed=self.rt.envs.remove(request.name))

    def CollectGarbage(self, request: pb.CollectGarbageRequest, context) -> pb.CollectGarbageResponse:
        limits = {}
        for name in ("env_max_idle_days", "envs_max_gb", "checkout_max_idle_days", "job_dir_max_age_days"):
            if request.HasField(name):
                value = getattr(request, name)
                if not math.isfinite(value) or value < 0:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{name} must be a number ≥ 0 (0 turns it off)")
                limits[name] = value
        removed = collect_garbage(self.rt, replace(self.gc_policy, **limits), dry_run=request.dry_run)
        return pb.CollectGarbageResponse(
            removed=[pb.Removal(kind=r.kind, name=r.name, path=str(r.path), bytes=r.bytes, reason=r.reason)
                     for r in removed],
            freed_bytes=sum(r.bytes for r in removed), dry_run=request.dry_run)

    def _job_record(self, job_id: str, context):
        return _record_or_abort(self.rt, job_id, context)

    def _catalog(self, framework: str, context):
        try:
            return get_catalog(framework)
        except (KeyError, ValueError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.args[0])


class ReporterServicer(pb_grpc.ReporterServicer):
    """Receives what children report; checks the per-job token on every batch."""

    def __init__(self, rt: Runtime, upload_limits: uploads.UploadLimits | None = None):
        self.rt = rt
        self.upload_limits = upload_limits or uploads.UploadLimits()
        self._upload_lock = threading.Lock()
        self._uploads: dict[str, threading.Lock] = {}  # job id → held while one of its uploads is received

    def _job(self, job_id: str, token: str, context):
        """The job whose token this is, still running; the call is aborted otherwise."""
        try:
            record = self.rt.store.get(job_id)
        except JobNotFound:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no job '{job_id}'")
        if record.id != job_id or not token_matches(token, record.token_hash):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "bad job token")
        if record.state.is_terminal():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"job {record.id} is already {record.state.value}")
        return record

    def Report(self, request: pb.ReportBatch, context) -> pb.ReportAck:
        record = self._job(request.job_id, request.token, context)
        try:
            apply_batch(self.rt, record.id, request)  # False for a resend of something already applied
        except BatchOutOfOrder as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.ReportAck(batch_seq=request.batch_seq)

    def Fetch(self, request: pb.FetchRequest, context):
        """What a job on a node without the daemon's files runs with (its plan, job dir, checkout):
        only what the daemon's own plan for the job names."""
        record = self._job(request.job_id, request.token, context)
        try:
            for data in node_files.fetch(self.rt.paths, record.id, request.what):
                yield pb.FileChunk(data=data)
        except node_files.NoPlan as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except node_files.FetchRefused as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # noqa: BLE001 (a plan or a file that can't be read: the node is told, the daemon goes on)
            log.warning("job %s: fetch of %r failed: %r", record.id, request.what[:40], exc)
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} has no {request.what[:40]!r} to fetch: {str(exc)[:200]}")

    def Upload(self, request_iterator, context) -> pb.UploadAck:
        """What a job on such a node left (its checkpoints, outputs, report journal and exit
        record), into its job dir; one upload of a job at a time."""
        first = next(request_iterator, None)
        if first is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "an upload's first chunk names the job and carries its token; this one sent no chunk")
        record = self._job(first.job_id, first.token, context)
        try:
            node_files.read_plan(self.rt.paths, record.id)
        except node_files.NoPlan as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        with self._upload_lock:
            lock = self._uploads.setdefault(record.id, threading.Lock())
        if not lock.acquire(timeout=UPLOAD_WAIT_SECONDS):
            context.abort(grpc.StatusCode.ABORTED, f"job {record.id} is receiving another upload; send again later")
        try:
            chunks = self._same_job(record.id, itertools.chain([first], request_iterator))
            files, size = uploads.receive(self.rt.paths.job_dir(record.id), chunks, self.upload_limits)
        except uploads.UploadTooLarge as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except uploads.UploadRefused as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            lock.release()
        return pb.UploadAck(files=files, bytes=size)

    @staticmethod
    def _same_job(job_id: str, chunks):
        for chunk in chunks:
            if chunk.job_id and chunk.job_id != job_id:
                raise uploads.UploadRefused("every chunk of an upload is for the job its first chunk names")
            yield chunk
