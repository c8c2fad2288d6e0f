"""What the framework benches share: a training through a real daemon against the same training
run bare in the same env, in alternating rounds, reported as medians, spreads and ratios.

A bench describes what differs in a ``Case`` (the job spec, the bare run, how the two runs'
training arguments are compared, what the table shows, the goals) and calls ``run_bench``, which:

- builds (or reuses, ``--envs``) the framework's env with the project's ``EnvManager`` inside the
  daemon's temp home, and starts a real daemon there;
- runs one untimed 1-epoch warm-up of each side and stops if their training arguments differ;
- runs ``--rounds`` rounds of both, the order flipping every round (``child_env.alternating_rounds``);
- prints, per measure, each side's median, min, max, its ratio to bare's median and every round,
  then what the visionyard runs spent where, each round's own wall ratio and the goals.

Through visionyard a run is timed from the ``SubmitJob`` call to the job's final state
(``finished_at``): each epoch's metrics at the time the child stamped on its report (``epochs``) and
at the time this client received it (``seen``); CPU is the daemon's reaped-children time (``/proc``
cutime + cstime: the job's supervisor and everything below it). After each job the bench waits
until the daemon's CPU goes quiet (it logs artifacts to MLflow after the final state), so the next
run does not share the cores with it. A bare run is one subprocess of the env's python, timed from
process start to exit, whose script prints ``VYBENCH <what> <unix time>`` lines: ``epoch N`` at each
epoch's metrics, anything else as a named moment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from envs.manager import Env, EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from protos import visionyard_pb2 as pb  # noqa: E402
from runner.launch import jobdir  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402

from child_env import alternating_rounds, base_environ, threads  # noqa: E402  (bench/ is on the path)

TICK = os.sysconf("SC_CLK_TCK")
MARK = "VYBENCH "


@dataclass
class Run:
    wall: float  # seconds from submit / process start to the final state / exit
    epochs: list[float]  # ... to each epoch's metrics, as the training process stamped them
    cpu: float  # CPU seconds of the training process
    seen: list[float] = field(default_factory=list)  # ... to each epoch's metrics, received here (bare: = epochs)
    marks: dict[str, float] = field(default_factory=dict)  # other moments (same origin) and quantities


#: A line of the table: (title, the value of a Run, whether the ratio to bare means much).
Measure = tuple[str, Callable[[Run], float], bool]

WALL: Measure = ("wall time (submit → final state | process start → exit)", lambda r: r.wall, True)
CPU: Measure = ("CPU seconds of the training process (visionyard: the daemon's reaped children, /proc "
                "cutime+cstime)", lambda r: r.cpu, True)


@dataclass
class Case:
    """What one framework's bench measures; the rest is the harness's."""

    title: str  # the table's first line: what trains, on what, how much
    job_spec: Callable[[int, str], dict]  # (epochs, name) → the job spec
    bare: Callable[[dict, str], tuple[Run, Path]]  # (job spec, run name) → the run and its checkpoint dir
    differences: Callable[[Path, Path], list[str]]  # (visionyard's, bare's checkpoint dir) → arguments that differ
    compared: str  # what ``differences`` compares, for the log
    measures: tuple[Measure, ...]
    goals: Callable[[dict[str, list[Run]]], list[tuple[str, bool]]]  # runs → (what, met)
    bare_marks: tuple[tuple[str, str], ...] = ()  # (label, mark) of the bare script's moments to report


# ---------------------------------------------------------------- processes


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """utime + stime of a live process from /proc (``children``: of its children it has waited
    for); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / TICK


def settle(pid: int, quiet: float = 0.5, limit: float = 10.0) -> float:
    """Wait until ``pid``'s CPU time stops growing (at most ``limit`` s); the CPU seconds it used."""
    start = last = cpu_seconds(pid) or 0.0
    deadline = time.time() + limit
    while time.time() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid) or last
        if now - last < 0.02:
            break
        last = now
    return last - start


def bare_environ(**extra: str) -> dict[str, str]:
    """A bare run's environment: the shell's, CPU only, the threads the daemon gives its children."""
    return {**base_environ(), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads(),
            **extra}


class BareScript:
    """A training script in the env's python: one subprocess per run, nothing of visionyard's."""

    def __init__(self, python: Path, work: Path, source: str, env: dict[str, str]):
        self.python, self.env = python, env
        work.mkdir(parents=True, exist_ok=True)
        self.script = work / "bare_train.py"
        self.script.write_text(source)

    def run(self, out: Path, doc: dict, epochs: int) -> Run:
        """Run the script on ``doc`` (as ``args.json`` in ``out``), timed from process start."""
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(doc))
        log_path = out / "output.log"
        with open(log_path, "ab") as log:
            started = time.time()
            proc = subprocess.Popen([str(self.python), str(self.script), str(out / "args.json")], cwd=out,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.time() - started
        if (code := os.waitstatus_to_exitcode(status)) != 0:
            raise RuntimeError(f"bare run {out.name} exited {code}; see {log_path}")
        marks: dict[str, float] = {}
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(MARK):
                what, at = line[len(MARK):].rsplit(" ", 1)
                marks.setdefault(what, float(at) - started)  # the first: a final validation may mark again
        stamped = [marks[f"epoch {e}"] for e in range(1, epochs + 1)]
        return Run(wall, stamped, usage.ru_utime + usage.ru_stime, list(stamped), marks)


def through_daemon(daemon, spec: dict) -> tuple[Run, Path]:
    """The job, timed from the submit call; and its checkpoint dir."""
    client, pid = daemon.client, daemon.proc.pid
    daemon_before, children_before = cpu_seconds(pid), cpu_seconds(pid, children=True)
    started = time.time()
    job = client.submit(spec)
    marks = {"submit returned": time.time() - started}
    stamped, seen = [], []
    for event in client.watch(job.id):
        kind = event.WhichOneof("kind")
        if kind == "metrics":
            seen.append(time.time() - started)
            stamped.append(event.time - started)  # when the adapter queued it, in the child
        elif kind == "progress":
            marks.setdefault("step", event.time - started)
        elif kind == "status":
            marks.setdefault(pb.JobState.Name(event.status.state), event.time - started)
    final = client.get(job.id)  # SUCCEEDED is stamped after the daemon has reaped the job's supervisor
    if final.state != pb.SUCCEEDED:
        raise RuntimeError(f"job {job.id} ended {pb.JobState.Name(final.state)}: {final.error}")
    marks["daemon cpu"] = cpu_seconds(pid) - daemon_before
    cpu = cpu_seconds(pid, children=True) - children_before
    marks["daemon after"] = settle(pid)
    marks["delivery"] = seen[0] - stamped[0]
    try:  # the supervisor's exit record: written when the command and all it left have ended
        record = json.loads((Path(final.job_dir) / jobdir.EXIT_RECORD).read_text())
        marks["exit to final"] = final.finished_at - record["time"]
    except (OSError, ValueError, KeyError):
        marks["exit to final"] = float("nan")
    return Run(final.finished_at - started, stamped, cpu, seen, marks), Path(final.job_dir) / jobdir.CHECKPOINTS


# ---------------------------------------------------------------- the bench


def arguments(doc: str, *, epochs: int, size: int, batch: int, size_help: str) -> argparse.ArgumentParser:
    """The options every framework bench takes; a bench adds its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--size", type=int, default=size, help=size_help)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in the temp home)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (job logs, bare logs)")
    return parser


def run_bench(args: argparse.Namespace, env_name: str, prepare: Callable[[Path, Env], Case]) -> int:
    """Measure (``prepare`` makes the model, data and bare runner in the temp dir), report; 0 when
    every goal is met."""
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"vy-bench-{env_name}-"))
    try:
        case, runs = measure(tmp, args, env_name, prepare)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report(case, runs, args.rounds, time.perf_counter() - begun) else 1


def measure(tmp: Path, args: argparse.Namespace, env_name: str,
            prepare: Callable[[Path, Env], Case]) -> tuple[Case, dict[str, list[Run]]]:
    home = tmp / "home"
    home.mkdir()
    if args.envs:
        args.envs.mkdir(parents=True, exist_ok=True)
        (home / "envs").symlink_to(args.envs.absolute(), target_is_directory=True)
    with open(tmp / "env-build.log", "w") as build_log:
        env = EnvManager(home / "envs").ensure(get_spec(env_name), log=build_log)
    print(f"env {env.name} {'reused' if env.reused else f'built in {env.build_seconds:.1f} s'}; "
          f"OMP_NUM_THREADS={threads()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    case = prepare(tmp, env)

    daemon = start_daemon(home, home / "envs")
    runs: dict[str, list[Run]] = {"visionyard": [], "bare": []}
    try:
        print("warm-up: one 1-epoch run of each (untimed)...", flush=True)
        _, vy_dir = through_daemon(daemon, case.job_spec(1, "warm"))
        _, bare_dir = case.bare(case.job_spec(1, "warm"), "warm")
        if differences := case.differences(vy_dir, bare_dir):
            raise SystemExit(f"bare {case.compared} differ from the adapter's:\n  " + "\n  ".join(differences))
        print(f"bare {case.compared} = the adapter's", flush=True)
        spec = case.job_spec(args.epochs, "bench")
        for i, which in alternating_rounds(args.rounds):
            if which == "visionyard":
                run, _ = through_daemon(daemon, dict(spec, name=f"round-{i}"))
            else:
                run, _ = case.bare(spec, f"round-{i}")
            runs[which].append(run)
            print(f"  round {i + 1} {which:<10} wall {run.wall:6.2f} s   first epoch {run.epochs[0]:6.2f} s   "
                  f"CPU {run.cpu:6.2f} s", flush=True)
    finally:
        daemon.stop()
    return case, runs


# ---------------------------------------------------------------- the report


def median_ratio(runs: dict[str, list[Run]], value: Callable[[Run], float] = lambda r: r.wall) -> float:
    return statistics.median(map(value, runs["visionyard"])) / statistics.median(map(value, runs["bare"]))


def wall_goal(runs: dict[str, list[Run]], goal: float) -> tuple[str, bool]:
    ratio = median_ratio(runs)
    return f"wall ≤ {goal}× bare: {ratio:.3f}×", ratio <= goal


def row(label: str, values: list[float], base: list[float] | None = None) -> str:
    median = statistics.median(values)
    ratio = f"{median / statistics.median(base):7.3f}×" if base and statistics.median(base) else " " * 8
    return (f"    {label:<12}{median:8.2f}{min(values):8.2f}{max(values):8.2f}{ratio}   "
            f"[{', '.join(f'{v:.2f}' for v in values)}]")


def report(case: Case, runs: dict[str, list[Run]], rounds: int, seconds: float) -> bool:
    vy, bare = runs["visionyard"], runs["bare"]
    print(f"\n{case.title}; {rounds} rounds, order alternating; seconds")
    print(f"    {'':<12}{'median':>8}{'min':>8}{'max':>8}{'ratio':>8}   rounds")
    for title, value, ratio in case.measures:
        print(f"  {title}")
        base = [value(r) for r in bare] if ratio else None
        for name, values in runs.items():
            print(row(name, [value(r) for r in values], base))

    def med(runs_: list[Run], key: str, digits: int = 2) -> str:
        return f"{statistics.median(r.marks.get(key, float('nan')) for r in runs_):.{digits}f}"

    print(f"  visionyard (medians, from submit): SubmitJob returned {med(vy, 'submit returned')} s, PREPARING "
          f"{med(vy, 'PREPARING')} s, RUNNING (child exec'd) {med(vy, 'RUNNING')} s; daemon CPU during a job "
          f"{med(vy, 'daemon cpu')} s, after its final state {med(vy, 'daemon after')} s; first metrics from "
          f"the child's stamp to this client {med(vy, 'delivery', 3)} s; exit record → final state "
          f"{med(vy, 'exit to final')} s")
    if case.bare_marks:
        print("  bare (medians, from process start): "
              + ", ".join(f"{label} {med(bare, key)} s" for label, key in case.bare_marks))
    paired = [v.wall / b.wall for v, b in zip(vy, bare, strict=True)]  # each round's pair ran back to back
    print(f"  wall ratio per round (visionyard / bare): median {statistics.median(paired):.3f}× (min "
          f"{min(paired):.3f}, max {max(paired):.3f}); load average at the end {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    goals = case.goals(runs)
    print("goal: " + "; ".join(f"{what} {'ok' if met else 'MISSED'}" for what, met in goals)
          + f"  [{seconds:.0f} s total]")
    return all(met for _, met in goals)
