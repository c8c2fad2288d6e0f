"""The sweep engine: the daemon's one thread that owns every study.

A sweep is a client of the queue. For each running sweep the engine asks its study for a trial,
merges the sampled values into the base job spec and submits it as an ordinary job (validated like
any spec: a refused combination is a failed trial with the reason); it listens to the same store
commits watch streams hear, so after each epoch's objective metric it reports to the trial and
asks the pruner, and cancels a pruned trial's job with the reason (`Cause.PRUNED`); when a trial's
job ends it tells the study the outcome. Nothing in the launch path knows about sweeps.

Restarts: trials' jobs are adopted like any job; at start the engine looks at every trial not yet
told (its job may have ended while the daemon was down) and goes on with sweeps that have budget left.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from runner.core.failures import Cause
from runner.core.runtime import Runtime
from runner.core.store import JobNotFound, JobState
from runner.core.sweeps import study as st
from runner.core.sweeps.records import (CANCELLED, COMPLETE, FAIL, FINISHED, PRUNED, RUNNING, STOPPED,
                                        TRIAL_RUNNING, SweepRecord, SweepTable, TrialRecord)
from runner.core.sweeps.spec import SweepSpec, check_sweep, merged
from runner.spec.validate import CUSTOM, validate_job_spec
from runner.spec.wire import SpecError

log = logging.getLogger("visionyard.sweeps")
PASS_SECONDS = 1.0  # a sweep's budget and timeout are looked at least this often


class SweepEngine:
    def __init__(self, rt: Runtime, scheduler):
        self.rt, self.scheduler = rt, scheduler
        self.table = SweepTable(rt.store)
        self._storage = None
        self._studies: dict[str, Any] = {}
        self._specs: dict[str, SweepSpec] = {}
        self._jobs: dict[str, tuple[str, int]] = {}  # job id → (sweep id, trial number), trials not told yet
        self._seen: dict[str, int] = {}  # job id → the last event seq looked at
        self._handles: dict[str, tuple[Any, set[int]]] = {}  # job id → its study trial, the epochs reported to it
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._changed = threading.Condition()
        self.version = 0  # bumped at every change a watcher of a sweep would see
        self._thread = threading.Thread(target=self._loop, name="sweeps", daemon=True)
        rt.store.add_listener(self._on_commit)
        rt.tracker.sweep_of = self.sweep_of

    # ------------------------------------------------------------ the daemon's calls

    def start(self) -> None:
        for sweep in self.table.list():
            for trial in self.table.trials(sweep.id):
                if not trial.told and trial.job_id:
                    self._jobs[trial.job_id] = (sweep.id, trial.number)
                    self._dirty.add(trial.job_id)
        self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def create(self, raw: dict[str, Any], resume: bool = False) -> SweepRecord:
        """A checked sweep, stored RUNNING (its study is made and its trials asked on the engine's
        thread); SpecError names what is wrong before any trial runs. `resume` adds `trials` trials to
        the ended sweep of the same name (a grid sweep: at most as many as its points left to run)."""
        sweep, _base, warnings = check_sweep(raw, repos=self.rt.repos)
        name = sweep.name or str(sweep.base.get("name") or f"{sweep.base.get('framework')}-{sweep.base.get('model')}")
        stored = sweep.model_dump(mode="json")
        stored["name"] = name
        if resume:
            return self._resume(name, sweep.trials)
        record = self.table.create(name, stored, sweep.trials, warnings)
        self._changed_now(wake=True)
        return record

    def _resume(self, name: str, asked: int) -> SweepRecord:
        try:
            old = self.table.get(name)
        except KeyError:
            raise SpecError([("name", f"no sweep named {name!r} to resume (see `visionyard sweeps list`)")]) from None
        if old.state == RUNNING:
            raise SpecError([("name", f"sweep {old.id} ({name}) is still running; --resume adds trials to an "
                                      "ended one")])
        trials = self.table.trials(old.id)
        added, message = asked, f"resumed: {asked} more trial(s)"
        if self._spec(old).sampler.type == "grid":
            added, message = self._grid_resume(old, trials, asked)
        self.table.update(old.id, state=RUNNING, trials=len(trials) + added, finished_at=None,
                          started_at=time.time(), message=message)
        self._changed_now(wake=True)
        return self.table.get(old.id)

    def _grid_resume(self, sweep: SweepRecord, trials: list[TrialRecord], asked: int) -> tuple[int, str]:
        """How many trials resuming a grid sweep adds, and its message: its points left to run, at most
        `asked` (`study.points_left` says which points may run again); SpecError when none is left."""
        size, left = grid_points_left(self._spec(sweep), trials)
        if left == 0:
            named, ending = f"sweep {sweep.id} ({sweep.name})", sum(not t.told for t in trials)
            if ending:
                raise SpecError([("name", f"{named}: every point of its grid of {size} has a trial that ran or is "
                                          f"running ({ending} still ending); resume once they have ended")])
            raise SpecError([("name", f"{named}: all {size} points of its grid have run; nothing to resume. To "
                                      "search further, start a sweep of another name with a wider grid, or with "
                                      "sampler random or tpe")])
        if left < asked:
            return left, (f"resumed: {left} more trial(s), only {left} of its grid's {size} points being left to "
                          f"run ({asked} asked)")
        return asked, f"resumed: {asked} more trial(s)"

    def cancel(self, sweep_id: str) -> SweepRecord:
        """No new trial; the running ones are cancelled (and told FAIL)."""
        record = self.table.get(sweep_id)
        if self.table.end(record.id, CANCELLED, "cancelled by user"):
            for trial in self.table.trials(record.id):
                if not trial.told and trial.job_id:
                    self.scheduler.cancel(trial.job_id, f"its sweep {record.id} was cancelled")
            self._finish_tracking(record.id)
        self._changed_now(wake=True)
        return self.table.get(record.id)

    def wait_change(self, version: int, timeout: float) -> int:
        """Block until something changed after `version` (or `timeout`); the version now."""
        with self._changed:
            self._changed.wait_for(lambda: self.version != version or self._stopping.is_set(), timeout)
            return self.version

    # ------------------------------------------------------------ the loop

    def _on_commit(self, job_ids: set[str]) -> None:
        """The store's listener (the writer's thread, store locked): only hand the news on."""
        jobs = self._jobs
        hits = [job_id for job_id in job_ids if job_id in jobs]
        if hits:
            with self._lock:
                self._dirty.update(hits)
            self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(PASS_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                if self._storage is None:
                    self._storage = st.open_storage(self.rt.paths.home)
                with self._lock:
                    dirty, self._dirty = self._dirty, set()
                for job_id in dirty:
                    self._observe(job_id)
                for sweep in self.table.list((RUNNING,)):
                    self._advance(sweep)
            except Exception:  # a sweep's bug must never take the daemon down; it is tried again next pass
                log.exception("sweep pass failed")

    def _spec(self, sweep: SweepRecord) -> SweepSpec:
        if sweep.id not in self._specs:
            self._specs[sweep.id] = SweepSpec.model_validate(sweep.spec)
        return self._specs[sweep.id]

    def _study(self, sweep: SweepRecord):
        if sweep.id not in self._studies:
            self._studies[sweep.id] = st.load_study(self._storage, sweep.study_name, self._spec(sweep))
        return self._studies[sweep.id]

    def _observe(self, job_id: str) -> None:
        """A trial's job got events: report new objective values (and prune), or tell how it ended."""
        found = self._jobs.get(job_id)
        if found is None:
            return
        sweep, trial = self.table.get(found[0]), self.table.trial_of_job(job_id)
        if trial is None or trial.told:
            self._jobs.pop(job_id, None)
            return
        try:
            state = self.rt.store.state(job_id)
        except JobNotFound:
            return self._tell(sweep, trial, FAIL, None, reason="its job is gone from the store")
        spec = self._spec(sweep)
        metric, seen = spec.objective.metric, self._seen.get(job_id, 0)
        events = self.rt.store.events(job_id, seen, include_logs=False, limit=10_000)
        if events:
            self._seen[job_id] = events[-1].seq
        steps = [(e.metrics.step, e.metrics.values[metric], e.time) for e in events
                 if e.WhichOneof("kind") == "metrics" and metric in e.metrics.values]
        if steps and not trial.pruned_at:  # the epochs' values, even of a job that ended: the pruner's medians
            self._report(sweep, trial, steps, decide=sweep.state == RUNNING and not state.is_terminal())
            self._changed_now()
        if state.is_terminal():
            self._ended(sweep, trial, state)

    def _report(self, sweep: SweepRecord, trial: TrialRecord, steps: list[tuple[int, float, float]],
                decide: bool = True) -> None:
        study = self._study(sweep)
        if trial.job_id not in self._handles:  # the study's trial, and the epochs it holds (a restart: some)
            known = st.frozen(study, trial.number)
            if known.state.is_finished():
                return
            self._handles[trial.job_id] = (st.trial_handle(study, trial.number), set(known.intermediate_values))
        handle, reported = self._handles[trial.job_id]
        for step, value, _ in steps:
            if step not in reported and math.isfinite(value):
                handle.report(value, step)
                reported.add(step)
        step = steps[-1][0]
        if decide and handle.should_prune():
            reason = st.prune_reason(study, self._spec(sweep), st.frozen(study, trial.number), step)
            self.table.mark_pruned(sweep.id, trial.number, step, reason)
            log.info("sweep %s: trial %d (job %s) %s", sweep.id, trial.number, trial.job_id, reason)
            self.scheduler.cancel(trial.job_id, reason, Cause.PRUNED)
            self._changed_now()

    def _ended(self, sweep: SweepRecord, trial: TrialRecord, state: JobState) -> None:
        record = self.rt.store.get(trial.job_id)
        metric = self._spec(sweep).objective.metric
        values = [v for _k, _s, v in self.rt.store.metrics(trial.job_id, metric)]
        if state is JobState.CANCELLED and (record.cause == Cause.PRUNED.value or trial.pruned_at):
            return self._tell(sweep, trial, PRUNED, values[-1] if values else None, pruned_at=trial.pruned_at
                              or record.epoch, reason=trial.reason or "pruned")
        if state is JobState.SUCCEEDED and values:
            best = (max if self._spec(sweep).objective.direction == "maximize" else min)(values)
            return self._tell(sweep, trial, COMPLETE, best)
        if state is JobState.SUCCEEDED:
            return self._tell(sweep, trial, FAIL, None, reason=f"its job succeeded but never reported {metric}")
        why = (record.error or record.cause or state.value).split("\n")[0]
        return self._tell(sweep, trial, FAIL, None, reason=f"its job {state.value.lower()}: {why}")

    def _tell(self, sweep: SweepRecord, trial: TrialRecord, state: str, value: float | None, pruned_at: int = 0,
              reason: str = "") -> None:
        """The outcome into the study (unless a previous daemon told it already), then into the table."""
        from optuna.trial import TrialState

        study = self._study(sweep)
        if not st.frozen(study, trial.number).state.is_finished():
            optuna_state = {COMPLETE: TrialState.COMPLETE, PRUNED: TrialState.PRUNED}.get(state, TrialState.FAIL)
            study.tell(trial.number, value if state == COMPLETE else None, state=optuna_state, skip_if_finished=True)
        self.table.tell(sweep.id, trial.number, state, value, pruned_at, reason)
        if trial.job_id:
            self._jobs.pop(trial.job_id, None)
            self._seen.pop(trial.job_id, None)
            self._handles.pop(trial.job_id, None)
        self._changed_now(wake=True)

    def _advance(self, sweep: SweepRecord) -> None:
        """Submit trials while the budget and `parallel` allow; end the sweep when its last trial is told."""
        spec = self._spec(sweep)
        trials = self.table.trials(sweep.id)
        while not self._stopping.is_set():
            active = sum(not t.told for t in trials)
            failed = sum(t.state == FAIL for t in trials)
            stop = ""
            if spec.max_failed and failed >= spec.max_failed:
                stop = f"stopped after {failed} failed trial(s) (max_failed: {spec.max_failed})"
            elif spec.timeout and time.time() - sweep.started_at > spec.timeout:
                stop = f"stopped: its timeout of {spec.timeout:g} s passed"
            exhausted = spec.sampler.type == "grid" and grid_points_left(spec, trials)[1] == 0
            if stop or exhausted or len(trials) >= sweep.trials:
                if active == 0 and self.table.end(sweep.id, STOPPED if stop else FINISHED,
                                                  stop or self._summary(trials)):
                    self._finish_tracking(sweep.id)
                    self._changed_now()
                return
            if active >= spec.parallel:
                return
            trials.append(self._submit(sweep, {t.number for t in trials}))

    def _submit(self, sweep: SweepRecord, numbers: set[int]) -> TrialRecord:
        import optuna
        from optuna.trial import TrialState

        spec, study = self._spec(sweep), self._study(sweep)
        # a trial asked for before a daemon died, its job never stored: taken up again, not lost
        orphans = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.number not in numbers]
        trial = optuna.trial.Trial(study, orphans[0]._trial_id) if orphans else study.ask()
        params = {path: st.suggest(trial, path, param) for path, param in spec.space.items()}
        raw = merged(spec.base, params)
        base_name = spec.base.get("name")
        raw["name"] = f"{base_name} ({sweep.name} trial {trial.number})" if base_name else f"{sweep.name} trial {trial.number}"
        store = self.rt.store
        try:
            job = validate_job_spec(raw, repos=self.rt.repos)
            if problem := self.rt.devices.check(job.training.device):
                raise SpecError([("training.device", problem)])
        except SpecError as exc:
            reason = f"its spec was refused: {str(exc).splitlines()[0]}"
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)  # first: never left RUNNING, taken up again
            with store.atomic() as db:
                self.table.add_trial(db, sweep.id, trial.number, None, params, FAIL, reason)
            log.info("sweep %s: trial %d %s", sweep.id, trial.number, reason)
            self._changed_now()
            return TrialRecord(sweep.id, trial.number, None, params, FAIL, reason=reason)
        repo_spec = self.rt.repos.get(job.repo).model_dump(mode="json") if job.framework == CUSTOM else None
        with store.atomic() as db:
            record = store.create_job(job.model_dump(mode="json", exclude_none=True), job.display_name,
                                      job.training.epochs, repo_spec=repo_spec)
            self.table.add_trial(db, sweep.id, trial.number, record.id, params)
            self._jobs[record.id] = (sweep.id, trial.number)
        self.scheduler.notify()
        self._changed_now()
        return TrialRecord(sweep.id, trial.number, record.id, params, TRIAL_RUNNING)

    @staticmethod
    def _summary(trials: list[TrialRecord]) -> str:
        counts = {state: sum(t.state == state for t in trials) for state in (COMPLETE, PRUNED, FAIL)}
        return f"{len(trials)} trials: {counts[COMPLETE]} complete, {counts[PRUNED]} pruned, {counts[FAIL]} failed"

    def _changed_now(self, wake: bool = False) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()
        if wake:
            self._wake.set()

    # ------------------------------------------------------------ MLflow

    def sweep_of(self, job_id: str) -> dict[str, Any] | None:
        """What the tracker needs to nest a trial's MLflow run under its sweep's (None for other jobs)."""
        trial = self.table.trial_of_job(job_id)
        if trial is None:
            return None
        sweep = self.table.get(trial.sweep_id)
        spec = self._spec(sweep)
        params = {f"space.{path}": str(p.model_dump(exclude_none=True, exclude_defaults=True))[:500]
                  for path, p in spec.space.items()}
        params.update({"sampler": spec.sampler.type, "pruner": spec.pruner.type, "trials": str(sweep.trials),
                       "parallel": str(spec.parallel), "objective": f"{spec.objective.direction} {spec.objective.metric}"})
        return {"sweep_id": sweep.id, "run_id": sweep.mlflow_run_id, "name": sweep.name, "params": params,
                "on_created": lambda run_id: self.table.update(sweep.id, mlflow_run_id=run_id)}

    def _finish_tracking(self, sweep_id: str) -> None:
        end = getattr(self.rt.tracker, "end_sweep_run", None)
        sweep = self.table.get(sweep_id)
        if end is None:
            return
        trials = self.table.trials(sweep_id)
        best = best_trial(trials, self._spec(sweep).objective.direction)
        end(sweep_id, sweep.mlflow_run_id, sweep.state, best.job_id if best else "",
            {"visionyard.sweep.state": sweep.state, "visionyard.sweep.message": sweep.message[:500],
             **({"visionyard.sweep.best_trial": str(best.number), "visionyard.sweep.best_value": f"{best.value:.6g}",
                 "visionyard.sweep.best_job": best.job_id or ""} if best else {})})


def grid_points_left(spec: SweepSpec, trials: list[TrialRecord]) -> tuple[int, int]:
    """A grid sweep's size and how many of its points no trial has taken (`study.TAKEN`: run or running)."""
    grid = spec.grid_space()
    paths = sorted(grid)
    size = math.prod(len(values) for values in grid.values())
    taken = set()
    for trial in trials:
        point = tuple(trial.params.get(path) for path in paths)
        if trial.state in st.TAKEN and all(value in grid[path] for path, value in zip(paths, point)):
            taken.add(point)
    return size, size - len(taken)


def best_trial(trials: list[TrialRecord], direction: str) -> TrialRecord | None:
    done = [t for t in trials if t.state == COMPLETE and t.value is not None]
    if not done:
        return None
    return (max if direction == "maximize" else min)(done, key=lambda t: t.value)
