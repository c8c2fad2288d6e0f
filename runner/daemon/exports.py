"""`ExportModel`: a job's checkpoint exported with its framework's exporter, validated against PyTorch.

The export runs as a child in the job's framework env (``python -m adapters.entrypoint --export``,
``adapters.onnx_export``), GPUs hidden unless the request names one, on a pool thread of the
daemon, killed when the client goes. It writes into a folder of its own under the job dir::

    jobs/<id>/exports/onnx-best[-dynamic][-fp16][-opsetN]/model.onnx, export.json, export.log

A validated export replaces the one of the same options; one that fails validation keeps its
``export.json`` and log (in ``<name>.failed/``) but not its model, and the RPC fails with the
numbers. A passed export is added to the job's MLflow run (``exports/<name>/``, metrics
``export/<name>/max_abs_diff`` ...). `--runtime onnx` predicts with the newest validated export of
the checkpoint as it is now (`newest_export`).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import grpc

from protos import visionyard_pb2 as pb
from runner.daemon.job_children import keep_failed, last_error, replace_dir, run_child
from runner.launch.adapter_child import adapter_command
from runner.spec.validate import CUSTOM

EXPORTS = "exports"  # under a job dir
FORMATS = ("onnx",)
MODEL_FILE = "model.onnx"  # adapters.onnx_export's, the daemon's copy
REPORT_FILE = "export.json"
LOG_FILE = "export.log"
FAILED_SUFFIX = ".failed"
EXPORT_TIMEOUT = 1800.0  # seconds for one export and its validation
MAX_EXPORTS = 2  # at once, in the whole daemon (each is a child with torch and the model)
MAX_OPSET = 23
EXIT_INVALID = 3  # the child's exit code for an export that failed its validation


def export_name(fmt: str, which: str, dynamic: bool, half: bool, opset: int) -> str:
    """The folder of an export, by what it is: ``onnx-best``, ``onnx-last-dynamic-fp16-opset18``..."""
    return "-".join([fmt, which] + ["dynamic"] * dynamic + ["fp16"] * half + [f"opset{opset}"] * bool(opset))


def newest_export(job_dir: Path, checkpoint: str) -> str:
    """The newest validated export (its model's path) of `checkpoint` as the file is now; "" when none
    is (a checkpoint rewritten since, by a resumed run, has no export until it is exported again)."""
    try:
        version = Path(checkpoint).stat().st_mtime_ns
    except OSError:
        return ""
    found: list[tuple[int, str]] = []
    for report in sorted((job_dir / EXPORTS).glob(f"*/{REPORT_FILE}")):
        if report.parent.name.endswith(FAILED_SUFFIX):
            continue
        try:
            data = json.loads(report.read_text())
            model = report.parent / MODEL_FILE
            if (data["validation"]["passed"] and data["checkpoint"] == checkpoint
                    and int(data["checkpoint_mtime_ns"]) == version and model.is_file()):
                found.append((model.stat().st_mtime_ns, str(model)))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return max(found)[1] if found else ""


class ExportRpcs:
    """Mixed into RunnerServicer; needs `self.rt`, `self.pool`, `_job_record`, `_job_env` and `_child_vars`
    (PredictRpcs)."""

    _export_gate = threading.BoundedSemaphore(MAX_EXPORTS)
    _exporting: set[tuple[str, str]] = set()  # (job id, export name) running
    _exporting_lock = threading.Lock()

    async def ExportModel(self, request: pb.ExportRequest, context) -> pb.ExportResponse:
        from runner.daemon.predictions import ThreadContext

        loop = asyncio.get_running_loop()
        sync = ThreadContext(context, loop)
        try:
            return await loop.run_in_executor(self.pool, self._export, request, sync)
        except asyncio.CancelledError:
            sync.cancel()
            raise

    def _export(self, request: pb.ExportRequest, context) -> pb.ExportResponse:
        fmt = request.format or "onnx"
        if fmt not in FORMATS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"format {fmt!r} is not one visionyard exports; "
                                                            f"valid: {', '.join(FORMATS)}")
        if request.opset and not 7 <= request.opset <= MAX_OPSET:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"opset must be between 7 and {MAX_OPSET} (0: the "
                                                            "exporter's default)")
        if not 0 <= request.count <= 256:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "count must be between 1 and 256 validation images (0: 8)")
        device = request.device or "cpu"
        if not (device == "cpu" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"device {device!r} is not one: use cpu, cuda or cuda:N")
        images = [str(Path(p).expanduser()) for p in request.images]
        for path in images:
            if not Path(path).exists():
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"images: {path} does not exist on the daemon's machine")
        record = self._job_record(request.job_id, context)
        if record.spec.get("framework") == CUSTOM:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} trained with repo '{record.spec.get('repo', '')}': exports are made by a "
                          "framework's exporter; export the checkpoint with the repo's own script (YOLOv7: export.py)")
        which = request.checkpoint or "best"
        checkpoint = {"best": record.best_checkpoint, "last": record.last_checkpoint}.get(which)
        if checkpoint is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "checkpoint must be 'best' or 'last'")
        if not checkpoint or not Path(checkpoint).exists():
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job {record.id} has no {which} checkpoint yet (state {record.state.value})")
        env = self._job_env(record, context)
        name = export_name(fmt, which, request.dynamic, request.half, request.opset)
        with self._exporting_lock:
            if (record.id, name) in self._exporting:
                context.abort(grpc.StatusCode.ABORTED, f"an export {name} of job {record.id} is running; wait for it")
            self._exporting.add((record.id, name))
        try:
            with self._export_gate:
                return self._run_export(request, record, env, checkpoint, name, fmt, images, device, context)
        finally:
            with self._exporting_lock:
                self._exporting.discard((record.id, name))

    def _run_export(self, request, record, env, checkpoint: str, name: str, fmt: str, images: list[str], device: str,
                    context) -> pb.ExportResponse:
        job_dir = Path(record.job_dir)
        exports = job_dir / EXPORTS
        exports.mkdir(parents=True, exist_ok=True)
        for stale in exports.glob(f".partial-{name}-*"):  # of an export its daemon did not see end
            shutil.rmtree(stale, ignore_errors=True)
        partial = Path(tempfile.mkdtemp(dir=exports, prefix=f".partial-{name}-"))
        version = Path(checkpoint).stat().st_mtime_ns
        args = ["--export", fmt, "--checkpoint", checkpoint, "--out", str(partial), "--count", str(request.count or 8),
                "--device", device]
        args += ["--dynamic"] * request.dynamic + ["--half"] * request.half
        args += ["--opset", str(request.opset)] if request.opset else []
        args += ["--images", *images] if images else []
        command = adapter_command(Path(env.path) / "bin" / "python", job_dir, self.rt.paths, *args)
        env_vars = self._child_vars(command)
        if device != "cpu":  # the GPU the request names: the daemon's own view of the devices
            env_vars.pop("CUDA_VISIBLE_DEVICES", None)
            if "CUDA_VISIBLE_DEVICES" in os.environ:
                env_vars["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
        started = time.monotonic()
        try:
            code = run_child(command, env_vars, partial / LOG_FILE, context, "the export", EXPORT_TIMEOUT)
            report = _read_report(partial / REPORT_FILE)
            if code not in (0, EXIT_INVALID) or report is None:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"export of job {record.id} failed: {last_error(partial / LOG_FILE, 'export failed:')} "
                              f"(log: {keep_failed(partial, exports / name)})")
            report["checkpoint_mtime_ns"] = version
            (partial / REPORT_FILE).write_text(json.dumps(report, indent=2))
            check = report["validation"]
            if code == EXIT_INVALID or not check.get("passed"):
                (partial / MODEL_FILE).unlink(missing_ok=True)
                kept = keep_failed(partial, exports / name)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                              f"the ONNX export of job {record.id} failed its validation on {check['images']} image(s): "
                              f"max |PyTorch - ONNX| of {check.get('worst_output', '?')} is {check['max_abs_diff']:.3g} "
                              f"(tolerance {check['tolerance']:.3g}), {check['agreement_kind']} agreement "
                              f"{check['agreement']:.3f} (at least {check['min_agreement']}); the model was not kept "
                              f"({kept / REPORT_FILE}). The exporter mis-converts this model: try another --opset, "
                              "or predict with pytorch")
            final = exports / name
            replace_dir(partial, final)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        report["file"] = str(final / MODEL_FILE)
        (final / REPORT_FILE).write_text(json.dumps(report, indent=2))
        self._track_export(record, name, final, report)
        return _response(record.id, report, final, time.monotonic() - started)

    def _track_export(self, record, name: str, folder: Path, report: dict) -> None:
        if not record.mlflow_run_id:
            return
        check = report["validation"]
        metrics = {f"export/{name}/{key}": float(check[key]) for key in
                   ("max_abs_diff", "agreement", "pytorch_images_per_s", "onnx_images_per_s")}
        self.rt.tracker.log_export(record.mlflow_run_id, name, [folder / MODEL_FILE, folder / REPORT_FILE], metrics,
                                   {f"visionyard.export.{name}": str(folder / MODEL_FILE)})


def _read_report(path: Path) -> dict | None:
    try:
        report = json.loads(path.read_text())
        report["validation"]["passed"]  # noqa: B018 (the shape the child writes)
        return report
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _response(job_id: str, report: dict, folder: Path, seconds: float) -> pb.ExportResponse:
    check = report["validation"]
    return pb.ExportResponse(
        job_id=job_id, format=report.get("format", "onnx"), path=str(folder / MODEL_FILE),
        size_bytes=int(report.get("size_bytes", 0)), opset=int(report.get("opset") or 0),
        dynamic=bool(report.get("dynamic")), half=bool(report.get("half")), checkpoint=report.get("checkpoint", ""),
        exporter=report.get("exporter", ""), inputs=list(report.get("inputs") or []),
        outputs=list(report.get("outputs") or []), seconds=seconds, report=str(folder / REPORT_FILE),
        validation=pb.ExportValidation(
            images=int(check["images"]), max_abs_diff=float(check["max_abs_diff"]),
            tolerance=float(check["tolerance"]), worst_output=str(check.get("worst_output", "")),
            agreement_kind=str(check["agreement_kind"]), agreement=float(check["agreement"]),
            min_agreement=float(check["min_agreement"]), passed=bool(check["passed"]),
            pytorch_images_per_s=float(check.get("pytorch_images_per_s") or 0),
            onnx_images_per_s=float(check.get("onnx_images_per_s") or 0)))
