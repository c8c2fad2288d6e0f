"""What a sweep's own machinery costs, apart from training (no child runs: jobs are stored, never launched).

1. Cost per trial (goal ≤ 0.3 s over submitting the same job by hand): the engine's real code on a real
   store and study (`SweepEngine._submit`: ask, sample, merge into the base spec, validate, store the job
   and its trial row in one transaction; `_observe` per epoch: read the new events, report, ask the
   pruner; `_ended`/`_tell` when the job ends), against what a hand submit does for the same spec
   (`validate_job_spec` + `JobStore.create_job`), in alternating rounds.
2. Pruning decision latency (goal ≤ 100 ms): with the engine's thread running, a trial's epoch metric is
   committed to the store (as a report batch is) and timed until the engine has cancelled the trial
   (the scheduler's `cancel` is called), for trials that the median pruner stops at their first epoch.

    uv run python bench/bench_sweeps.py [--trials 30] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.core.store import JobState, JobStore  # noqa: E402
from runner.core.sweeps import study as studies  # noqa: E402
from runner.core.sweeps.engine import SweepEngine  # noqa: E402
from runner.core.sweeps.spec import merged  # noqa: E402
from runner.spec.validate import validate_job_spec  # noqa: E402
from tests.inprocess_daemon import dataset, fake_job  # noqa: E402

TRIAL_GOAL_S, PRUNE_GOAL_MS = 0.3, 100.0


class Scheduler:
    """Stands in for the daemon's: records when a trial was cancelled."""

    def __init__(self):
        self.cancelled: dict[str, float] = {}
        self.event = threading.Event()

    def notify(self) -> None:
        pass

    def cancel(self, job_id: str, reason: str = "", cause=None) -> bool:
        self.cancelled[job_id] = time.perf_counter()
        self.event.set()
        return True


class Devices:
    def check(self, device: str) -> str:
        return ""


def engine_on(home: Path) -> tuple[SweepEngine, Scheduler]:
    home.mkdir(parents=True)
    store = JobStore(home / "state.db")
    rt = SimpleNamespace(store=store, paths=SimpleNamespace(home=home), repos=None, devices=Devices(),
                         tracker=SimpleNamespace())
    scheduler = Scheduler()
    engine = SweepEngine(rt, scheduler)
    engine._storage = studies.open_storage(home)
    return engine, scheduler


def finish(store: JobStore, job_id: str, state: JobState) -> None:
    store.transition(job_id, JobState.PREPARING)
    store.transition(job_id, JobState.RUNNING)
    store.transition(job_id, state)


def sweep_spec(data: Path, epochs: int, startup: int) -> dict:
    return {"name": "bench", "base": fake_job(data, "bench", epochs=epochs), "trials": 10_000, "parallel": 1,
            "space": {"training.learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
                      "training.batch_size": {"type": "categorical", "choices": [1, 2]}},
            "sampler": {"type": "tpe", "seed": 0}, "pruner": {"type": "median", "startup_trials": startup}}


def trial_costs(engine: SweepEngine, data: Path, trials: int, epochs: int) -> tuple[list[float], list[float]]:
    """Seconds per trial: the sweep's path, and a hand submit of the same spec, in alternating order."""
    store = engine.rt.store
    record = engine.create(sweep_spec(data, epochs, startup=trials * 10))  # the pruner decides, never prunes
    sweep, numbers = engine.table.get(record.id), set()
    swept, by_hand = [], []
    for i in range(trials):
        def sweep_trial():
            started = time.perf_counter()
            trial = engine._submit(sweep, numbers)
            numbers.add(trial.number)
            for epoch in range(1, epochs + 1):
                store.add_metrics(trial.job_id, epoch, {"val/accuracy": 0.1 * epoch, "train/loss": 1 / epoch})
                engine._observe(trial.job_id)
            finish(store, trial.job_id, JobState.SUCCEEDED)
            engine._observe(trial.job_id)
            assert engine.table.trials(sweep.id)[-1].state == "COMPLETE"
            swept.append(time.perf_counter() - started)
            return trial

        def hand_submit(params):
            started = time.perf_counter()
            raw = merged(sweep_spec(data, epochs, 1)["base"], params)
            job = validate_job_spec(raw)
            record = store.create_job(job.model_dump(mode="json", exclude_none=True), job.display_name,
                                      job.training.epochs)
            for epoch in range(1, epochs + 1):
                store.add_metrics(record.id, epoch, {"val/accuracy": 0.1 * epoch, "train/loss": 1 / epoch})
            finish(store, record.id, JobState.SUCCEEDED)
            by_hand.append(time.perf_counter() - started)

        if i % 2:
            hand_submit({"training.learning_rate": 0.01})
            sweep_trial()
        else:
            hand_submit(sweep_trial().params)
    engine.cancel(record.id)
    return swept, by_hand


def prune_latencies(engine: SweepEngine, scheduler: Scheduler, data: Path, rounds: int) -> list[float]:
    """Seconds from an epoch's metric commit to the engine's cancel, the engine's thread running."""
    store = engine.rt.store
    record = engine.create(sweep_spec(data, 3, startup=1))
    engine.start()
    latencies = []
    try:
        first = wait(lambda: engine.table.trials(record.id)[:1])[0]
        store.add_metrics(first.job_id, 1, {"val/accuracy": 0.9})
        finish(store, first.job_id, JobState.SUCCEEDED)  # the median to fall below
        for _ in range(rounds):
            count = len(latencies) + 2
            trial = wait(lambda count=count: len(t := engine.table.trials(record.id)) >= count and t[-1].job_id and t[-1])
            scheduler.event.clear()
            committed = time.perf_counter()
            store.add_metrics(trial.job_id, 1, {"val/accuracy": 0.01})
            if not scheduler.event.wait(10):
                raise SystemExit(f"trial {trial.number} was not pruned within 10 s")
            latencies.append(scheduler.cancelled[trial.job_id] - committed)
            store.transition(trial.job_id, JobState.CANCELLED, "pruned", cause="pruned")
    finally:
        engine.stop()
    return latencies


def wait(predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.005)
    raise SystemExit("timed out")


def spread(values: list[float], scale: float, unit: str) -> str:
    return (f"median {statistics.median(values) * scale:.1f} {unit}, min {min(values) * scale:.1f}, "
            f"max {max(values) * scale:.1f} (n={len(values)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--prunes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = dataset(Path(tmp) / "data")
        engine, scheduler = engine_on(Path(tmp) / "home")
        trial_costs(engine, data, 2, args.epochs)  # warm-up: imports, the study's first queries
        swept, by_hand = trial_costs(engine, data, args.trials, args.epochs)
        latencies = prune_latencies(engine, scheduler, data, args.prunes)
    overhead = [s - h for s, h in zip(swept, by_hand)]
    print(f"sweep trial ({args.epochs} epochs: ask, merge, submit, {args.epochs} reports + prune decisions, tell):")
    print(f"  swept    {spread(swept, 1000, 'ms')}")
    print(f"  by hand  {spread(by_hand, 1000, 'ms')}")
    print(f"  overhead {spread(overhead, 1000, 'ms')}  goal ≤ {TRIAL_GOAL_S * 1000:.0f} ms")
    print(f"prune decision after an epoch's metric: {spread(latencies, 1000, 'ms')}  goal ≤ {PRUNE_GOAL_MS:.0f} ms")
    ok = statistics.median(overhead) <= TRIAL_GOAL_S and statistics.median(latencies) * 1000 <= PRUNE_GOAL_MS
    print("goals met" if ok else "goals NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
