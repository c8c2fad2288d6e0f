"""What a job runs: a framework adapter, or a custom repo's own command.

Both prepare during PREPARING (env, and for repos the checkout and translated configs) from the
job's read-only context and return the command to start, see the child's log lines, say what it
left, and judge the exit. The job execution (runner/core/jobs.py) owns everything else: states,
the process, cancel, tracking.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from adapters.child_env import ENV_ADDRESS, ENV_JOB_ID, ENV_JOURNAL, ENV_TOKEN
from adapters.frameworks import get_catalog
from envs.specs import get_spec
from log_parsers import PerClassParser, build_parser
from log_parsers.base import ClassRow, Line, MetricUpdate, ProgressUpdate
from protos import visionyard_pb2 as pb
from adapters.datasets import DatasetError
from runner.core.failures import Cause
from runner.core.repo_results import RepoResults
from runner.core.reports import inside
from runner.core.runtime import Runtime
from runner.launch.adapter_child import adapter_command
from runner.launch.context import Command, JobContext
from runner.launch.jobdir import CHECKPOINTS, JOB_FILE, JOURNAL
from runner.spec.validate import CUSTOM

MAX_STEP = 2**31 - 1  # steps and epochs travel as int32
logger = logging.getLogger("visionyard.jobs")


class PrepareError(RuntimeError):
    """Preparation failed; the message says what, for the job's error, and `cause` why."""

    def __init__(self, message: str, cause: Cause):
        super().__init__(message)
        self.cause = cause


class Workload:
    def __init__(self, job: JobContext, rt: Runtime):
        self.job, self.rt = job, rt
        self.job_id = job.job_id
        self.spec = job.spec

    def prepare(self, log: TextIO) -> Command:
        raise NotImplementedError

    def on_lines(self, lines: list[Line]) -> None:
        """Every line the child writes (progress-bar refreshes included)."""

    def saved_state(self) -> dict:
        """What a restarted daemon needs to watch the running child again (JSON, in launch.json)."""
        return {}

    def restore(self, state: dict) -> None:
        """Rebuild what `prepare` set up, from `saved_state()`, without doing any of it again."""

    def replay(self, lines) -> None:
        """The lines a previous daemon already handled: rebuild parser state, apply nothing."""

    def watch_files(self) -> None:
        """Start following what the child writes besides its log (a repo's metric files), once it runs
        (or is adopted: from where the store says the last daemon stopped)."""

    def stop_watching(self, final: bool = True) -> None:
        """Stop following those files; ``final``: read them a last time first (the child is done)."""

    def collect(self) -> list[Path]:
        """After the child exited, however it ended: last parsed metrics; the files it left that go
        to MLflow beside the log and the best checkpoint."""
        return []

    def succeeded(self, exit_ok: bool) -> tuple[bool, str]:
        """Whether a finished child counts as a success, and why not."""
        raise NotImplementedError

    def note(self) -> str:
        """What a successful run's message adds to "finished" (a custom repo's log showed fewer epochs than asked)."""
        return ""

    def _ensure_env(self, env_spec, log: TextIO):
        log.write(f"[visionyard] preparing env '{env_spec.name}'\n")
        try:
            env = self.rt.launcher.ensure_env(self.rt.envs, env_spec, self.job, log)
        except Exception as exc:
            raise PrepareError(f"environment '{env_spec.name}' could not be built: {exc}", Cause.ENV_BUILD) from exc
        if env.name:  # none when the node that runs the job builds it
            self.rt.store.update(self.job_id, env_name=env.name)
        return env


class AdapterWorkload(Workload):
    """A framework adapter in its framework's env; it reports over gRPC itself."""

    def prepare(self, log: TextIO) -> Command:
        env_spec = get_spec(get_catalog(self.spec["framework"]).env)
        env = self._ensure_env(env_spec, log)
        job_dir = self.job.job_dir
        checkpoint_dir = job_dir / CHECKPOINTS
        checkpoint_dir.mkdir(exist_ok=True)
        (job_dir / JOB_FILE).write_text(json.dumps({
            "job_id": self.job_id, "job_dir": str(job_dir), "device": self.job.assignment.device,
            "checkpoint_dir": str(checkpoint_dir), "spec": self.spec}, indent=2))
        return adapter_command(env.python, job_dir, self.rt.paths, env_spec=env_spec, env={
            ENV_ADDRESS: self.rt.reporter_address, **self.rt.reporter_env, ENV_JOURNAL: str(job_dir / JOURNAL),
            ENV_JOB_ID: self.job_id, ENV_TOKEN: self.job.token})

    def succeeded(self, exit_ok: bool) -> tuple[bool, str]:
        if not exit_ok:
            return False, ""
        if self.rt.store.get(self.job_id).result is None:
            return False, " without reporting a result"
        return True, ""


class RepoWorkload(Workload):
    """A custom repo's own command; its stdout becomes metrics through the repo's log parser, and
    per-class tables (a parser's `per_class:`) validation records (runner/core/repo_results.py).

    Its spec's `metric_files` are tailed beside the log (runner/core/metric_files.py). A metric a file maps
    comes from that file only: the parser's values of it are dropped, so each epoch has one value per
    metric in the job's history, its event stream and MLflow, at the file's precision."""

    def __init__(self, job: JobContext, rt: Runtime):
        super().__init__(job, rt)
        self.repo = None
        self.parser = None
        self.output_dir: Path | None = None
        self.work_tree: Path | None = None  # the job's own working tree of the checkout (where it runs)
        self.class_names: list[str] = []
        self.results: RepoResults | None = None
        self._last_epoch = 0  # the highest epoch the log has shown
        self._to_track: dict[int, dict[str, float]] = {}  # an epoch's latest values, sent to MLflow when it ends
        self._checked_patterns = False  # the patterns that matched nothing in epoch 1 were reported
        self._file_metrics: frozenset[str] = frozenset()  # the metrics the spec's metric files give
        self._files = None  # a MetricFilesTailer while the child runs

    def prepare(self, log: TextIO) -> Command:
        from custom_repos.git import RepoError
        from custom_repos.translate import env_spec, prepare_launch

        from custom_repos.spec import parse_repo_spec

        snapshot = self.job.repo_spec  # the spec as validated at submit time
        try:
            self.repo = parse_repo_spec(snapshot, f"job {self.job_id}") if snapshot else \
                self.rt.repos.get(self.spec["repo"])
        except (KeyError, ValueError) as exc:
            raise PrepareError(f"repo '{self.spec['repo']}' is not usable: {exc}", Cause.REPO) from exc
        log.write(f"[visionyard] repo spec '{self.repo.name}' as submitted: {self.repo.url} @ {self.repo.commit}\n")
        self.parser = build_parser(self.repo.parser)
        self._file_metrics = _file_metrics(self.repo)

        log.write(f"[visionyard] checking out {self.repo.name} at {self.repo.commit} from {self.repo.url}\n")
        try:
            checkout = self.rt.repo_cache.checkout(self.repo, log=log)
            spec = env_spec(self.repo, checkout)
        except RepoError as exc:
            raise PrepareError(f"repo '{self.repo.name}': {exc}", Cause.REPO) from exc
        env = self._ensure_env(spec, log)
        try:
            launch = prepare_launch(self.repo, self.spec, self.job.job_dir, checkout, env.python,
                                    self.job.assignment.device)
        except (OSError, ValueError) as exc:
            cause = Cause.DATASET if isinstance(exc, DatasetError) else Cause.REPO
            raise PrepareError(f"could not translate the job for repo '{self.repo.name}': {exc}", cause) from exc
        self.output_dir, self.work_tree = launch.output_dir, launch.work_tree
        self.class_names = list(launch.class_names)
        self._start_results()
        for note in launch.notes:
            log.write(f"[visionyard] dataset warning: {note}\n")
        log.write(f"[visionyard] command: {' '.join(launch.argv)}\n")
        env_vars = {**launch.env, "PYTHONPYCACHEPREFIX": str(self.rt.paths.pycache)}  # shared across jobs
        return Command(list(launch.argv), cwd=launch.cwd, env=env_vars, pythonpath=list(launch.pythonpath),
                       env_spec=spec, checkout=checkout, work_tree=launch.work_tree)

    def saved_state(self) -> dict:
        return {"output_dir": str(self.output_dir) if self.output_dir else None, "class_names": self.class_names,
                "work_tree": str(self.work_tree) if self.work_tree else None}

    def restore(self, state: dict) -> None:
        from custom_repos.spec import parse_repo_spec

        snapshot = self.job.repo_spec
        self.repo = parse_repo_spec(snapshot, f"job {self.job_id}") if snapshot else self.rt.repos.get(self.spec["repo"])
        self.parser = build_parser(self.repo.parser)
        self._file_metrics = _file_metrics(self.repo)
        self.output_dir = Path(state["output_dir"]) if state.get("output_dir") else None
        self.work_tree = Path(state["work_tree"]) if state.get("work_tree") else None
        self.class_names = [str(name) for name in state.get("class_names") or ()]
        self._start_results()

    def replay(self, lines) -> None:
        if self.parser is not None:
            for line in lines:
                events = self.parser.feed_line(line)
                if events and self.results is not None:
                    self._record([event for event in events if _in_range(event)], replay=True)

    def on_lines(self, lines: list[Line]) -> None:
        if self.parser is None:
            return
        events = []
        for line in lines:
            events += self.parser.feed_line(line)
        self._apply(events)

    def watch_files(self) -> None:
        from runner.core.metric_files import MetricFilesTailer

        if self.repo is None or not self.repo.metric_files or self.output_dir is None or self._files is not None:
            return
        positions = self.rt.store.metric_file_positions(self.job_id)
        self._files = MetricFilesTailer(self.repo.metric_files, self.output_dir, self.work_tree, positions,
                                        self._on_file_rows, name=f"metrics-{self.job_id}")
        for event in self._files.replay():  # rows an earlier daemon applied: where the epochs were
            self._last_epoch = max(self._last_epoch, event.step)
        self._files.start()

    def stop_watching(self, final: bool = True) -> None:
        if self._files is not None:
            self._files.stop(final=final)

    def _on_file_rows(self, source: int, path: Path, position: int, events, notices: list[str]) -> None:
        """A metric file's new rows and how far it is read: together, as a log chunk and its offset."""
        with self.rt.store.atomic():
            self._apply(events, from_file=True)
            self.rt.store.set_metric_file_position(self.job_id, source, str(path), position)
        for text in notices:
            self._warn(f"metric file {self.repo.metric_files[source].path} ({path}): {text}")

    def collect(self) -> list[Path]:
        self.stop_watching()  # the files' last rows before the last epoch is tracked
        if self.parser is not None:
            self._apply(self.parser.finish())
            self._track(final=True)
            self._warn_unmatched("by the end of the job")
        return self._collect_artifacts()

    def _track(self, final: bool) -> None:
        """MLflow gets each epoch's summary once, when the log moves past it (or ends): the epoch's last value of
        each metric, at the epoch's step; not every batch line a repo prints (those stay in the log)."""
        for step in sorted(self._to_track):
            if final or step < self._last_epoch:
                self.rt.tracker.log_metrics(self.job_id, step, self._to_track.pop(step))

    def note(self) -> str:
        asked = int(self.spec["training"]["epochs"])
        if self.parser is None or self._last_epoch >= asked:
            return ""
        return (f"finished, but its log showed {self._last_epoch} of the {asked} epochs asked for: check the repo's "
                "parser patterns (`visionyard status` lists those that never matched)")

    def succeeded(self, exit_ok: bool) -> tuple[bool, str]:
        return exit_ok, ""

    def _start_results(self) -> None:
        """Validation records when the parser reads per-class tables (the others' jobs keep none)."""
        if isinstance(self.parser, PerClassParser):
            self.results = RepoResults(
                self.job.job_dir, self.job_id, self.spec["task"], f"{self.repo.name} {self.repo.commit[:7]}",
                self.class_names, note=lambda text: self.rt.store.add_logs(self.job_id, [text]))

    def _apply(self, events, from_file: bool = False) -> None:
        store = self.rt.store
        events = [event for event in events if _in_range(event)]
        parsed = events  # what the parser made of the log, for the validation records
        if not from_file and self._file_metrics:
            events = [_without(event, self._file_metrics) for event in events]
            events = [event for event in events if event is not None]
        for event in events:
            if isinstance(event, MetricUpdate):
                store.add_metrics(self.job_id, event.step, event.values)
                self._to_track.setdefault(event.step, {}).update(event.values)
                self._last_epoch = max(self._last_epoch, event.step)
            elif isinstance(event, ProgressUpdate):
                self._last_epoch = max(self._last_epoch, event.epoch)
                total = event.total_epochs or self.spec["training"]["epochs"]
                store.add_event(self.job_id, pb.JobEvent(progress=pb.ProgressEvent(
                    epoch=event.epoch, total_epochs=total, step=event.step or 0, total_steps=event.total_steps or 0)))
        if self.results is not None and parsed and not from_file:
            self._record(parsed)
        self._track(final=False)
        for text in self.parser.take_notices():
            self._warn(f"log parser: {text}")
        if self._last_epoch >= 2:
            self._warn_unmatched("in epoch 1")

    def _warn(self, text: str) -> None:
        """A warning on the job, if the store can take it: noticing never fails a job (a full disk, say)."""
        try:
            self.rt.store.add_warning(self.job_id, text)
        except (sqlite3.Error, OSError) as exc:
            logger.warning("job %s: warning not stored (%s): %s", self.job_id, exc, text)

    def _warn_unmatched(self, when: str) -> None:
        """A warning for each parser pattern that matched no line of the log (once, the first time it's checked)."""
        if self._checked_patterns:
            return
        self._checked_patterns = True
        for pattern in self.parser.unmatched():
            self._warn(f"log parser: {pattern} matched no line {when}: its metrics are "
                                                   "missing; fix the regex against a line of `visionyard logs`")

    def _record(self, events, replay: bool = False) -> None:
        """The events' validations into the job's records; a failure there is logged, never raised
        (RepoResults logs its own write failures; this guards the log's parsing against the rest)."""
        try:
            self.results.add(events, replay=replay)
            if not replay:
                self.results.flush()
        except Exception:  # noqa: BLE001
            logger.warning("job %s: validation records: unexpected error", self.job_id, exc_info=True)

    def _collect_artifacts(self) -> list[Path]:
        from custom_repos.translate import find_artifacts, found_any

        if self.output_dir is None:
            return []
        found = find_artifacts(self.repo, self.output_dir, self.work_tree)
        store, job_dir = self.rt.store, self.job.job_dir
        artifacts = self.repo.artifacts
        globs = [g for g, hit in ((artifacts.best, found.best), (artifacts.last, found.last)) if g and not hit]
        globs += [g for g in artifacts.files if not found_any(g, self.output_dir, self.work_tree)]
        for pattern in globs:
            self._warn(f"artifact glob '{pattern}' matched nothing under {self.output_dir}: the "
                                           "run wrote no such file there (where does the repo write it?)")
        outside = [p for p in (found.last, found.best, *found.files) if p and not inside(p, job_dir)]
        for path in outside:  # e.g. a link the repo made to a file of the daemon's user: never uploaded
            store.add_logs(self.job_id, [f"[visionyard] artifact {path} leads outside the job dir; ignored"])
        found = replace(found, last=None if found.last in outside else found.last,
                        best=None if found.best in outside else found.best,
                        files=[p for p in found.files if p not in outside])
        for kind in ("last", "best"):
            path = getattr(found, kind)
            if path:
                store.add_event(self.job_id, pb.JobEvent(checkpoint=pb.CheckpointEvent(
                    path=str(path), kind=kind, epoch=store.get(self.job_id).epoch)))
                store.update(self.job_id, **{f"{kind}_checkpoint": str(path)})
        return [p for p in (found.last, *found.files) if p]


def _file_metrics(repo) -> frozenset[str]:
    return frozenset(mapped.name for entry in repo.metric_files for mapped in entry.metrics.values())


def _without(event, names: frozenset[str]):
    """A parser's event less the metrics a metric file gives (None when nothing is left of it)."""
    if not isinstance(event, MetricUpdate) or not names & event.values.keys():
        return event
    values = {key: value for key, value in event.values.items() if key not in names}
    return MetricUpdate(step=event.step, values=values) if values else None


def _in_range(event) -> bool:
    """False for a number no epoch counter reaches: a parser matched something else."""
    numbers = (event.step,) if isinstance(event, (MetricUpdate, ClassRow)) else \
        (event.epoch, event.total_epochs or 0, event.step or 0, event.total_steps or 0)
    return all(0 <= n <= MAX_STEP for n in numbers)


def workload_for(job: JobContext, rt: Runtime) -> Workload:
    return (RepoWorkload if job.spec["framework"] == CUSTOM else AdapterWorkload)(job, rt)
