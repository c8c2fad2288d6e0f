"""The Optuna side of a sweep: its study in RDB storage, samplers, pruners, and the words a prune gets.

The studies live in `<home>/sweeps.db`, an SQLite file of their own: Optuna reaches it through
SQLAlchemy (its own connections, its own schema and migrations), which must not share the job
store's single connection and lock, or a study's write could hold up every job's reports.
Optuna is imported here only, on the sweep engine's thread, never on a client's call.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adapters.job import TRAINING_DEFAULTS
from runner.core.sweeps.spec import Param, SweepSpec

log = logging.getLogger("visionyard.sweeps")
STORAGE_FILE = "sweeps.db"


def open_storage(home: Path):
    """The home's study storage, in WAL mode with `synchronous=NORMAL` (as the job store): a report or
    a tell is one commit without an fsync of its own, and a killed daemon loses nothing committed."""
    import sqlite3
    from contextlib import closing

    import optuna
    from sqlalchemy import event

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = home / STORAGE_FILE
    with closing(sqlite3.connect(path, timeout=30)) as db:
        db.execute("PRAGMA journal_mode=WAL")  # kept in the file
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 30}})

    def each_connection(connection, _record) -> None:
        connection.execute("PRAGMA synchronous=NORMAL")

    event.listen(storage.engine, "connect", each_connection)
    storage.engine.dispose()  # the connections made while creating it go; new ones get the pragma
    return storage


def load_study(storage, name: str, spec: SweepSpec):
    """The sweep's study (made on first use); its sampler and pruner from the spec (they hold no state a
    restart would lose but a sampler's random stream)."""
    import optuna

    return optuna.create_study(study_name=name, storage=storage, load_if_exists=True,
                               direction=spec.objective.direction, sampler=make_sampler(spec),
                               pruner=make_pruner(spec))


def make_sampler(spec: SweepSpec):
    import optuna

    seed, kind = spec.seed_value, spec.sampler.type
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        return _Grid(spec.grid_space(), seed=seed)
    if kind == "cmaes":  # categorical parameters are sampled by its independent sampler
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


#: The states of a trial that takes its grid point: it ran (complete, or judged by the pruner) or is running.
#: Trials' states by name, as the sweep table and Optuna's `TrialState` both spell them.
TAKEN = frozenset({"COMPLETE", "PRUNED", "RUNNING"})


class GridExhausted(RuntimeError):
    """A grid sweep asked for a trial when every point of its grid has one that ran or is running."""


def points_left(points: Iterable[Any], tried: Iterable[tuple[Any, str]]) -> list[Any]:
    """A grid's points still to run, in the order to run them: those never tried first, then those whose
    trials all failed (fewest tries first), each group in `points`' order. `tried` is (point, state) per trial.

    A point whose trial completed or was pruned has run (a pruned trial is the pruner's verdict on the
    point); a running one is taken. A point whose every trial failed (its job failed or was cancelled, its
    spec was refused) gave the study no value, so it may run again: resuming a sweep that was cancelled or
    stopped half-way, or whose trials failed on a problem fixed since, finishes its grid without running
    any configuration that already has a result."""
    tries: Counter = Counter()
    taken = set()
    for point, state in tried:
        tries[point] += 1
        if state in TAKEN:
            taken.add(point)
    return sorted((p for p in points if p not in taken), key=lambda p: tries[p])


def _grid_class():
    import optuna

    class Grid(optuna.samplers.GridSampler):
        """Optuna's grid sampler, choosing each new trial's point with `points_left` (Optuna's own samples
        any point again once every one has a trial, so a resumed sweep would repeat configurations), and
        without its `study.stop()` once the grid is done: that works only inside `study.optimize`; the
        engine asks for no more trials than the grid has points left."""

        def before_trial(self, study, trial) -> None:
            if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
                return  # its point was chosen when it was asked (a trial taken up again)
            left = self.points_left(study)
            if not left:
                raise GridExhausted(f"every one of the grid's {len(self._all_grids)} points has a trial that ran "
                                    "or is running")
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._search_space)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", left[0])

        def points_left(self, study) -> list[int]:
            """The grid ids still to run, in order (`points_left`)."""
            tried = [(t.system_attrs["grid_id"], t.state.name)
                     for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
                     if "grid_id" in t.system_attrs and self._same_search_space(t.system_attrs["search_space"])]
            return points_left(range(len(self._all_grids)), tried)

        def after_trial(self, study, trial, state, values) -> None:
            pass

    return Grid


def _Grid(space, seed):
    return _grid_class()(space, seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna

    pruner = spec.pruner
    epochs = int((spec.base.get("training") or {}).get("epochs") or TRAINING_DEFAULTS["epochs"])
    if pruner.type == "median":  # epochs count from 1: steps below warmup + 1 are never pruned
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials,
                                           n_warmup_steps=pruner.warmup_epochs + 1)
    if pruner.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, pruner.warmup_epochs),
                                                      reduction_factor=pruner.reduction_factor)
    if pruner.type == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, pruner.warmup_epochs), max_resource=max(epochs, 1),
                                              reduction_factor=pruner.reduction_factor)
    return optuna.pruners.NopPruner()


def suggest(trial, path: str, param: Param) -> Any:
    if param.type == "categorical":
        return trial.suggest_categorical(path, param.choices)
    if param.type == "int":
        return trial.suggest_int(path, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(path, param.low, param.high, step=param.step, log=param.log)


def trial_handle(study, number: int):
    """A live `optuna.Trial` of the study's trial `number` (to report to and ask about pruning)."""
    import optuna

    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)


def frozen(study, number: int):
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return study._storage.get_trial(trial_id)


def prune_reason(study, spec: SweepSpec, frozen_trial, epoch: int) -> str:
    """Why the pruner stopped the trial at `epoch`, in words: "pruned at epoch 2 (objective 0.31 below the
    median 0.58)"."""
    import numpy as np
    from optuna.trial import TrialState

    values = frozen_trial.intermediate_values
    maximize = spec.objective.direction == "maximize"
    best = (max if maximize else min)(v for v in values.values() if not math.isnan(v)) if values else float("nan")
    if spec.pruner.type == "median":
        others = [t.intermediate_values[epoch] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if epoch in t.intermediate_values]
        median = float(np.nanmedian(others)) if others else float("nan")
        return (f"pruned at epoch {epoch} (objective {best:.4g} {'below' if maximize else 'above'} "
                f"the median {median:.4g})")
    return (f"pruned at epoch {epoch} (objective {best:.4g}: not in the best 1/{spec.pruner.reduction_factor} "
            f"of its {spec.pruner.type.replace('_', ' ')} rung)")
