"""MLflow logging for every job, from the daemon, off the scheduling path.

A single background thread owns the MLflow client. Metrics are queued and sent with
`log_batch` (many points per request); a slow or broken tracking store never delays a job.

The job store is the record; MLflow catches up with it. A run that could not be created is
created again later; when a run ends, every metric point the store holds and the run lacks (a
batch lost while MLflow was down, or queued when the daemon died) is logged first, then the run
is ended with the job's state. An end that fails is retried with backoff until it succeeds, and
`on_ended` tells the store, so a restarted daemon ends what the last one could not.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from runner.core.result_files import log_results

log = logging.getLogger("visionyard.tracking")

EXPERIMENT = "visionyard"
MAX_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit on params in one log_batch
RETRY_INITIAL, RETRY_MAX = 2.0, 120.0  # seconds between attempts to start or end a run
TRACKER_NICENESS = 10
STATUS = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELLED": "KILLED"}


#: Files of a checkpoint folder that only resuming needs (HF Trainer): not logged as artifacts.
RESUME_STATE = ("optimizer.", "scheduler.", "rng_state", "scaler.")


@dataclass
class _Op:
    kind: str
    job_id: str
    data: dict[str, Any] = field(default_factory=dict)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested spec → flat MLflow params (`training.epochs`, `advanced.optimizer.type`)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "."))
        elif value is not None:
            flat[path] = str(value)[:500]
    return flat


def prepare_sqlite_store(tracking_uri: str) -> None:
    """Create an embedded (SQLite) MLflow store atomically: its tables are made in a side file that
    is renamed into place, so a daemon killed while MLflow creates them (several seconds) leaves no
    half-made store behind. A half-made one (tables, but no schema version) is moved aside."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(tracking_uri[len("sqlite:///"):])
    if path.exists() and not _has_schema_version(path):
        aside = path.with_name(f"{path.name}.incomplete-{int(time.time())}")
        log.warning("the MLflow store %s was never fully created (the daemon stopped while creating it); "
                    "moved it to %s and creating it again", path, aside)
        os.replace(path, aside)
    if path.exists():
        return
    from mlflow.tracking import MlflowClient

    side = path.with_name(f"{path.name}.creating-{os.getpid()}")
    side.unlink(missing_ok=True)
    client = MlflowClient(f"sqlite:///{side}")
    client.search_experiments(max_results=1)  # creates every table and stamps the schema version
    engine = getattr(client._tracking_client.store, "engine", None)
    if engine is not None:
        engine.dispose()  # the last connection closes: everything is in the file itself
    os.replace(side, path)


def _has_schema_version(path: Path) -> bool:
    """Whether MLflow finished creating the store. The connection is a writable one: a daemon
    killed in the middle of an MLflow write leaves a hot journal, which only a writer rolls back
    (a read-only connection fails on it, and a complete store must never look half-made). Any
    error other than a missing version table propagates: it is no proof of a half-made store."""
    with closing(sqlite3.connect(path, timeout=30)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                          ).fetchone():
            return False
        return bool(db.execute("SELECT version_num FROM alembic_version").fetchone())


class Tracker:
    def __init__(self, tracking_uri: str, artifact_root: Path, on_run_created: Callable[[str, str], None],
                 metric_points: Callable[[str], list[tuple[str, int, float, float]]] | None = None,
                 on_ended: Callable[[str], None] | None = None):
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.on_run_created = on_run_created
        self.metric_points = metric_points  # (key, step, value, time) the store holds for a job
        self.on_ended = on_ended
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._runs: dict[str, str] = {}
        self._starts: dict[str, _Op] = {}  # start ops not done yet (MLflow down): retried
        self._retries: list[tuple[float, _Op]] = []  # (when, op) to try again
        self._ended: set[str] = set()  # jobs whose run this tracker ended
        self._client = None
        self._experiment_id: str | None = None
        #: job id → the sweep it is a trial of (None for other jobs): `sweep_id`, `run_id` ('' until made), `name`,
        #: `params`, `on_created(run_id)`. A trial's run is nested under the sweep's run, made with the first one.
        self.sweep_of: Callable[[str], dict[str, Any] | None] | None = None
        self._sweep_runs: dict[str, str] = {}  # sweep id → its parent run, made by this tracker
        self._thread = threading.Thread(target=self._loop, name="mlflow", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public, non-blocking

    def start_run(self, job_id: str, run_name: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self._queue.put(_Op("start", job_id, {"name": run_name, "params": params, "tags": tags}))

    def attach(self, job_id: str, run_id: str) -> None:
        """Log to (and later end) a run that already exists: a job a previous daemon started."""
        self._queue.put(_Op("attach", job_id, {"run_id": run_id}))

    def log_metrics(self, job_id: str, step: int, values: dict[str, float], when: float | None = None) -> None:
        self._queue.put(_Op("metrics", job_id, {"step": step, "values": values, "time": when or time.time()}))

    def end_run(self, job_id: str, state: str, artifacts: list[Path], tags: dict[str, str] | None = None,
                results: tuple[Path, str] | None = None) -> None:
        """End the job's run with its state, `artifacts` and `tags`; `results` (job dir, task): its
        validation results too (``runner.core.result_files``)."""
        self._queue.put(_Op("end", job_id, {"state": state, "artifacts": artifacts, "tags": tags or {},
                                            "results": results}))

    def log_export(self, run_id: str, folder: str, files: list[Path], metrics: dict[str, float],
                   tags: dict[str, str], under: str = "exports") -> None:
        """Add a model export (or an evaluation: `under` ``evals``) to a job's run (ended or not): `files`
        under ``<under>/<folder>/``, its numbers as metrics and what it is as tags."""
        self._queue.put(_Op("export", "", {"run_id": run_id, "folder": folder, "files": files, "metrics": metrics,
                                           "tags": tags, "under": under}))

    def end_sweep_run(self, sweep_id: str, run_id: str, state: str, best_job: str, tags: dict[str, str]) -> None:
        """End a sweep's parent run with `tags`; the run of its best trial's job is tagged `visionyard.sweep.best`."""
        self._queue.put(_Op("sweep_end", sweep_id, {"run_id": run_id, "state": state, "best_job": best_job,
                                                    "tags": tags}))

    def flush(self, timeout: float = 60) -> bool:
        """Wait until everything queued so far has been written."""
        done = threading.Event()
        self._queue.put(_Op("flush", "", {"done": done}))
        return done.wait(timeout)

    def close(self, timeout: float = 30) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    # ------------------------------------------------------------ worker

    def _loop(self) -> None:
        try:  # bookkeeping: on a busy machine, training comes first (Linux: a thread's own niceness)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), TRACKER_NICENESS)
        except (AttributeError, OSError):
            pass
        while True:
            try:
                ops = [self._queue.get(timeout=self._next_retry_in())]
            except queue.Empty:
                ops = []
            now = time.monotonic()
            due = [op for when, op in self._retries if when <= now]
            self._retries = [(when, op) for when, op in self._retries if when > now]
            ops = due + ops
            while len(ops) < MAX_BATCH:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run_all([op for op in ops if op is not None])
            if None in ops:
                return

    def _next_retry_in(self) -> float | None:
        if not self._retries:
            return None
        return max(0.0, min(when for when, _ in self._retries) - time.monotonic())

    def _retry(self, op: _Op) -> None:
        delay = op.data.get("delay", RETRY_INITIAL)
        op.data["delay"] = min(delay * 2, RETRY_MAX)
        self._retries.append((time.monotonic() + delay, op))

    def _run_all(self, ops: list[_Op]) -> None:
        metrics: dict[str, list[_Op]] = {}
        for op in ops:
            if op.kind == "metrics":
                metrics.setdefault(op.job_id, []).append(op)
                continue
            self._send_metrics(metrics)
            metrics = {}
            self._safely(op)
        self._send_metrics(metrics)

    def _send_metrics(self, by_job: dict[str, list[_Op]]) -> None:
        for job_id, ops in by_job.items():
            self._safely(_Op("batch", job_id, {"ops": ops}))

    def _safely(self, op: _Op) -> None:
        try:
            getattr(self, f"_do_{op.kind}")(op)
        except Exception as exc:  # tracking must never take the daemon down
            if op.kind in ("start", "end"):
                log.warning("MLflow %s for job %s failed (%s: %s); retrying in %.1f s", op.kind, op.job_id,
                            type(exc).__name__, exc, op.data.get("delay", RETRY_INITIAL))
                self._client = None  # a fresh client next time (the store may have moved or recovered)
                self._retry(op)
            else:
                log.exception("MLflow %s for job %s failed", op.kind, op.job_id)
            if op.kind == "flush":
                op.data["done"].set()

    def _mlflow(self):
        if self._client is None:
            import mlflow
            from mlflow.tracking import MlflowClient

            prepare_sqlite_store(self.tracking_uri)
            mlflow.set_tracking_uri(self.tracking_uri)
            client = MlflowClient(self.tracking_uri)
            experiment = client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                self._experiment_id = client.create_experiment(
                    EXPERIMENT, artifact_location=self.artifact_root.as_uri())
            else:
                self._experiment_id = experiment.experiment_id
            self._client = client
        return self._client

    def _do_start(self, op: _Op) -> None:
        from mlflow.entities import Param, RunTag

        if op.job_id in self._runs or op.job_id in self._ended:  # a retry the end already did
            return
        self._starts[op.job_id] = op
        client = self._mlflow()
        tags = dict(op.data["tags"])
        if parent := self._sweep_run(op.job_id):
            tags["mlflow.parentRunId"] = parent
        run = client.create_run(self._experiment_id, run_name=op.data["name"], tags=tags)
        run_id = run.info.run_id
        self._runs[op.job_id] = run_id
        self._starts.pop(op.job_id, None)
        params = [Param(k, v) for k, v in op.data["params"].items()]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100], tags=[RunTag("visionyard.job_id", op.job_id)])
        self.on_run_created(op.job_id, run_id)

    def _do_batch(self, op: _Op) -> None:
        from mlflow.entities import Metric

        run_id = self._runs.get(op.job_id)
        if run_id is None:
            return
        points = [Metric(key, float(value), int(m.data["time"] * 1000), m.data["step"])
                  for m in op.data["ops"] for key, value in m.data["values"].items()]
        for i in range(0, len(points), MAX_BATCH):
            self._mlflow().log_batch(run_id, metrics=points[i:i + MAX_BATCH])

    def _do_attach(self, op: _Op) -> None:
        self._runs[op.job_id] = op.data["run_id"]

    def _do_end(self, op: _Op) -> None:
        if op.job_id not in self._runs and op.job_id in self._starts:  # its run was never created
            self._do_start(self._starts[op.job_id])
        run_id = self._runs.get(op.job_id)
        if run_id is None:
            return
        client = self._mlflow()
        self._catch_up(client, op.job_id, run_id)
        for key, value in op.data["tags"].items():
            client.set_tag(run_id, key, value)
        for path in map(Path, op.data["artifacts"]):
            try:
                if path.is_file():
                    client.log_artifact(run_id, str(path))
                elif path.is_dir():  # a save_pretrained checkpoint folder: the model, not the training state
                    files = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith(RESUME_STATE))
                    for file in files:
                        folder = file.parent.relative_to(path)
                        where = path.name if folder == Path(".") else f"{path.name}/{folder}"
                        client.log_artifact(run_id, str(file), where)
            except Exception:
                log.exception("could not log artifact %s", path)
        if op.data.get("results"):
            try:
                log_results(client, run_id, *op.data["results"])
            except Exception:
                log.exception("could not log the validation results of job %s", op.job_id)
        client.set_terminated(run_id, status=STATUS.get(op.data["state"], "FAILED"))
        self._runs.pop(op.job_id, None)
        self._starts.pop(op.job_id, None)
        self._ended.add(op.job_id)
        if self.on_ended is not None:
            self.on_ended(op.job_id)

    def _do_export(self, op: _Op) -> None:
        from mlflow.entities import Metric, RunTag

        client, run_id, now = self._mlflow(), op.data["run_id"], int(time.time() * 1000)
        for path in op.data["files"]:
            client.log_artifact(run_id, str(path), f"{op.data.get('under', 'exports')}/{op.data['folder']}")
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in op.data["metrics"].items()],
                         tags=[RunTag(k, v) for k, v in op.data["tags"].items()])

    def _catch_up(self, client, job_id: str, run_id: str) -> None:
        """Log the store's metric points the run lacks (by key and step)."""
        from mlflow.entities import Metric

        if self.metric_points is None:
            return
        by_key: dict[str, list[tuple[int, float, float]]] = {}
        for key, step, value, when in self.metric_points(job_id):
            by_key.setdefault(key, []).append((step, value, when))
        missing = []
        for key, points in by_key.items():
            have = {m.step for m in client.get_metric_history(run_id, key)}
            missing += [Metric(key, value, int(when * 1000), step) for step, value, when in points if step not in have]
        for i in range(0, len(missing), MAX_BATCH):
            client.log_batch(run_id, metrics=missing[i:i + MAX_BATCH])
        if missing:
            log.info("job %s: logged %d metric point(s) MLflow had missed", job_id, len(missing))

    def _sweep_run(self, job_id: str) -> str:
        """The run of the sweep `job_id` is a trial of ('' for other jobs), made here with its first trial's.
        A run MLflow already holds for the sweep (a daemon that made it died before its id was stored) is
        taken up, not made twice."""
        from mlflow.entities import Param

        sweep = self.sweep_of(job_id) if self.sweep_of is not None else None
        if not sweep:
            return ""
        run_id = sweep["run_id"] or self._sweep_runs.get(sweep["sweep_id"], "")
        if not run_id:
            client = self._mlflow()
            found = self._find_sweep_run(client, sweep["sweep_id"])
            run = found or client.create_run(self._experiment_id, run_name=sweep["name"],
                                             tags={"visionyard.sweep_id": sweep["sweep_id"]})
            run_id = run.info.run_id
            logged = run.data.params if found else {}
            missing = [Param(k, v) for k, v in sweep["params"].items() if k not in logged]
            for i in range(0, len(missing), MAX_PARAMS_PER_BATCH):
                client.log_batch(run_id, params=missing[i:i + MAX_PARAMS_PER_BATCH])
            sweep["on_created"](run_id)
        self._sweep_runs[sweep["sweep_id"]] = run_id
        return run_id

    def _find_sweep_run(self, client, sweep_id: str):
        """The sweep's run in the experiment (the first made, were there several; not a deleted one), or None."""
        runs = client.search_runs([self._experiment_id], f"tags.`visionyard.sweep_id` = '{sweep_id}'",
                                  max_results=1, order_by=["attributes.start_time ASC"])
        return runs[0] if runs else None

    def _do_sweep_end(self, op: _Op) -> None:
        run_id = op.data["run_id"] or self._sweep_runs.get(op.job_id)
        if not run_id:
            return
        client = self._mlflow()
        for key, value in op.data["tags"].items():
            client.set_tag(run_id, key, value)
        if op.data["best_job"]:
            for run in client.search_runs([self._experiment_id],
                                          f"tags.`visionyard.job_id` = '{op.data['best_job']}'", max_results=5):
                client.set_tag(run.info.run_id, "visionyard.sweep.best", "true")
        client.set_terminated(run_id, status={"FINISHED": "FINISHED", "CANCELLED": "KILLED"}.get(op.data["state"],
                                                                                                  "FINISHED"))

    def _do_flush(self, op: _Op) -> None:
        op.data["done"].set()
