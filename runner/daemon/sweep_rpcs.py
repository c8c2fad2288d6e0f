"""CreateSweep, GetSweep, ListSweeps, CancelSweep, WatchSweep: thin, over `runner.core.sweeps`' engine."""

from __future__ import annotations

import asyncio
import json
import math

import grpc

from protos import visionyard_pb2 as pb
from runner.core.store import JobNotFound
from runner.core.sweeps.engine import SweepEngine, best_trial
from runner.core.sweeps.records import RUNNING, SweepNotFound, SweepRecord
from runner.spec.wire import SpecError, quote

MAX_SWEEP_SPEC = 1 << 20  # bytes of a sweep spec's JSON
WATCH_POLL_SECONDS = 5.0  # a watch looks again at least this often


def sweep_to_proto(engine: SweepEngine, record: SweepRecord, with_trials: bool = True) -> pb.Sweep:
    trials = engine.table.trials(record.id)
    objective = record.spec.get("objective") or {}
    sweep = pb.Sweep(id=record.id, name=record.name, state=record.state, spec_json=json.dumps(record.spec),
                     metric=objective.get("metric") or "", direction=objective.get("direction") or "",
                     trials=record.trials, parallel=int(record.spec.get("parallel") or 1), message=record.message,
                     warnings=record.warnings, created_at=record.created_at, finished_at=record.finished_at or 0,
                     mlflow_run_id=record.mlflow_run_id, best_trial=-1,
                     done=sum(t.told for t in trials), pruned=sum(t.state == "PRUNED" for t in trials),
                     failed=sum(t.state == "FAIL" for t in trials))
    best = best_trial(trials, sweep.direction)
    if best is not None:
        sweep.best_trial, sweep.best_value, sweep.best_params_json = best.number, best.value, json.dumps(best.params)
    if with_trials:
        for trial in trials:
            item = pb.SweepTrial(number=trial.number, job_id=trial.job_id or "", params_json=json.dumps(trial.params),
                                 state=trial.state, pruned_at=trial.pruned_at, reason=trial.reason)
            if trial.value is not None and math.isfinite(trial.value):
                item.has_value, item.value = True, trial.value
            if trial.job_id:
                try:
                    job = engine.rt.store.get(trial.job_id)
                except JobNotFound:
                    pass
                else:
                    item.job_state, item.epoch = job.state.to_proto(), job.epoch
                    metric = job.metrics.get(sweep.metric)
                    if not item.has_value and metric is not None and math.isfinite(metric):
                        item.has_value, item.value = True, metric
            sweep.trial_list.append(item)
    return sweep


class SweepRpcs:
    """Mixed into the Runner servicer; `self.sweeps` is the daemon's engine."""

    sweeps: SweepEngine | None = None

    def _engine(self, context) -> SweepEngine:
        if self.sweeps is None:
            context.abort(grpc.StatusCode.UNAVAILABLE, "this daemon runs no sweeps")
        return self.sweeps

    def _sweep_or_abort(self, engine: SweepEngine, key: str, context) -> SweepRecord:
        if not key or len(key) > 200 or not key.isprintable():
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"sweep_id {quote(key, 80)} is not a sweep id or name (see `visionyard sweeps list`)")
        try:
            return engine.table.get(key)
        except SweepNotFound:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no sweep {quote(key, 80)} (see `visionyard sweeps list`)")

    def CreateSweep(self, request: pb.CreateSweepRequest, context) -> pb.Sweep:
        engine = self._engine(context)
        if len(request.spec_json) > MAX_SWEEP_SPEC:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"the sweep spec is over {MAX_SWEEP_SPEC} bytes")
        try:
            raw = json.loads(request.spec_json, parse_constant=lambda name: _refuse(name))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid sweep spec:\nnot JSON: {exc}")
        try:
            record = engine.create(raw, resume=request.resume)
        except SpecError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid sweep spec:\n{exc}")
        return sweep_to_proto(engine, record)

    def GetSweep(self, request: pb.GetSweepRequest, context) -> pb.Sweep:
        engine = self._engine(context)
        return sweep_to_proto(engine, self._sweep_or_abort(engine, request.sweep_id, context))

    def ListSweeps(self, request: pb.ListSweepsRequest, context) -> pb.ListSweepsResponse:
        engine = self._engine(context)
        return pb.ListSweepsResponse(sweeps=[sweep_to_proto(engine, r, with_trials=False)
                                             for r in engine.table.list(limit=request.limit)])

    def CancelSweep(self, request: pb.CancelSweepRequest, context) -> pb.Sweep:
        engine = self._engine(context)
        record = self._sweep_or_abort(engine, request.sweep_id, context)
        if record.state != RUNNING:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"sweep {record.id} is already {record.state}; "
                                                               "nothing to cancel")
        return sweep_to_proto(engine, engine.cancel(record.id))

    async def WatchSweep(self, request: pb.WatchSweepRequest, context):
        """The sweep now, then again at each change the engine makes (a trial submitted, an epoch
        reported, a prune, an outcome told); ends after the sweep has ended."""
        engine = self.sweeps
        if engine is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this daemon runs no sweeps")
        loop = asyncio.get_running_loop()
        try:
            record = await loop.run_in_executor(self.pool, engine.table.get, request.sweep_id)
        except SweepNotFound:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"no sweep {quote(request.sweep_id, 80)} (see `visionyard sweeps list`)")
        version, last = engine.version, b""
        while True:
            record = await loop.run_in_executor(self.pool, engine.table.get, record.id)
            message = await loop.run_in_executor(self.pool, sweep_to_proto, engine, record)
            data = message.SerializeToString()
            if data != last:
                last = data
                yield message
            if record.state != RUNNING:
                return
            version = await loop.run_in_executor(self.pool, engine.wait_change, version, WATCH_POLL_SECONDS)


def _refuse(name: str):
    raise ValueError(f"{name} is not a number a sweep spec may hold")
