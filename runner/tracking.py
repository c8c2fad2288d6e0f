"""MLflow logging for every job, from the daemon, off the scheduling path.

A single background thread owns the MLflow client. Metrics are queued and sent with
`log_batch` (many points per request); a slow or broken tracking store never delays a job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("visionyard.tracking")

EXPERIMENT = "visionyard"
MAX_BATCH = 1000
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


class Tracker:
    def __init__(self, tracking_uri: str, artifact_root: Path, on_run_created: Callable[[str, str], None]):
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.on_run_created = on_run_created
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._runs: dict[str, str] = {}
        self._client = None
        self._experiment_id: str | None = None
        self._thread = threading.Thread(target=self._loop, name="mlflow", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public, non-blocking

    def start_run(self, job_id: str, run_name: str, params: dict[str, str], tags: dict[str, str]) -> None:
        self._queue.put(_Op("start", job_id, {"name": run_name, "params": params, "tags": tags}))

    def log_metrics(self, job_id: str, step: int, values: dict[str, float], when: float | None = None) -> None:
        self._queue.put(_Op("metrics", job_id, {"step": step, "values": values, "time": when or time.time()}))

    def end_run(self, job_id: str, state: str, artifacts: list[Path], tags: dict[str, str] | None = None) -> None:
        self._queue.put(_Op("end", job_id, {"state": state, "artifacts": artifacts, "tags": tags or {}}))

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
        while True:
            ops = [self._queue.get()]
            while len(ops) < MAX_BATCH:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._run_all([op for op in ops if op is not None])
            if None in ops:
                return

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
        except Exception:  # tracking must never take the daemon down
            log.exception("MLflow %s for job %s failed", op.kind, op.job_id)
            if op.kind == "flush":
                op.data["done"].set()

    def _mlflow(self):
        if self._client is None:
            import mlflow
            from mlflow.tracking import MlflowClient

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

        client = self._mlflow()
        run = client.create_run(self._experiment_id, run_name=op.data["name"], tags=op.data["tags"])
        run_id = run.info.run_id
        self._runs[op.job_id] = run_id
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

    def _do_end(self, op: _Op) -> None:
        run_id = self._runs.pop(op.job_id, None)
        if run_id is None:
            return
        client = self._mlflow()
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
        client.set_terminated(run_id, status=STATUS.get(op.data["state"], "FAILED"))

    def _do_flush(self, op: _Op) -> None:
        op.data["done"].set()
