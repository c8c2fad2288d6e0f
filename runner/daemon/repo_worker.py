"""Predict for a custom repo's job: its spec's ``predict:`` command, run once per batch of images.

A repo's own script loads its model each time it runs, so this worker keeps no process: it
gathers the images that arrive together (up to ``REPO_MAX_BATCH``, waiting ``REPO_MAX_WAIT_MS``
for more), puts them in a folder under the job dir, runs the command there over the folder, and
reads the answers back (``custom_repos/predict.py``). It has the interface of a warm worker
(``runner.daemon.workers.Worker``), so the pool, the RPCs and the CLI treat both alike.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from runner.daemon.workers import _FLUSH, _STOP, WORKER_LOG, WorkerError, WorkerInfo, WorkerKey, WorkerLimits, \
    WorkerStopped, _Item, take_batch
from runner.launch.local import child_environment

REPO_MAX_BATCH = 64      # images per run of the repo's script: each run loads the model again
REPO_MAX_WAIT_MS = 200.0
SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "GIF": ".gif"}


class RepoCommandWorker:
    """Runs `spec.predict.command` over batches of images; `submit` as `Worker.submit`."""

    pid = 0  # no process between batches

    def __init__(self, key: WorkerKey, spec, job: dict, job_dir: Path, checkout: Path, python: Path,
                 limits: WorkerLimits):
        self.key, self.spec, self.job, self.limits = key, spec, job, limits
        self.job_dir, self.checkout, self.python = Path(job_dir), Path(checkout), Path(python)
        self.log_path = self.job_dir / WORKER_LOG
        self.device = "cpu"
        self.state = "ready"
        self.served = 0
        self.load_ms = 0.0
        self.started_at = time.time()
        self.last_used = time.monotonic()
        self.busy = False
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None
        threading.Thread(target=self._run, name=f"repo-predict-{key.job_id}", daemon=True).start()

    def submit(self, image: str, top_k: int, annotate: bool, streaming: bool = False,
               options: dict | None = None) -> Future:
        """As ``Worker.submit``; a repo's command takes no ``options`` (the daemon refuses them first)."""
        item = _Item(image, top_k, annotate, streaming)
        with self._lock:
            if self.state == "dead":
                raise WorkerStopped(f"the predict worker for job {self.key.job_id} was stopped")
            self.last_used = time.monotonic()
            self._queue.put(item)
        return item.future

    def flush(self) -> None:
        self._queue.put(_FLUSH)

    @property
    def idle(self) -> bool:
        return not self.busy and self._queue.empty()

    def stop(self) -> None:
        with self._lock:
            self.state = "dead"
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._queue.put(_STOP)

    def info(self) -> WorkerInfo:
        idle = 0.0 if not self.idle else time.monotonic() - self.last_used
        return WorkerInfo(self.key, self._proc.pid if self._proc else 0, self.state, self.device, 0, self.served,
                          self.started_at, idle, self.load_ms, "repo command")

    # ---------------------------------------------------------------- the worker's thread

    def _run(self) -> None:
        while True:
            batch = take_batch(self._queue, REPO_MAX_BATCH, REPO_MAX_WAIT_MS,
                               max(REPO_MAX_WAIT_MS, self.limits.stream_wait_ms))
            if batch is None:
                break
            if not batch:
                continue
            self.busy = True
            try:
                for item, answer in zip(batch, self._predict(batch), strict=True):
                    if isinstance(answer, str):
                        item.future.set_exception(ValueError(answer))
                    else:
                        item.future.set_result(answer)
            except Exception as exc:  # noqa: BLE001 (every image of the batch gets the reason)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc if isinstance(exc, WorkerError) else WorkerError(str(exc)))
            self.served += len(batch)
            self.last_used = time.monotonic()
            self.busy = False
        self._fail_waiting()

    def _predict(self, batch: list[_Item]) -> list:
        from PIL import Image

        from custom_repos.predict import class_names, predict_command, read_answers

        work = Path(tempfile.mkdtemp(dir=self.job_dir, prefix="predict-batch-"))
        try:
            source, output = work / "images", work / "out"
            source.mkdir()
            output.mkdir()
            files = []
            for n, item in enumerate(batch):
                try:
                    with Image.open(item.image) as opened:
                        suffix = SUFFIXES.get(opened.format or "", ".png")
                except OSError:
                    suffix = ".png"
                file = source / f"{n:05d}{suffix}"  # the scripts pick images by their suffix
                if _same_device(item.image, source):
                    os.link(item.image, file)
                else:
                    shutil.copyfile(item.image, file)
                files.append(file)
            top_k = max(i.top_k for i in batch)
            argv, env = predict_command(self.spec, self.job, self.job_dir, self.python, self.key.checkpoint, source,
                                        output, top_k)
            env = child_environment({**env, "PYTHONPYCACHEPREFIX": str(self.job_dir / "pycache")})
            with open(self.log_path, "ab") as log:
                log.write(f"[visionyard] predict {len(batch)} image(s): {' '.join(argv)}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(argv, cwd=self.checkout, env=env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=log, start_new_session=True, text=True)
                try:
                    stdout, _ = self._proc.communicate(timeout=self.limits.predict_timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self._proc.pid, signal.SIGKILL)
                    self._proc.communicate()
                    raise WorkerError(f"the predict command of repo '{self.spec.name}' took over "
                                      f"{self.limits.predict_timeout:g} s; see {self.log_path}") from None
                finally:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(self._proc.pid, signal.SIGKILL)  # nothing it started outlives it
                code, self._proc = self._proc.returncode, None
                log.write(stdout.encode(errors="replace"))
            if self.state == "dead":
                raise WorkerStopped(f"the predict worker for job {self.key.job_id} was stopped")
            if code != 0:
                raise WorkerError(f"the predict command of repo '{self.spec.name}' exited with code {code}; "
                                  f"its log {self.log_path} ends:\n{_tail(self.log_path)}")
            return read_answers(self.spec, self.job.get("task", ""), output, stdout, files,
                                class_names(self.job_dir, self.job), [i.top_k for i in batch],
                                [i.annotate for i in batch], job_dir=self.job_dir)
        finally:
            shutil.rmtree(work, ignore_errors=True)  # before any answer goes out

    def _fail_waiting(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Item) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(WorkerStopped(f"the predict worker for job {self.key.job_id} was stopped"))


def _same_device(a: str, folder: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(folder).st_dev
    except OSError:
        return False


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
