"""Fixtures for the adapter tests: a Reporter server like the daemon's, tiny image datasets.

Tests that need torch run the child code in a subprocess with the session's timm env (or the
interpreter named by ``VISIONYARD_TEST_CHILD_PYTHON``). Everything else runs in the host env.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import shutil
import tempfile
import threading
import time
from concurrent import futures
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from protos import visionyard_pb2 as pb
from protos import visionyard_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
CHILD_PYTHON_ENV = "VISIONYARD_TEST_CHILD_PYTHON"
TOKEN = "test-token"

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 220, 20),
    "magenta": (200, 30, 200),
}


class FakeReporterServicer(visionyard_pb2_grpc.ReporterServicer):
    """Checks the token and applies each ``batch_seq`` once, as the daemon does.

    ``fail_first``: the first N calls fail with UNAVAILABLE before anything is applied.
    ``lose_acks``: the next N calls are applied but answered with UNAVAILABLE (a lost ack),
    so the client must resend a batch the server already has.
    """

    def __init__(self, token: str = TOKEN, fail_first: int = 0, lose_acks: int = 0) -> None:
        self.token = token
        self.fail_first = fail_first
        self.lose_acks = lose_acks
        self.calls = 0
        self.received_seqs: list[int] = []  # every call, resends included
        self.applied_seqs: list[int] = []
        self.items: list[pb.ReportItem] = []
        self.job_ids: set[str] = set()
        self._lock = threading.Lock()

    def Report(self, request, context):  # noqa: N802 (grpc method name)
        with self._lock:
            self.calls += 1
            self.received_seqs.append(request.batch_seq)
            if request.token != self.token:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "bad job token")
            if self.calls <= self.fail_first:
                context.abort(grpc.StatusCode.UNAVAILABLE, "daemon is starting")
            if request.batch_seq not in self.applied_seqs:
                self.applied_seqs.append(request.batch_seq)
                self.items.extend(request.items)
                self.job_ids.add(request.job_id)
            if self.calls <= self.fail_first + self.lose_acks:
                context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped before the ack")
        return pb.ReportAck(batch_seq=request.batch_seq)

    def of_kind(self, kind: str) -> list:
        with self._lock:
            return [getattr(item, kind) for item in self.items if item.WhichOneof("kind") == kind]

    def kinds(self) -> list[str]:
        with self._lock:
            return [item.WhichOneof("kind") for item in self.items]

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return False


@contextmanager
def serve_reporter(address: str, servicer: FakeReporterServicer):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    visionyard_pb2_grpc.add_ReporterServicer_to_server(servicer, server)
    server.add_insecure_port(address)
    server.start()
    try:
        yield server
    finally:
        server.stop(0)


@pytest.fixture
def short_tmp():
    """A short directory (unix socket paths are limited to ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="vy-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _start_reporter(address: str | None = None, **options):
    """A fake Reporter service on a unix socket (a fresh one unless ``address`` is given)."""
    directory = tempfile.mkdtemp(prefix="vy-", dir="/tmp")
    servicer = FakeReporterServicer(**options)
    try:
        with serve_reporter(address or f"unix://{directory}/reporter.sock", servicer) as server:
            servicer.address = address or f"unix://{directory}/reporter.sock"
            servicer.server = server
            yield servicer
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def reporter_server():
    """``with reporter_server(**options) as servicer:`` — ``servicer.address`` is the target."""
    return _start_reporter


@pytest.fixture(scope="session")
def child_python(request) -> str:
    """The child env's python: ``$VISIONYARD_TEST_CHILD_PYTHON``, else the suite's timm env.

    Setting the variable skips building the env (handy while working on adapter code).
    """
    return os.environ.get(CHILD_PYTHON_ENV) or str(request.getfixturevalue("timm_env").python)


def _child_env(address: str | None = None, job_id: str = "job-1", **extra: str) -> dict[str, str]:
    """The environment the daemon gives a child: project on the path, reporter address, token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONYARD_")}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if address:
        env.update(VISIONYARD_REPORTER_ADDRESS=address, VISIONYARD_JOB_ID=job_id, VISIONYARD_JOB_TOKEN=TOKEN)
    env.update(extra)
    return env


# ---------------------------------------------------------------- tiny datasets


def colour_image(rgb, rng: random.Random, size: int = 24):
    """A noisy square of one colour (learnable in an epoch or two)."""
    from PIL import Image

    image = Image.new("RGB", (size, size))
    pixels = [tuple(max(0, min(255, c + rng.randint(-40, 40))) for c in rgb) for _ in range(size * size)]
    image.putdata(pixels)
    return image


def _make_imagefolder(
    root: Path, classes=("red", "green", "blue"), per_class: int = 14, val_per_class: int = 0
):
    rng = random.Random(0)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name in classes:
            if not count:
                continue
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                colour_image(COLOURS[name], rng).save(folder / f"{name}_{i}.png")
    return root


def _make_dice(root: Path, classes=tuple(COLOURS), per_class: int = 6):
    """labelme files: labels from flags or shapes, images beside them or embedded, in subfolders."""
    rng = random.Random(1)
    for name in classes:
        for i in range(per_class):
            folder = root / f"batch{i % 2}"
            (folder / "images").mkdir(parents=True, exist_ok=True)
            image = colour_image(COLOURS[name], rng)
            doc = {"imagePath": f"images/{name}_{i}.png", "imageData": None, "shapes": [], "flags": {}}
            if i % 3 == 0:  # label from a flag
                doc["flags"] = {other: other == name for other in classes}
            else:  # label from the first shape
                doc["shapes"] = [{"label": name, "points": [[0, 0], [5, 5]], "shape_type": "rectangle"}]
            if i % 2 == 0:
                buffer = io.BytesIO()
                image.save(buffer, format="PNG")
                doc["imageData"] = base64.b64encode(buffer.getvalue()).decode()
                doc["imagePath"] = f"{name}_{i}.png"  # not on disk: the embedded copy is used
            else:
                image.save(folder / "images" / f"{name}_{i}.png")
            (folder / f"{name}_{i}.json").write_text(json.dumps(doc))
    return root


# ---------------------------------------------------------------- predict_batch against predict

#: Run in a framework env: ``python -c BATCH_VS_ONE CASES_JSON IMAGE...``. For each case (a job file, a
#: checkpoint, the adapter's network to watch, optional setup code run with ``adapter`` in scope), the
#: adapter predicts the images with one ``predict_batch`` call, then with ``predict`` one by one
#: (top-k 2, annotated); printed as JSON with PNG bytes in base64 and the batch sizes of the network's
#: forward passes during ``predict_batch``.
BATCH_VS_ONE = """
import base64, json, sys
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter


def plain(result):
    return {k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in result.items()}


cases, images, out = json.loads(sys.argv[1]), sys.argv[2:], {}
for name, case in cases.items():
    adapter = build_adapter(Job.from_file(case["job"]), Reporter(None))
    adapter.load_checkpoint(case["checkpoint"])
    exec(case.get("setup", ""))
    batches, watching = [], True

    def record(module, args, kwargs):
        if watching:
            batches.append(int((kwargs["pixel_values"] if "pixel_values" in kwargs else args[0]).shape[0]))

    # Switched off rather than removed: a framework may run a copy of the network, its hooks included.
    eval("adapter." + case["network"]).register_forward_pre_hook(record, with_kwargs=True)
    batch = adapter.predict_batch(images, 2, True)
    watching = False
    out[name] = {"batch": [plain(r) for r in batch], "alone": [plain(adapter.predict(i, 2, True)) for i in images],
                 "batches": batches}
print(json.dumps(out))
"""


def _batch_vs_one(python: str, env: dict[str, str], cases: dict[str, dict], images: list[Path],
                  timeout: int = 600) -> dict[str, dict]:
    import subprocess

    done = subprocess.run([python, "-c", BATCH_VS_ONE, json.dumps(cases), *map(str, images)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _png_pixels(b64: str):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.int16)


def _assert_same_results(batch: list[dict], alone: list[dict], where: str = "") -> None:
    """``predict_batch``'s results equal ``predict``'s: the same fields, sizes, text, labels and indices
    in the same order, scores within 1e-4, pixel coordinates within 0.5 px, PNGs of the same size whose
    pixels differ by at most one grey level (a rounding)."""
    import numpy as np

    assert len(batch) == len(alone), where
    for n, (got, want) in enumerate(zip(batch, alone, strict=True)):
        at = f"{where} image {n}"
        assert set(got) == set(want) and set(got["timings_ms"]) == set(want["timings_ms"]), at
        assert [got.get(k) for k in ("task", "width", "height", "text")] == \
            [want.get(k) for k in ("task", "width", "height", "text")], at
        assert [(p["label"], p["index"]) for p in got["predictions"]] == \
            [(p["label"], p["index"]) for p in want["predictions"]], at
        for p, q in zip(got["predictions"], want["predictions"], strict=True):
            assert set(p) == set(q) and abs(p["score"] - q["score"]) <= 1e-4, (at, p, q)
            for key in ("box", "polygon", "keypoints", "rotated_box"):
                if key in q:
                    assert np.shape(p[key]) == np.shape(q[key]), (at, key)
                    assert np.allclose(p[key], q[key], atol=0.5, rtol=0), (at, key, p[key], q[key])
        for key in ("mask_png", "image_png"):
            if key in want:
                a, b = _png_pixels(got[key]), _png_pixels(want[key])
                assert a.shape == b.shape and np.abs(a - b).max() <= 1, (at, key)


# ---------------------------------------------------------------- a model without a job

#: Run in a framework env: ``python -c WITHOUT_A_JOB CASES_JSON [PREPARE_CODE]``. ``PREPARE_CODE`` runs first
#: (to write weights files with the framework). For each case (a job file, ``weights``: a path or None for
#: the model's pretrained weights, images), a fresh adapter loads them (``load_weights``, timed) and predicts
#: each image (top 3); printed as JSON: the class names and the predictions' (label, index), or the error.
WITHOUT_A_JOB = """
import json, sys, time
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter

exec(sys.argv[2] if len(sys.argv) > 2 else "")
out = {}
for name, case in json.loads(sys.argv[1]).items():
    seconds = 0.0
    try:
        adapter = build_adapter(Job.from_file(case["job"]), Reporter(None))
        started = time.monotonic()
        try:
            adapter.load_weights(case.get("weights"))
        finally:
            seconds = time.monotonic() - started
        names = getattr(adapter, "class_names", None) or adapter.task.class_names
        out[name] = {"names": list(names), "seconds": seconds, "image_size": getattr(adapter, "image_size", None),
                     "predictions": [[[p["label"], p["index"]] for p in adapter.predict(image, 3)["predictions"]]
                                     for image in case.get("images", [])]}
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}", "seconds": seconds}
print(json.dumps(out))
"""


def _without_a_job(python: str, env: dict[str, str], cases: dict[str, dict], prepare: str = "",
                   cwd: Path = ROOT, timeout: int = 300) -> dict[str, dict]:
    import subprocess

    done = subprocess.run([python, "-c", WITHOUT_A_JOB, json.dumps(cases), prepare], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- ONNX exports

#: Run in a framework env: ``python -c EXPORTS CASES_JSON``. Each case (``job``, ``checkpoint``, ``out`` and
#: export options) goes through ``adapters.onnx_export.export`` in this one process (the imports paid once);
#: printed as JSON: per case its exit code and its ``export.json`` (None when none was written).
EXPORTS = """
import json, sys
from pathlib import Path
from adapters.onnx_export import REPORT_FILE, export

out = {}
for name, case in json.loads(sys.argv[1]).items():
    code = export(case.pop("job"), case.pop("checkpoint"), case["out"], **{k: v for k, v in case.items() if k != "out"})
    report = Path(case["out"]) / REPORT_FILE
    out[name] = {"code": code, "report": json.loads(report.read_text()) if report.exists() else None}
print(json.dumps(out))
"""


def _exports(python: str, env: dict[str, str], cases: dict[str, dict], timeout: int = 600) -> dict[str, dict]:
    import subprocess

    done = subprocess.run([python, "-c", EXPORTS, json.dumps(cases)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for case in found.values():  # what the export said, for a failing assertion to show
        case["stderr"] = "" if case["code"] == 0 else done.stderr[-3000:]
    return found


# Helpers are handed out as fixtures, so test modules never import this file by name.


@pytest.fixture(scope="session")
def child_env():
    return _child_env


@pytest.fixture(scope="session")
def make_imagefolder():
    return _make_imagefolder


@pytest.fixture(scope="session")
def make_dice():
    return _make_dice


@pytest.fixture(scope="session")
def batch_vs_one():
    """``batch_vs_one.run(python, env, cases, images)`` → per case ``{"batch", "alone", "batches"}``
    (``BATCH_VS_ONE``); ``batch_vs_one.assert_same(batch, alone, where)`` compares the two."""
    class Helpers:
        run = staticmethod(_batch_vs_one)
        assert_same = staticmethod(_assert_same_results)
    return Helpers


@pytest.fixture(scope="session")
def without_a_job():
    """``without_a_job(python, env, cases, prepare="", cwd=ROOT)`` → per case ``{"names", "predictions",
    "image_size", "seconds"}`` or ``{"error", "seconds"}`` (``WITHOUT_A_JOB``)."""
    return _without_a_job


@pytest.fixture(scope="session")
def exports():
    """``exports(python, env, cases)`` → per case ``{"code", "report"}`` (``EXPORTS``)."""
    return _exports


# ---------------------------------------------------------------- many child runs in one process

#: Run in a framework env: ``python -c IN_ONE_PROCESS STEPS_JSON``. The steps (name → step) run in order in this
#: one process, so the framework's imports are paid once. A step runs with the process's environment plus its
#: own ``env`` (a value None unsets a variable; the environment is restored after the step), its stdout and
#: stderr (the log included) captured:
#:
#: - ``{"argv": [...], "module": M}`` calls ``M.main(argv)`` (``M`` defaults to ``adapters.entrypoint``): what
#:   ``python -m M ARGV`` runs, less the interpreter's start;
#: - ``{"script": CODE, "argv": [...]}`` runs CODE as ``python -c CODE ARGV`` would (``BATCH_VS_ONE``,
#:   ``WITHOUT_A_JOB``, a test's own script).
#:
#: Printed as JSON, per step: ``code`` (main's return value, a SystemExit's code, 0 for a script that ends;
#: None when an exception escaped), ``error`` (that exception's traceback, else None), ``stdout``, ``stderr``,
#: ``seconds`` (the step alone) and, when stdout's last line is JSON, ``json``.
IN_ONE_PROCESS = """
import contextlib, importlib, io, json, logging, os, sys, time, traceback


class StepStderr:  # the log goes to the stderr of the step that runs, as a child's goes to its own
    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()


# Before any step: the entrypoint's basicConfig then keeps this handler rather than the first step's stderr.
logging.basicConfig(stream=StepStderr(), level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run(name, step):
    if "script" in step:
        sys.argv = ["-c", *step.get("argv", [])]
        exec(compile(step["script"], f"<{name}>", "exec"), {"__name__": "__main__"})
        return 0
    return importlib.import_module(step.get("module", "adapters.entrypoint")).main(list(step["argv"]))


out = {}
for name, step in json.loads(sys.argv[1]).items():
    environ, argv = dict(os.environ), sys.argv
    for key, value in (step.get("env") or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    stdout, stderr, found = io.StringIO(), io.StringIO(), {"code": None, "error": None}
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                found["code"] = run(name, step)
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    found["code"] = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    found["code"] = 1
    except Exception:
        found["error"] = traceback.format_exc()
    finally:
        found["seconds"] = time.monotonic() - started
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
    found.update(stdout=stdout.getvalue(), stderr=stderr.getvalue())
    lines = found["stdout"].strip().splitlines()
    try:
        found["json"] = json.loads(lines[-1])
    except (IndexError, ValueError):
        pass
    out[name] = found
print(json.dumps(out))
"""


class _InOneProcess:
    """``IN_ONE_PROCESS`` running in a child (started at once); ``result()`` waits for it. As a context manager it
    kills a child still running at the end (a test that failed before asking for the result)."""

    def __init__(self, python: str, env: dict[str, str], steps: dict[str, dict], cwd: Path = ROOT,
                 timeout: float = 600) -> None:
        import subprocess

        self.steps, self.deadline = steps, time.monotonic() + timeout
        self._stdout, self._stderr = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")  # never a full pipe
        self.proc = subprocess.Popen([python, "-c", IN_ONE_PROCESS, json.dumps(steps)], env=env, cwd=cwd, text=True,
                                     stdout=self._stdout, stderr=self._stderr)

    def __enter__(self) -> _InOneProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._stdout.close()
        self._stderr.close()

    def result(self) -> dict[str, dict]:
        """Per step ``{"code", "error", "stdout", "stderr", "seconds", "json"?}``. Should the child die or hang, every
        step gets ``code`` None and an ``error`` saying so with the child's stderr, so each test fails on its own."""
        import subprocess

        try:
            code, how = self.proc.wait(max(0.0, self.deadline - time.monotonic())), "exited"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code, how = self.proc.wait(), "was killed at its time limit"
        self._stdout.seek(0)
        self._stderr.seek(0)
        stdout, stderr = self._stdout.read(), self._stderr.read()
        if code == 0:
            return json.loads(stdout.strip().splitlines()[-1])
        error = f"the in-one-process child {how} ({code}):\n{stderr[-4000:]}"
        return {name: {"code": None, "error": error, "stdout": "", "stderr": "", "seconds": 0.0} for name in self.steps}


def _in_one_process(python: str, env: dict[str, str], steps: dict[str, dict], cwd: Path = ROOT,
                    timeout: int = 600) -> dict[str, dict]:
    with _InOneProcess(python, env, steps, cwd, timeout) as running:
        return running.result()


@pytest.fixture(scope="session")
def in_one_process():
    """``in_one_process.run(python, env, steps, cwd=ROOT)`` → per step ``{"code", "error", "stdout", "stderr",
    "seconds", "json"?}`` (``IN_ONE_PROCESS``); ``with in_one_process.start(...) as running:`` the same child
    started in the background (something else can run meanwhile), ``running.result()`` its answer;
    ``in_one_process.BATCH_VS_ONE`` and ``.WITHOUT_A_JOB``, the scripts of those helpers, to run as steps."""
    class Helpers:
        run = staticmethod(_in_one_process)
        start = _InOneProcess
        BATCH_VS_ONE = BATCH_VS_ONE
        WITHOUT_A_JOB = WITHOUT_A_JOB
    return Helpers
