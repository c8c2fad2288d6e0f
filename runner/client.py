"""A small Python client for the Runner service; the CLI is built on it.

    from runner.client import Client
    client = Client()                      # finds the daemon like the CLI does
    job = client.submit("job.yaml")        # a path, a dict, or a protobuf JobSpec
    for event in client.watch(job.id):     # resumes by sequence number if the stream drops
        ...
    final = client.wait(job.id)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import grpc

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc as pb_grpc
from runner.auth import TOKEN_ENV, TokenCredentials, read_token
from runner.settings import MAX_IMAGE_BYTES, resolve_address, resolve_home
from runner.spec.wire import TERMINAL_STATES, SpecError, spec_to_proto  # noqa: F401 (the states a job never leaves)

TLS_CA_ENV = "VISIONYARD_TLS_CA"
CLIENT_CERT_ENV, CLIENT_KEY_ENV = "VISIONYARD_CLIENT_CERT", "VISIONYARD_CLIENT_KEY"


#: Answers up to 64 MiB (gRPC's default is 4): a 2,000-class confusion matrix is a few MB.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]


class ClientError(RuntimeError):
    """A failed call, with the daemon's gRPC status code and its message."""

    def __init__(self, code: grpc.StatusCode | None, message: str):
        self.code = code
        super().__init__(message)


def load_spec_file(path: str | os.PathLike) -> dict[str, Any]:
    import yaml  # only a submit reads YAML: every other call starts without it

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ClientError(None, f"cannot read job spec '{path}': {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ClientError(None, f"'{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ClientError(None, f"'{path}' must hold a mapping (framework:, task:, model:, dataset: ...)")
    return data


def load_sweep(spec: str | os.PathLike | dict) -> dict[str, Any]:
    """A sweep spec with its `base:` inline: a job file's path (relative to the sweep file) is read here,
    and the base's relative paths are made absolute, as for a submitted job file."""
    folder = Path.cwd()
    if not isinstance(spec, dict):
        folder = Path(spec).resolve().parent
        spec = load_spec_file(spec)
    spec = dict(spec)
    base = spec.get("base")
    if isinstance(base, (str, os.PathLike)):
        path = Path(base).expanduser()
        path = path if path.is_absolute() else folder / path
        try:
            spec["base"] = _relative_to(load_spec_file(path), path.resolve().parent)
        except ClientError as exc:
            raise ClientError(None, f"base: {exc}") from None
    elif isinstance(base, dict):
        spec["base"] = _relative_to(base, folder)
    return spec


def _as_spec(spec: str | os.PathLike | dict | pb.JobSpec) -> pb.JobSpec:
    if isinstance(spec, pb.JobSpec):
        return spec
    if not isinstance(spec, dict):
        spec = _relative_to(load_spec_file(spec), Path(spec).resolve().parent)
    try:
        return spec_to_proto(spec)
    except SpecError as exc:
        raise ClientError(grpc.StatusCode.INVALID_ARGUMENT, f"invalid job spec:\n{exc}") from None


def _relative_to(spec: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative paths in a spec file are relative to the file's folder (the daemon may run elsewhere)."""
    def fix(value):
        if isinstance(value, str) and value and not value.startswith("~") and not Path(value).is_absolute():
            return str(folder / value)
        return value

    spec = dict(spec)
    if isinstance(spec.get("dataset"), dict):
        spec["dataset"] = {**spec["dataset"], "path": fix(spec["dataset"].get("path"))}
    for key in ("weights", "resume"):
        if key in spec:
            spec[key] = fix(spec[key])
    return spec


def _target(job_or_model) -> dict[str, Any]:
    """A predict request's target: a job id, or a model without a job (a ModelRef or its fields)."""
    if isinstance(job_or_model, str):
        return {"job_id": job_or_model}
    if isinstance(job_or_model, dict):
        return {"model": pb.ModelRef(**job_or_model)}
    return {"model": job_or_model}


def _read_image(path: Path) -> bytes:
    """The image's bytes, refused by its size before they are read when the daemon would refuse
    them (a file, or anything that reads on and on: at most one byte over the limit is read)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_IMAGE_BYTES:
                raise ClientError(None, _too_large(f"image '{path}'", size))
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as exc:
        raise ClientError(None, f"cannot read image '{path}': {exc.strerror or exc}") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise ClientError(None, _too_large(f"image '{path}'", None))
    return data


def _boxes(boxes) -> list[pb.Box]:
    """``[[x1, y1, x2, y2], ...]`` as ``pb.Box``es; ClientError naming ``boxes`` for anything else."""
    found = []
    for box in boxes or ():
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ClientError(None, f"boxes: {box!r} is not a box [x1, y1, x2, y2] (4 numbers)") from None
        found.append(pb.Box(x1=x1, y1=y1, x2=x2, y2=y2))
    return found


def _too_large(what: str, size: int | None) -> str:
    limit = f"{MAX_IMAGE_BYTES / 2**20:.1f} MiB"
    size_text = f"{size / 2**20:.1f} MiB" if size is not None else f"over {limit}"
    return (f"{what} is {size_text}; the daemon takes images of up to {limit} (its message limit): "
            "scale it down or compress it first")


class Client:
    """A connection to the daemon: its unix socket by default, or `address` (HOST:PORT over TCP).

    Over TCP the daemon's token goes with every call: `token`, else ``$VISIONYARD_TOKEN``, else
    the home's token file when this user can read it. `tls_ca` (or ``$VISIONYARD_TLS_CA``) is the
    PEM file that signed the daemon's certificate; with it the connection is TLS, and
    `client_cert`/`client_key` (``$VISIONYARD_CLIENT_CERT``/``_KEY``) are this client's, for a
    daemon that requires client certificates.
    """

    def __init__(self, address: str | None = None, home: str | os.PathLike | None = None, timeout: float = 30,
                 token: str | None = None, tls_ca: str | os.PathLike | None = None,
                 client_cert: str | os.PathLike | None = None, client_key: str | os.PathLike | None = None):
        self.address = resolve_address(address, home)
        self.timeout = timeout
        tls_ca = tls_ca or os.environ.get(TLS_CA_ENV)
        client_cert = client_cert or os.environ.get(CLIENT_CERT_ENV)
        client_key = client_key or os.environ.get(CLIENT_KEY_ENV)
        if tls_ca:
            credentials = grpc.ssl_channel_credentials(
                Path(tls_ca).read_bytes(), private_key=Path(client_key).read_bytes() if client_key else None,
                certificate_chain=Path(client_cert).read_bytes() if client_cert else None)
            self.channel = grpc.secure_channel(self.address, credentials, options=CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        token = token or os.environ.get(TOKEN_ENV) or (None if self.address.startswith("unix:")
                                                       else read_token(resolve_home(home)))
        if token:
            self.channel = grpc.intercept_channel(self.channel, TokenCredentials(token))
        self.stub = pb_grpc.RunnerStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request, timeout: float | None = -1):
        try:
            return getattr(self.stub, method)(request, timeout=self.timeout if timeout == -1 else timeout)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> ClientError:
        code = exc.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return ClientError(code, f"no visionyard daemon answers at {self.address} "
                                     "(start one with `visionyard serve`, or pass --address)")
        return ClientError(code, exc.details() or str(code))

    # ------------------------------------------------------------ jobs

    def submit(self, spec: str | os.PathLike | dict | pb.JobSpec) -> pb.Job:
        return self._call("SubmitJob", pb.SubmitJobRequest(spec=_as_spec(spec)))

    def get(self, job_id: str) -> pb.Job:
        return self._call("GetJob", pb.GetJobRequest(job_id=job_id))

    def list(self, states: list[int] | None = None, limit: int = 0, causes: list[int] | None = None) -> list[pb.Job]:
        """Jobs, newest first; only those in `states` (``pb.FAILED``, ...) and of `causes`
        (``pb.CAUSE_OUT_OF_MEMORY``, ...) when given."""
        return list(self._call("ListJobs", pb.ListJobsRequest(states=states or [], limit=limit,
                                                              causes=causes or [])).jobs)

    def cancel(self, job_id: str) -> pb.Job:
        return self._call("CancelJob", pb.CancelJobRequest(job_id=job_id))

    def watch(self, job_id: str, after_seq: int = 0, include_logs: bool = False, logs_only: bool = False,
              snapshot: bool = False, reconnect_seconds: float = 30) -> Iterator[pb.JobEvent]:
        """Events in order until the job is final; a dropped stream resumes after the last seq."""
        deadline = None
        while True:
            request = pb.WatchJobRequest(job_id=job_id, after_seq=after_seq, include_logs=include_logs,
                                         logs_only=logs_only, snapshot=snapshot)
            try:
                for event in self.stub.WatchJob(request):
                    deadline = None
                    after_seq = event.seq
                    yield event
                return
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise self._error(exc) from None
                deadline = deadline or time.monotonic() + reconnect_seconds
                if time.monotonic() > deadline:
                    raise self._error(exc) from None
                time.sleep(0.5)

    def wait(self, job_id: str) -> pb.Job:
        for _ in self.watch(job_id):
            pass
        return self.get(job_id)

    def predict(self, job_id: "str | pb.ModelRef | dict", image: str | os.PathLike | bytes, top_k: int = 5,
                checkpoint: str = "best", annotate: bool = False, runtime: str = "pytorch",
                device: str = "", labels: list[str] | None = None, question: str = "",
                boxes=None) -> pb.PredictResponse:
        """Run a job's checkpoint on one image (a path or the encoded bytes). Instead of a job id, a
        model without a job: ``{"framework": "timm", "model": "resnet50", "weights": "r50.pth"}``
        (a :class:`~protos.visionyard_pb2.ModelRef`; no weights: its pretrained ones, from the
        daemon's local cache).

        The response has the task, the predictions (best first; box, polygon, keypoints,
        rotated box where the task has them), the image size and timings; with ``annotate``
        also ``image_png``, the image with the predictions drawn (for tasks that draw).
        ``runtime="onnx"``: the checkpoint's newest validated ONNX export (:meth:`export`) runs it.
        ``device``: ``cpu``, ``cuda`` or ``cuda:N`` for the model's worker ("": the job's training device); a
        GPU worker takes a GPU only while training leaves one free, else it runs on the CPU.
        ``labels``: what a zero-shot classification or detection job ranks or finds (default: its classes);
        ``question``: what a visual question answering job answers (``text``). A depth estimation job's
        answer has ``depth_png`` (16-bit, millimetres). ``boxes``: a top-down pose job's people, ``[[x1, y1,
        x2, y2], ...]`` in the image's pixels (none: the whole image as one box); other jobs refuse them.
        An image over :data:`~runner.settings.MAX_IMAGE_BYTES` is refused before it is read.
        """
        data = image if isinstance(image, bytes) else _read_image(Path(image))
        if len(data) > MAX_IMAGE_BYTES:
            raise ClientError(None, _too_large("the image", len(data)))
        request = pb.PredictRequest(**_target(job_id), image=data, top_k=top_k, checkpoint=checkpoint,
                                    annotate=annotate, runtime=runtime, device=device, labels=list(labels or []),
                                    question=question, boxes=_boxes(boxes))
        return self._call("Predict", request, timeout=None)

    def predict_many(self, job_id: "str | pb.ModelRef | dict", images, top_k: int = 5, checkpoint: str = "best",
                     annotate: bool = False, runtime: str = "pytorch", device: str = "",
                     labels: list[str] | None = None, question: str = "", boxes=None):
        """Run a job's checkpoint on many images, as a stream: `images` is an iterable of paths (or
        of ``(name, bytes)`` pairs), read one at a time as the daemon takes them; yields one
        :class:`~protos.visionyard_pb2.PredictStreamResponse` per image, in order (``error`` set
        for an image that could not be read or predicted; the others go on). Nothing holds more
        than a window of images at once, however many there are. ``boxes`` (top-down pose, as in
        :meth:`predict`): one list for every image, or a dict from an image's name (its path as given, or its
        file name) to its boxes; an image the dict does not name is predicted whole."""
        local_errors: dict[int, tuple[str, str]] = {}  # index → (name, why) of images never sent
        every = _boxes(boxes) if boxes is not None and not isinstance(boxes, dict) else None
        by_name = {str(name): _boxes(value) for name, value in boxes.items()} if isinstance(boxes, dict) else {}

        def requests():
            yield pb.PredictStreamRequest(**_target(job_id), top_k=top_k, checkpoint=checkpoint, annotate=annotate,
                                          runtime=runtime, device=device, labels=list(labels or []),
                                          question=question)
            for index, image in enumerate(images):
                name, data = (image if isinstance(image, tuple) else (str(image), None))
                if data is None:
                    try:
                        data = _read_image(Path(image))
                    except ClientError as exc:
                        local_errors[index] = (name, str(exc))
                        data = b""
                elif len(data) > MAX_IMAGE_BYTES:
                    local_errors[index] = (name, _too_large(f"image '{name}'", len(data)))
                    data = b""
                mine = every if every is not None else by_name.get(name, by_name.get(os.path.basename(name), []))
                yield pb.PredictStreamRequest(name=name or f"#{index}", image=data, boxes=mine)

        call = self.stub.PredictStream(requests(), timeout=None)
        try:
            for answer in call:
                if answer.index in local_errors:
                    name, why = local_errors.pop(answer.index)
                    answer = pb.PredictStreamResponse(index=answer.index, name=name, error=why)
                yield answer
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        finally:
            call.cancel()  # a caller that stops reading ends the call (a no-op once it ended)

    def export(self, job_id: str, format: str = "onnx", checkpoint: str = "best", dynamic: bool = False,
               half: bool = False, opset: int = 0, images: list[str] | None = None, count: int = 0,
               device: str = "cpu") -> pb.ExportResponse:
        """Export a job's checkpoint (``onnx``) with its framework's exporter into the job dir, validated
        against PyTorch on `count` (default 8) of the job's validation images, or of `images` (files or
        folders on the daemon's machine). A validation that fails raises :class:`ClientError`
        (FAILED_PRECONDITION) with its numbers; a passed one answers them (``validation``) and where the
        model is. Batch is always free; ``dynamic`` frees height and width; ``half`` stores float16."""
        request = pb.ExportRequest(job_id=job_id, format=format, checkpoint=checkpoint, dynamic=dynamic, half=half,
                                   opset=opset, images=[str(p) for p in images or ()], count=count, device=device)
        return self._call("ExportModel", request, timeout=None)

    def evaluate(self, job_id: str, checkpoint: str = "best", dataset: str = "", format: str = "", split: str = "val",
                 batch: int = 0, device: str = "cpu") -> pb.EvalResponse:
        """Evaluate a job's checkpoint with visionyard's own evaluator of its task (the same for every
        framework), through the predict path in the job's env: on its validation split, or on `dataset`
        (a folder on the daemon's machine, of `format`). The result is kept in the job dir and its MLflow
        run; a running job is evaluated on a copy of its checkpoint. Errors (a dataset whose classes the
        model does not know, a checkpoint that is gone) raise :class:`ClientError` with the reason."""
        request = pb.EvalRequest(job_id=job_id, checkpoint=checkpoint, dataset=str(dataset) if dataset else "",
                                 format=format, split=split, batch=batch, device=device)
        return self._call("EvaluateJob", request, timeout=None)

    def evaluations(self, job_id: str) -> list[pb.EvalResponse]:
        """A job's evaluations kept (:meth:`evaluate`), newest first, without their per-class rows."""
        return list(self._call("GetResults", pb.GetResultsRequest(job_id=job_id, evals=True)).evals)

    def results(self, job_id: str, epoch: str | int = "best") -> pb.GetResultsResponse:
        """A job's validation results of one epoch (``best``: the epoch of the best checkpoint, ``last``,
        or a number): per-class metrics and the confusion matrix (``result``), and every validated
        epoch's metrics (``epochs``). Raises :class:`ClientError` (FAILED_PRECONDITION) for a job that
        recorded none, NOT_FOUND for an epoch it did not validate."""
        return self._call("GetResults", pb.GetResultsRequest(job_id=job_id, epoch=str(epoch)))

    def compare(self, job_ids: list[str]) -> pb.CompareResponse:
        """Two or more jobs of one task side by side: each one's best epoch and its metrics, where they
        come from, its curves (metrics per epoch, with the time of each), and the per-class values of
        their best epochs when every job recorded them. Jobs of different tasks or class lists raise
        :class:`ClientError` (INVALID_ARGUMENT)."""
        return self._call("CompareJobs", pb.CompareRequest(job_ids=list(job_ids)))

    def workers(self, job_id: str = "") -> list[pb.WorkerInfo]:
        """The daemon's warm predict workers (those of `job_id` only, when given)."""
        return list(self._call("ListWorkers", pb.ListWorkersRequest(job_id=job_id)).workers)

    def stop_workers(self, job_id: str = "") -> int:
        """Stop the warm predict workers (of `job_id` only, when given); how many were stopped."""
        return self._call("StopWorkers", pb.StopWorkersRequest(job_id=job_id)).stopped

    # ------------------------------------------------------------ catalog and envs

    def models(self, framework: str = "", task: str = "", tag: str = "") -> list[pb.ModelInfo]:
        return list(self._call("ListModels", pb.ListModelsRequest(framework=framework, task=task, tag=tag)).models)

    def schema(self, framework: str, task: str = "") -> pb.ConfigSchema:
        return self._call("GetConfigSchema", pb.GetConfigSchemaRequest(framework=framework, task=task))

    def envs(self) -> list[pb.EnvInfo]:
        return list(self._call("ListEnvs", pb.ListEnvsRequest()).envs)

    def prepare_env(self, name: str) -> pb.EnvInfo:
        return self._call("PrepareEnv", pb.PrepareEnvRequest(name=name), timeout=None)

    def remove_env(self, name: str) -> list[str]:
        return list(self._call("RemoveEnv", pb.RemoveEnvRequest(name=name)).removed)

    def collect_garbage(self, dry_run: bool = False, **limits: float | None) -> pb.CollectGarbageResponse:
        """Remove unused envs, checkouts and old job dirs; `limits` (None: the daemon's policy) are
        env_max_idle_days, envs_max_gb, checkout_max_idle_days, job_dir_max_age_days."""
        request = pb.CollectGarbageRequest(dry_run=dry_run, **{k: v for k, v in limits.items() if v is not None})
        return self._call("CollectGarbage", request, timeout=None)

    # ------------------------------------------------------------ custom repos

    def add_repo(self, spec_file: str | os.PathLike) -> pb.RepoInfo:
        path = Path(spec_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ClientError(None, f"cannot read repo spec '{path}': {exc.strerror}") from None
        return self._call("AddRepo", pb.AddRepoRequest(spec_yaml=text, filename=path.name))

    def repos(self) -> list[pb.RepoInfo]:
        return list(self._call("ListRepos", pb.ListReposRequest()).repos)

    def repo(self, name: str) -> pb.RepoInfo:
        return self._call("GetRepo", pb.GetRepoRequest(name=name))

    def remove_repo(self, name: str) -> pb.RepoInfo:
        return self._call("RemoveRepo", pb.RemoveRepoRequest(name=name))

    def prepare_repo(self, name: str) -> pb.PrepareRepoResponse:
        return self._call("PrepareRepo", pb.PrepareRepoRequest(name=name), timeout=None)

    # ------------------------------------------------------------ sweeps

    def create_sweep(self, spec: str | os.PathLike | dict, resume: bool = False) -> pb.Sweep:
        """A hyperparameter sweep from a sweep file (its `base:` job file read here) or a dict; `resume`
        adds its `trials` to the ended sweep of the same name."""
        import json

        return self._call("CreateSweep", pb.CreateSweepRequest(spec_json=json.dumps(load_sweep(spec)), resume=resume))

    def sweep(self, sweep_id: str) -> pb.Sweep:
        return self._call("GetSweep", pb.GetSweepRequest(sweep_id=sweep_id))

    def sweeps(self, limit: int = 0) -> list[pb.Sweep]:
        return list(self._call("ListSweeps", pb.ListSweepsRequest(limit=limit)).sweeps)

    def cancel_sweep(self, sweep_id: str) -> pb.Sweep:
        return self._call("CancelSweep", pb.CancelSweepRequest(sweep_id=sweep_id))

    def watch_sweep(self, sweep_id: str) -> Iterator[pb.Sweep]:
        """The sweep now and at each change, until it has ended."""
        try:
            yield from self.stub.WatchSweep(pb.WatchSweepRequest(sweep_id=sweep_id))
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the daemon answers (e.g. right after starting it)."""
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise ClientError(grpc.StatusCode.UNAVAILABLE, f"no visionyard daemon came up at {self.address}") from None
