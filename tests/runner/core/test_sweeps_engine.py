"""The sweep engine on a real store and study without a daemon (the test ends each trial's job): around a
daemon's death, a trial the study handed out whose job was never stored is taken up again (not lost, not
asked twice), and an outcome the study already holds is not told twice; a resumed grid sweep runs only the
points that have no result yet."""

from __future__ import annotations

from types import SimpleNamespace

from optuna.trial import TrialState

from runner.core.store import JobState, JobStore
from runner.core.sweeps import study as studies
from runner.core.sweeps.engine import SweepEngine
import pytest

from runner.spec.wire import SpecError
from tests.inprocess_daemon import dataset, fake_job


class Scheduler:
    def __init__(self):
        self.cancelled = []

    def notify(self):
        pass

    def cancel(self, job_id, reason="", cause=None):
        self.cancelled.append((job_id, reason, cause))
        return True


def engine_on(home):
    home.mkdir(parents=True, exist_ok=True)
    rt = SimpleNamespace(store=JobStore(home / "state.db"), paths=SimpleNamespace(home=home), repos=None,
                         devices=SimpleNamespace(check=lambda device: ""), tracker=SimpleNamespace())
    engine = SweepEngine(rt, Scheduler())
    engine._storage = studies.open_storage(home)
    return engine


def test_a_trial_asked_before_a_crash_is_taken_up_again_and_an_outcome_is_told_once(tmp_path):
    data = dataset(tmp_path / "data")
    engine = engine_on(tmp_path / "home")
    record = engine.create({"name": "s", "base": fake_job(data, "tuned"), "trials": 2, "pruner": "none",
                            "space": {"training.learning_rate": {"type": "float", "low": 0.01, "high": 0.1}}})
    sweep = engine.table.get(record.id)
    study = engine._study(sweep)
    asked = study.ask()  # the daemon died here: the study handed out trial 0, no job was stored
    value = asked.suggest_float("training.learning_rate", 0.01, 0.1)

    engine = engine_on(tmp_path / "home")  # the next daemon
    engine._advance(sweep)
    trials = engine.table.trials(sweep.id)
    assert [t.number for t in trials] == [0] and trials[0].params == {"training.learning_rate": value}
    job = engine.rt.store.get(trials[0].job_id)
    assert job.spec["training"]["learning_rate"] == value and job.name == "tuned (s trial 0)"
    study = engine._study(sweep)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]

    store = engine.rt.store
    store.add_metrics(job.id, 1, {"val/accuracy": 0.4})
    for state in (JobState.PREPARING, JobState.RUNNING, JobState.SUCCEEDED):
        store.transition(job.id, state)
    study.tell(0, 0.4)  # the study heard it; the daemon died before its table did
    engine = engine_on(tmp_path / "home")
    engine.start()
    try:
        told = _wait(lambda: (t := engine.table.trials(sweep.id)) and t[0].state == "COMPLETE" and t)
        assert told[0].value == 0.4
        assert _wait(lambda: len(engine.table.trials(sweep.id)) == 2)
        study = engine._study(sweep)
        assert [t.state for t in study.trials][0] == TrialState.COMPLETE and len(study.trials) == 2
    finally:
        engine.stop()


GRID = {"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.2, "step": 0.1},
        "training.batch_size": {"type": "categorical", "choices": [1, 2]}}  # 4 points


def run_trials(engine, sweep_id: str, outcomes: list[JobState]):
    """Submit the sweep's trials one at a time, each job ending as `outcomes` says; then the sweep."""
    store = engine.rt.store
    for outcome in outcomes:
        engine._advance(engine.table.get(sweep_id))
        job_id = [t for t in engine.table.trials(sweep_id) if not t.told][-1].job_id
        if outcome is JobState.SUCCEEDED:
            store.add_metrics(job_id, 1, {"val/accuracy": 0.5})
        for state in (JobState.PREPARING, JobState.RUNNING, outcome):
            store.transition(job_id, state)
        engine._observe(job_id)
    engine._advance(engine.table.get(sweep_id))
    return engine.table.get(sweep_id)


def test_a_resumed_grid_sweep_runs_only_the_points_without_a_result_then_refuses(tmp_path):
    data = dataset(tmp_path / "data")
    engine = engine_on(tmp_path / "home")
    spec = {"name": "grid", "base": fake_job(data, "tuned"), "sampler": "grid", "pruner": "none", "space": GRID}
    record = engine.create(spec)
    ok, failed, cancelled = JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED
    sweep = run_trials(engine, record.id, [failed, ok, cancelled, ok])
    assert sweep.state == "FINISHED" and sweep.trials == 4
    first = engine.table.trials(record.id)
    assert [t.state for t in first] == ["FAIL", "COMPLETE", "FAIL", "COMPLETE"]
    assert len({tuple(sorted(t.params.items())) for t in first}) == 4  # the whole grid, once

    resumed = engine.create(spec, resume=True)  # the file asks for the grid's 4 trials; 2 points are left
    assert resumed.id == record.id and resumed.state == "RUNNING" and resumed.trials == 6
    assert resumed.message == "resumed: 2 more trial(s), only 2 of its grid's 4 points being left to run (4 asked)"
    sweep = run_trials(engine, record.id, [ok, ok])
    trials = engine.table.trials(record.id)
    assert sweep.state == "FINISHED" and len(trials) == 6
    assert [t.params for t in trials[4:]] == [first[0].params, first[2].params]  # the failed and the cancelled one
    complete = sorted(tuple(sorted(t.params.items())) for t in trials if t.state == "COMPLETE")
    assert len(complete) == 4 and len(set(complete)) == 4  # every point has one result
    assert len(engine._study(sweep).trials) == 6

    with pytest.raises(SpecError) as refused:
        engine.create(spec, resume=True)
    assert str(refused.value) == (f"name: sweep {record.id} (grid): all 4 points of its grid have run; nothing to "
                                  "resume. To search further, start a sweep of another name with a wider grid, or "
                                  "with sampler random or tpe")
    assert engine.table.get(record.id).state == "FINISHED" and len(engine.table.trials(record.id)) == 6


def _wait(predicate, timeout: float = 30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.02)
    raise AssertionError("condition not met")


def test_a_cancelled_grid_sweep_resumes_once_its_last_trial_has_ended_and_reruns_that_point(tmp_path):
    data = dataset(tmp_path / "data")
    engine = engine_on(tmp_path / "home")
    spec = {"name": "pair", "base": fake_job(data, "tuned"), "sampler": "grid", "pruner": "none", "parallel": 2,
            "space": {"training.batch_size": {"type": "categorical", "choices": [1, 2]}}}
    record = engine.create(spec)
    engine._advance(engine.table.get(record.id))
    done, ending = engine.table.trials(record.id)
    store = engine.rt.store
    store.add_metrics(done.job_id, 1, {"val/accuracy": 0.5})
    for state in (JobState.PREPARING, JobState.RUNNING, JobState.SUCCEEDED):
        store.transition(done.job_id, state)
    engine._observe(done.job_id)
    engine.cancel(record.id)  # its other trial's job is still being stopped

    with pytest.raises(SpecError) as refused:
        engine.create(spec, resume=True)
    assert str(refused.value) == (f"name: sweep {record.id} (pair): every point of its grid of 2 has a trial that ran "
                                  "or is running (1 still ending); resume once they have ended")
    store.transition(ending.job_id, JobState.CANCELLED)
    engine._observe(ending.job_id)
    resumed = engine.create(spec, resume=True)
    assert resumed.trials == 3 and resumed.message == ("resumed: 1 more trial(s), only 1 of its grid's 2 points being "
                                                       "left to run (2 asked)")
    engine._advance(resumed)
    trials = engine.table.trials(record.id)
    assert [t.state for t in trials] == ["COMPLETE", "FAIL", "RUNNING"] and trials[2].params == ending.params
