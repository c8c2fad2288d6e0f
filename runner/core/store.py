"""The SQLite job store: jobs, their events (per-job sequence numbers) and metrics.

Every status change goes through `JobStore.transition`, which refuses to leave a final state,
stamps times and appends the status event in the same transaction. Writers share one
connection behind a lock; watchers wait on a condition that every append notifies.
"""

from __future__ import annotations

import json
import math
import secrets
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple

from protos import visionyard_pb2 as pb
from runner.auth import hash_token
from runner.spec.wire import TERMINAL_STATES


class JobState(str, Enum):
    QUEUED = "QUEUED"          # stored, waiting for a slot
    PREPARING = "PREPARING"    # building or reusing the env, cloning a repo
    RUNNING = "RUNNING"        # the child process is alive
    SUCCEEDED = "SUCCEEDED"    # exit code 0 and a final result
    FAILED = "FAILED"          # anything else; `error` says why
    CANCELLED = "CANCELLED"    # stopped on request

    def is_terminal(self) -> bool:
        return self in TERMINAL

    def to_proto(self) -> int:
        return pb.JobState.Value(self.value)


TERMINAL_PROTO = TERMINAL_STATES  # defined beside the wire, where the client (which imports no core) reads it
TERMINAL = frozenset(JobState(pb.JobState.Name(state)) for state in TERMINAL_PROTO)
ALLOWED = {
    JobState.QUEUED: {JobState.PREPARING, JobState.FAILED, JobState.CANCELLED},
    JobState.PREPARING: {JobState.RUNNING, JobState.FAILED, JobState.CANCELLED,
                         JobState.QUEUED},  # QUEUED: prepared again after a daemon restart
    JobState.RUNNING: {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED},
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    exit_code INTEGER,
    error TEXT NOT NULL DEFAULT '',
    job_dir TEXT NOT NULL DEFAULT '',
    env_name TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT '',
    token TEXT NOT NULL,              -- sha256 of the job's reporter token (never the token)
    pid INTEGER,
    pid_start INTEGER,
    mlflow_run_id TEXT NOT NULL DEFAULT '',
    best_checkpoint TEXT NOT NULL DEFAULT '',
    last_checkpoint TEXT NOT NULL DEFAULT '',
    epoch INTEGER NOT NULL DEFAULT 0,
    total_epochs INTEGER NOT NULL DEFAULT 0,
    last_batch_seq INTEGER NOT NULL DEFAULT 0,
    result_json TEXT,
    error_report TEXT NOT NULL DEFAULT '',
    repo_spec_json TEXT,
    log_offset INTEGER NOT NULL DEFAULT 0,
    tracking_done INTEGER NOT NULL DEFAULT 0,
    placement TEXT NOT NULL DEFAULT '',
    cause TEXT NOT NULL DEFAULT ''    -- why a FAILED or CANCELLED job ended so (a FailureCause name, lower case)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, position);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (job_id, key, step)
);
CREATE TABLE IF NOT EXISTS metric_files (
    job_id TEXT NOT NULL,
    source INTEGER NOT NULL,      -- the index of the repo spec's `metric_files` entry
    path TEXT NOT NULL,           -- the file read (what the entry's glob matched)
    position INTEGER NOT NULL,    -- bytes of complete lines applied (csv, json_lines), or records (json documents)
    PRIMARY KEY (job_id, source)
);
"""

UPDATABLE = frozenset({"token", "exit_code", "error", "job_dir", "env_name", "device", "pid", "pid_start", "mlflow_run_id",
                       "best_checkpoint", "last_checkpoint", "epoch", "last_batch_seq", "result_json",
                       "error_report", "log_offset", "tracking_done", "placement", "cause"})


class JobNotFound(KeyError):
    pass


class InvalidTransition(RuntimeError):
    pass


class BatchOutOfOrder(ValueError):
    pass


@dataclass
class JobRecord:
    id: str
    name: str
    spec: dict[str, Any]
    state: JobState
    created_at: float
    token_hash: str  # sha256 (hex) of the token the job's child got; set at launch
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    error: str = ""
    job_dir: str = ""
    env_name: str = ""
    device: str = ""
    pid: int | None = None
    pid_start: int | None = None
    mlflow_run_id: str = ""
    best_checkpoint: str = ""
    last_checkpoint: str = ""
    epoch: int = 0
    total_epochs: int = 0
    last_batch_seq: int = 0
    result: dict[str, Any] | None = None
    error_report: str = ""
    repo_spec: dict[str, Any] | None = None
    log_offset: int = 0          # bytes of output.log whose lines (and parsed metrics) are applied
    tracking_done: bool = False  # the MLflow run holds every metric and is ended
    placement: str = ""          # where the job runs: its process here, or its Ray submission and node
    cause: str = ""              # why a FAILED or CANCELLED job ended so (runner.core.failures.Cause)
    warnings: list[str] = field(default_factory=list)  # what the runner noticed about the run (add_warning)
    metrics: dict[str, float] = field(default_factory=dict)


class JobStore:
    def __init__(self, path: Path):
        self.path = path
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column in ("pid_start INTEGER", "repo_spec_json TEXT", "log_offset INTEGER NOT NULL DEFAULT 0",
                       "tracking_done INTEGER NOT NULL DEFAULT 0",
                       "placement TEXT NOT NULL DEFAULT ''",
                       "cause TEXT NOT NULL DEFAULT ''",
                       "warnings_json TEXT NOT NULL DEFAULT '[]'"):  # a state.db from an older version
            if column.split()[0] not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column}")
                if column.startswith("tracking_done"):  # runs of jobs ended before were ended then
                    self._db.execute("UPDATE jobs SET tracking_done = 1 WHERE state IN (?, ?, ?)",
                                     [s.value for s in TERMINAL])
        if self._db.execute("PRAGMA user_version").fetchone()[0] < 1:  # tokens were kept in plain text
            rows = self._db.execute("SELECT id, token FROM jobs").fetchall()
            self._db.executemany("UPDATE jobs SET token = ? WHERE id = ?", [(hash_token(t), i) for i, t in rows])
            self._db.execute("PRAGMA user_version = 1")
        self._lock = threading.RLock()
        self._depth = 0  # nesting of `atomic()` blocks held by the thread that holds the lock
        self._touched: set[str] = set()  # jobs the open transaction appended events to
        self._appended: list[tuple[str, int, str, pb.JobEvent]] = []  # ... and those events
        self._recent: OrderedDict[str, _RecentEvents] = OrderedDict()  # per job, the latest events
        self._recent_lock = threading.Lock()  # readers of `_recent` never wait for a database write
        self._listeners: list[Callable[[set[str]], None]] = []  # told which jobs got events, per commit

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -------------------------------------------------------------- jobs

    def create_job(self, spec: dict[str, Any], name: str, total_epochs: int,
                   repo_spec: dict[str, Any] | None = None) -> JobRecord:
        """A QUEUED job; `repo_spec` is the custom repo's spec as validated (what the job will run)."""
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        token = hash_token(secrets.token_hex(32))  # replaced at launch by the child's own
        with self._tx() as db:
            position = db.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, position, name, spec_json, state, created_at, token, total_epochs,"
                " repo_spec_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, position, name, json.dumps(spec), JobState.QUEUED.value, now, token, total_epochs,
                 json.dumps(repo_spec) if repo_spec is not None else None),
            )
            self._append(db, job_id, now, "status", _status_event(JobState.QUEUED, "queued"))
        return self.get(job_id)

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                rows = self._db.execute("SELECT * FROM jobs WHERE substr(id, 1, ?) = ? LIMIT 2",
                                        (len(job_id), job_id)).fetchall()
                if len(rows) != 1 or not job_id:
                    raise JobNotFound(job_id)
                row = rows[0]
            record = _record(row)
            record.metrics = self.latest_metrics(record.id)
            return record

    def state(self, job_id: str) -> JobState:
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return JobState(row[0])

    def list(self, states: Iterable[JobState] = (), limit: int = 0, causes: Iterable[str] = ()) -> list[JobRecord]:
        """Jobs, newest first; only those in `states` and of `causes` when given."""
        states, causes = [s.value for s in states], list(causes)
        query, where = "SELECT * FROM jobs", []
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
        if causes:
            where.append(f"cause IN ({','.join('?' * len(causes))})")
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY position DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._lock:
            records = [_record(row) for row in self._db.execute(query, [*states, *causes]).fetchall()]
            latest = self._latest_metrics_of([r.id for r in records])
        for record in records:
            record.metrics = latest.get(record.id, {})
        return records

    def next_queued(self) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY position LIMIT 1",
                                   (JobState.QUEUED.value,)).fetchone()
            return _record(row) if row else None

    def update(self, job_id: str, **fields: Any) -> None:
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if not fields:
            return
        assignments = ", ".join(f"{key} = ?" for key in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))

    def claim_batch(self, job_id: str, batch_seq: int) -> bool:
        """Record that a child's report batch is being applied: True for the next one, False for
        one already applied; a batch past the next is refused (BatchOutOfOrder): reports come in
        order, so a jump can only be forged, and would make every real batch after it a "resend"."""
        with self._tx() as db:
            cursor = db.execute("UPDATE jobs SET last_batch_seq = ? WHERE id = ? AND last_batch_seq = ?",
                                (batch_seq, job_id, batch_seq - 1))
            if cursor.rowcount == 1:
                return True
            row = db.execute("SELECT last_batch_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if batch_seq > row[0]:
                raise BatchOutOfOrder(f"report batch {batch_seq} is not the next one (expected {row[0] + 1})")
            return False

    def transition(self, job_id: str, state: JobState, message: str = "", **fields: Any) -> bool:
        """Move a job to `state`; False (and no change) when the move isn't allowed.

        The one door for status changes: terminal states are final, times are stamped here, and
        the status event is appended in the same transaction.
        """
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            current = JobState(row["state"])
            if state not in ALLOWED.get(current, ()):
                return False
            fields = dict(fields, state=state.value)
            if state is JobState.CANCELLED:
                fields.setdefault("cause", "cancelled")
            if state is JobState.PREPARING:
                fields["started_at"] = now
            if state.is_terminal():
                fields["finished_at"] = now
            assignments = ", ".join(f"{key} = ?" for key in fields)
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))
            self._append(db, job_id, now, "status", _status_event(state, message))
        return True

    # -------------------------------------------------------------- events and metrics

    def add_event(self, job_id: str, event: pb.JobEvent) -> int:
        now = event.time or time.time()
        with self._tx() as db:
            return self._append(db, job_id, now, event.WhichOneof("kind"), event)

    def add_logs(self, job_id: str, lines: list[str]) -> None:
        if not lines:
            return
        now = time.time()
        with self._tx() as db:
            for line in lines:
                self._append(db, job_id, now, "log", pb.JobEvent(log=pb.LogLine(text=line)))

    def add_warning(self, job_id: str, text: str) -> None:
        """Something the runner noticed about a run (a log pattern that never matched): kept on the job (its
        status shows it) and a line in its log (``[visionyard] warning: ...``), once per text."""
        with self._tx() as db:
            row = db.execute("SELECT warnings_json FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            warnings = json.loads(row[0] or "[]")
            if text in warnings:
                return
            db.execute("UPDATE jobs SET warnings_json = ? WHERE id = ?", (json.dumps([*warnings, text]), job_id))
            self._append(db, job_id, time.time(), "log", pb.JobEvent(log=pb.LogLine(text=f"[visionyard] warning: {text}")))

    def add_metrics(self, job_id: str, step: int, values: dict[str, float], when: float | None = None) -> int:
        now = when or time.time()
        with self._tx() as db:
            # NaN/inf (a diverged loss) stay in the event stream; the table keeps finite values only
            db.executemany("INSERT OR REPLACE INTO metrics (job_id, key, step, value, time) VALUES (?, ?, ?, ?, ?)",
                           [(job_id, key, step, float(value), now) for key, value in values.items()
                            if math.isfinite(value)])
            db.execute("UPDATE jobs SET epoch = MAX(epoch, ?) WHERE id = ?", (step, job_id))
            event = pb.JobEvent(metrics=pb.MetricsEvent(step=step, values=values))
            return self._append(db, job_id, now, "metrics", event)

    def metric_file_positions(self, job_id: str) -> dict[int, tuple[str, int]]:
        """How far each of a job's metric files is applied: source index -> (path, position)."""
        with self._lock:
            rows = self._db.execute("SELECT source, path, position FROM metric_files WHERE job_id = ?",
                                    (job_id,)).fetchall()
        return {source: (path, position) for source, path, position in rows}

    def set_metric_file_position(self, job_id: str, source: int, path: str, position: int) -> None:
        """Store with the metrics the file's new rows made (in one `atomic()` block), as the log's offset is."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO metric_files (job_id, source, path, position) VALUES (?, ?, ?, ?)",
                       (job_id, source, path, position))

    def metrics(self, job_id: str, key: str | None = None) -> list[tuple[str, int, float]]:
        query, args = "SELECT key, step, value FROM metrics WHERE job_id = ?", [job_id]
        if key:
            query, args = query + " AND key = ?", args + [key]
        with self._lock:
            return [tuple(row) for row in self._db.execute(query + " ORDER BY step, key", args).fetchall()]

    def metric_points(self, job_id: str) -> list[tuple[str, int, float, float]]:
        """Every (key, step, value, time) of a job: what its MLflow run must hold."""
        with self._lock:
            return [tuple(row) for row in self._db.execute(
                "SELECT key, step, value, time FROM metrics WHERE job_id = ? ORDER BY step, key", (job_id,)).fetchall()]

    def latest_metrics(self, job_id: str) -> dict[str, float]:
        return self._latest_metrics_of([job_id]).get(job_id, {})

    def _latest_metrics_of(self, job_ids: list[str]) -> dict[str, dict[str, float]]:
        """The newest value of every metric, for many jobs in one query."""
        latest: dict[str, dict[str, float]] = {}
        for start in range(0, len(job_ids), 500):
            chunk = job_ids[start:start + 500]
            with self._lock:
                rows = self._db.execute(
                    f"SELECT job_id, key, value FROM metrics m WHERE job_id IN ({','.join('?' * len(chunk))}) "
                    "AND step = (SELECT MAX(step) FROM metrics WHERE job_id = m.job_id AND key = m.key)",
                    chunk).fetchall()
            for job_id, key, value in rows:
                latest.setdefault(job_id, {})[key] = value
        return latest

    def events(self, job_id: str, after_seq: int = 0, include_logs: bool = True, limit: int = 500) -> list[pb.JobEvent]:
        """Events after `after_seq`, oldest first. Recent ones come from memory (shared, read-only
        messages: don't change them), so many watchers of one job cost no queries."""
        with self._recent_lock:
            recent = self._recent.get(job_id)
            if recent and recent.first <= after_seq + 1:
                return recent.after(after_seq, include_logs, limit)
        query = "SELECT seq, time, data FROM events WHERE job_id = ? AND seq > ?"
        if not include_logs:
            query += " AND kind != 'log'"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq LIMIT ?", (job_id, after_seq, limit)).fetchall()
        events = []
        for seq, when, data in rows:
            event = pb.JobEvent.FromString(data)
            event.job_id, event.seq, event.time = job_id, seq, when
            events.append(event)
        return events

    def recent_wire(self, job_id: str, after_seq: int, include_logs: bool = True,
                    limit: int = 500) -> list[WireEvent] | None:
        """Events after `after_seq` as bytes on the wire, from memory only (never waits for the
        database); None when memory doesn't reach back that far (`wire_events` reads the rest)."""
        with self._recent_lock:
            recent = self._recent.get(job_id)
            if recent and recent.first <= after_seq + 1:
                return recent.wire_after(after_seq, include_logs, limit)
        return None

    def wire_events(self, job_id: str, after_seq: int, include_logs: bool = True, limit: int = 500) -> list[WireEvent]:
        found = self.recent_wire(job_id, after_seq, include_logs, limit)
        if found is not None:
            return found
        return [_wire(event) for event in self.events(job_id, after_seq, include_logs, limit)]

    def add_listener(self, listener: Callable[[set[str]], None]) -> None:
        """`listener(job_ids)` after every commit that added events to those jobs; it runs on the
        writer's thread with the store locked, so it must only hand the news on."""
        self._listeners.append(listener)

    def atomic(self) -> "_Transaction":
        """One transaction around several store calls (they nest): all of them commit, or none."""
        return _Transaction(self)

    # -------------------------------------------------------------- internals

    def _append(self, db: sqlite3.Connection, job_id: str, when: float, kind: str, event: pb.JobEvent) -> int:
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?", (job_id,)).fetchone()[0]
        event.ClearField("job_id")
        self._touched.add(job_id)
        data = event.SerializeToString()
        db.execute("INSERT INTO events (job_id, seq, time, kind, data) VALUES (?, ?, ?, ?, ?)",
                   (job_id, seq, when, kind, data))
        shared = pb.JobEvent.FromString(data)
        shared.job_id, shared.seq, shared.time = job_id, seq, when
        self._appended.append((job_id, seq, kind, shared))
        return seq

    def _remember(self, appended: list[tuple[str, int, str, pb.JobEvent]]) -> None:
        wire = [(job_id, seq, kind, event, _wire(event)) for job_id, seq, kind, event in appended]
        with self._recent_lock:
            for job_id, seq, kind, event, data in wire:
                recent = self._recent.get(job_id)
                if recent is None or recent.next != seq:  # none yet, or a gap: start afresh here
                    recent = self._recent[job_id] = _RecentEvents(seq)
                self._recent.move_to_end(job_id)
                recent.add(kind, event, data)
            while len(self._recent) > RECENT_JOBS:
                self._recent.popitem(last=False)

    def _tx(self) -> "_Transaction":
        return _Transaction(self)


RECENT_JOBS, RECENT_EVENTS = 256, 2000  # jobs whose latest events stay in memory, and how many each


class _RecentEvents:
    """A job's latest events, contiguous in seq: `first` .. `next - 1`."""

    __slots__ = ("first", "next", "kinds", "events", "wire")

    def __init__(self, first: int):
        self.first = self.next = first
        self.kinds: list[str] = []
        self.events: list[pb.JobEvent] = []
        self.wire: list[WireEvent] = []

    def add(self, kind: str, event: pb.JobEvent, wire: WireEvent) -> None:
        self.kinds.append(kind)
        self.events.append(event)
        self.wire.append(wire)
        self.next += 1
        if len(self.events) > 2 * RECENT_EVENTS:
            drop = len(self.events) - RECENT_EVENTS
            del self.kinds[:drop], self.events[:drop], self.wire[:drop]
            self.first += drop

    def after(self, after_seq: int, include_logs: bool, limit: int) -> list[pb.JobEvent]:
        return self._after(self.events, after_seq, include_logs, limit)

    def wire_after(self, after_seq: int, include_logs: bool, limit: int) -> list[WireEvent]:
        return self._after(self.wire, after_seq, include_logs, limit)

    def _after(self, items: list, after_seq: int, include_logs: bool, limit: int) -> list:
        start = max(0, after_seq + 1 - self.first)
        if include_logs:
            return items[start:start + limit]
        return [item for kind, item in zip(self.kinds[start:], items[start:]) if kind != "log"][:limit]


class WireEvent(NamedTuple):
    """An event as a watch stream sends it: serialized once, shared by every stream."""

    seq: int
    kind: str      # the JobEvent's `kind` field: status, log, metrics, ...
    data: bytes    # the serialized JobEvent
    final: bool    # a status change to a terminal state: nothing of the job's run follows it


def _wire(event: pb.JobEvent) -> WireEvent:
    kind = event.WhichOneof("kind") or ""
    final = kind == "status" and event.status.state in TERMINAL_PROTO
    return WireEvent(event.seq, kind, event.SerializeToString(), final)


class _Transaction:
    def __init__(self, store: JobStore):
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        store._lock.acquire()
        if store._depth == 0:
            try:
                store._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                store._lock.release()
                raise
        store._depth += 1
        return store._db

    def __exit__(self, exc_type, exc, tb) -> None:
        store = self.store
        try:
            store._depth -= 1
            if store._depth == 0:
                touched, store._touched = store._touched, set()
                appended, store._appended = store._appended, []
                try:
                    store._db.execute("ROLLBACK" if exc_type else "COMMIT")
                except sqlite3.Error:
                    if exc_type is None:  # the commit failed (disk full...): nothing was written
                        if store._db.in_transaction:
                            store._db.execute("ROLLBACK")
                        raise
                if exc_type is None:
                    store._remember(appended)
                    if touched:
                        for listener in store._listeners:
                            listener(touched)
        finally:
            store._lock.release()


def _status_event(state: JobState, message: str) -> pb.JobEvent:
    return pb.JobEvent(status=pb.StatusChange(state=state.to_proto(), message=message))


def _record(row: sqlite3.Row) -> JobRecord:
    data = dict(row)
    return JobRecord(
        id=data["id"], name=data["name"], spec=json.loads(data["spec_json"]), state=JobState(data["state"]),
        created_at=data["created_at"], token_hash=data["token"], started_at=data["started_at"],
        finished_at=data["finished_at"], exit_code=data["exit_code"], error=data["error"],
        job_dir=data["job_dir"], env_name=data["env_name"], device=data["device"], pid=data["pid"], pid_start=data["pid_start"],
        mlflow_run_id=data["mlflow_run_id"], best_checkpoint=data["best_checkpoint"],
        last_checkpoint=data["last_checkpoint"], epoch=data["epoch"], total_epochs=data["total_epochs"],
        last_batch_seq=data["last_batch_seq"],
        result=json.loads(data["result_json"]) if data["result_json"] else None,
        error_report=data["error_report"],
        repo_spec=json.loads(data["repo_spec_json"]) if data["repo_spec_json"] else None,
        log_offset=data["log_offset"], tracking_done=bool(data["tracking_done"]), placement=data["placement"],
        cause=data["cause"], warnings=json.loads(data["warnings_json"] or "[]"),
    )
