"""Sweeps and their trials in the job store's database (`state.db`).

A trial's row (its study trial number ↔ its job id) is written in the same transaction as its job
(`JobStore.atomic`), so a daemon killed around a submit leaves both or neither: no trial is lost
or counted twice. A trial is `told` once its outcome is in the study; a restarted daemon tells
those that ended while it was down.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from runner.core.store import JobStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_json TEXT NOT NULL,        -- the checked sweep spec, base inline
    state TEXT NOT NULL,            -- RUNNING, FINISHED, CANCELLED, STOPPED
    created_at REAL NOT NULL,
    started_at REAL NOT NULL,       -- of its latest run (a resume starts another): `timeout` counts from it
    finished_at REAL,
    trials INTEGER NOT NULL,        -- the budget (a resume raises it)
    message TEXT NOT NULL DEFAULT '',
    warnings_json TEXT NOT NULL DEFAULT '[]',
    mlflow_run_id TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sweep_trials (
    sweep_id TEXT NOT NULL,
    number INTEGER NOT NULL,        -- the study's trial number
    job_id TEXT,                    -- NULL: its spec was refused (reason says why)
    params_json TEXT NOT NULL,
    state TEXT NOT NULL,            -- RUNNING until told: COMPLETE, PRUNED, FAIL
    value REAL,
    pruned_at INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    PRIMARY KEY (sweep_id, number)
);
CREATE UNIQUE INDEX IF NOT EXISTS sweep_trials_job ON sweep_trials(job_id);
"""

RUNNING, FINISHED, CANCELLED, STOPPED = "RUNNING", "FINISHED", "CANCELLED", "STOPPED"
TRIAL_RUNNING, COMPLETE, PRUNED, FAIL = "RUNNING", "COMPLETE", "PRUNED", "FAIL"


class SweepNotFound(KeyError):
    pass


@dataclass
class TrialRecord:
    sweep_id: str
    number: int
    job_id: str | None
    params: dict[str, Any]
    state: str
    value: float | None = None
    pruned_at: int = 0
    reason: str = ""
    created_at: float = 0.0

    @property
    def told(self) -> bool:
        return self.state != TRIAL_RUNNING


@dataclass
class SweepRecord:
    id: str
    name: str
    spec: dict[str, Any]
    state: str
    created_at: float
    started_at: float
    trials: int
    finished_at: float | None = None
    message: str = ""
    warnings: list[str] = field(default_factory=list)
    mlflow_run_id: str = ""

    @property
    def study_name(self) -> str:
        return f"sweep-{self.id}"


class SweepTable:
    """The sweeps and trials tables, on the job store's connection and lock."""

    def __init__(self, store: JobStore):
        self.store = store
        with store.atomic() as db:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    def create(self, name: str, spec: dict[str, Any], trials: int, warnings: list[str]) -> SweepRecord:
        sweep_id, now = uuid.uuid4().hex[:12], time.time()
        with self.store.atomic() as db:
            db.execute("INSERT INTO sweeps (id, name, spec_json, state, created_at, started_at, trials, warnings_json)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (sweep_id, name, json.dumps(spec), RUNNING, now, now, trials, json.dumps(warnings)))
        return self.get(sweep_id)

    def get(self, key: str) -> SweepRecord:
        """By id, unique id prefix, or name (the newest sweep of that name)."""
        with self.store.atomic() as db:
            row = db.execute("SELECT * FROM sweeps WHERE id = ?", (key,)).fetchone()
            if row is None and key:
                rows = db.execute("SELECT * FROM sweeps WHERE substr(id, 1, ?) = ? LIMIT 2", (len(key), key)).fetchall()
                row = rows[0] if len(rows) == 1 else None
            if row is None and key:
                row = db.execute("SELECT * FROM sweeps WHERE name = ? ORDER BY created_at DESC LIMIT 1",
                                 (key,)).fetchone()
        if row is None:
            raise SweepNotFound(key)
        return _sweep(row)

    def list(self, states: tuple[str, ...] = (), limit: int = 0) -> list[SweepRecord]:
        query, args = "SELECT * FROM sweeps", list(states)
        if states:
            query += f" WHERE state IN ({','.join('?' * len(states))})"
        query += " ORDER BY created_at DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self.store.atomic() as db:
            return [_sweep(row) for row in db.execute(query, args).fetchall()]

    def update(self, sweep_id: str, **fields: Any) -> None:
        allowed = {"state", "finished_at", "trials", "message", "mlflow_run_id", "started_at"}
        if unknown := set(fields) - allowed:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self.store.atomic() as db:
            db.execute(f"UPDATE sweeps SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                       (*fields.values(), sweep_id))

    def end(self, sweep_id: str, state: str, message: str) -> bool:
        """RUNNING → `state`; False when it had ended already."""
        with self.store.atomic() as db:
            cursor = db.execute("UPDATE sweeps SET state = ?, message = ?, finished_at = ? WHERE id = ? AND state = ?",
                                (state, message, time.time(), sweep_id, RUNNING))
            return cursor.rowcount == 1

    # -------------------------------------------------------------- trials

    def add_trial(self, db: sqlite3.Connection, sweep_id: str, number: int, job_id: str | None,
                  params: dict[str, Any], state: str = TRIAL_RUNNING, reason: str = "") -> None:
        """Inside the caller's `store.atomic()`, beside the job's own insert."""
        db.execute("INSERT INTO sweep_trials (sweep_id, number, job_id, params_json, state, reason, created_at)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (sweep_id, number, job_id, json.dumps(params), state, reason, time.time()))

    def tell(self, sweep_id: str, number: int, state: str, value: float | None, pruned_at: int = 0,
             reason: str = "") -> None:
        with self.store.atomic() as db:
            db.execute("UPDATE sweep_trials SET state = ?, value = ?, pruned_at = ?, reason = ? "
                       "WHERE sweep_id = ? AND number = ?", (state, value, pruned_at, reason, sweep_id, number))

    def mark_pruned(self, sweep_id: str, number: int, epoch: int, reason: str) -> None:
        """The pruner's verdict, kept before the job is cancelled (the trial is told once the job ends)."""
        with self.store.atomic() as db:
            db.execute("UPDATE sweep_trials SET pruned_at = ?, reason = ? WHERE sweep_id = ? AND number = ?",
                       (epoch, reason, sweep_id, number))

    def trials(self, sweep_id: str) -> list[TrialRecord]:
        with self.store.atomic() as db:
            rows = db.execute("SELECT * FROM sweep_trials WHERE sweep_id = ? ORDER BY number", (sweep_id,)).fetchall()
        return [_trial(row) for row in rows]

    def trial_of_job(self, job_id: str) -> TrialRecord | None:
        with self.store.atomic() as db:
            row = db.execute("SELECT * FROM sweep_trials WHERE job_id = ?", (job_id,)).fetchone()
        return _trial(row) if row else None


def _sweep(row: sqlite3.Row) -> SweepRecord:
    data = dict(row)
    return SweepRecord(id=data["id"], name=data["name"], spec=json.loads(data["spec_json"]), state=data["state"],
                       created_at=data["created_at"], started_at=data["started_at"], trials=data["trials"],
                       finished_at=data["finished_at"], message=data["message"],
                       warnings=json.loads(data["warnings_json"] or "[]"), mlflow_run_id=data["mlflow_run_id"])


def _trial(row: sqlite3.Row) -> TrialRecord:
    data = dict(row)
    return TrialRecord(sweep_id=data["sweep_id"], number=data["number"], job_id=data["job_id"],
                       params=json.loads(data["params_json"]), state=data["state"], value=data["value"],
                       pruned_at=data["pruned_at"], reason=data["reason"], created_at=data["created_at"])
