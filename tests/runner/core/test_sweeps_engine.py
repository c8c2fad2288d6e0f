"""The sweep engine around a daemon's death, on a real store and study without a daemon: a trial the study
handed out whose job was never stored is taken up again (not lost, not asked twice), and an outcome the
study already holds is not told twice."""

from __future__ import annotations

from types import SimpleNamespace

from optuna.trial import TrialState

from runner.core.store import JobState, JobStore
from runner.core.sweeps import study as studies
from runner.core.sweeps.engine import SweepEngine
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


def _wait(predicate, timeout: float = 30):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.02)
    raise AssertionError("condition not met")
