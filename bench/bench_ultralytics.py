"""The Ultralytics adapter vs bare Ultralytics in the same venv.

A tiny YOLO detection dataset is made in code (red and blue rectangles, ``make_yolo_task``), the
``ultralytics`` env is built (or reused) with the project's ``EnvManager`` inside the daemon's
home, and a real daemon is started in that temp home. Timed, in alternating rounds (the order
flips every round), after one untimed 1-epoch warm-up of each:

- visionyard: ``SubmitJob`` of a yolov8n job (from scratch, CPU) → the job's final state
  (``finished_at``); time to first epoch = submit → the first ``metrics`` event received on
  ``WatchJob``.
- bare:      the same ``YOLO("yolov8n.yaml").train(...)`` in the same venv, as a subprocess: process
  start → exit; time to first epoch = process start → the first ``on_fit_epoch_end`` (the
  callback prints a timestamp). Same arguments as ``UltralyticsAdapter.train()`` passes (the
  schema's defaults from the catalog; the warm-ups' ``args.yaml`` are compared, paths aside),
  the same offline environment (``YOLO_OFFLINE``, ``YOLO_AUTOINSTALL=false``, a config dir with
  matplotlib's DejaVu Sans as ``Arial.ttf``, the adapter's quiet settings), the same
  ``OMP_NUM_THREADS`` the daemon gives its children. Its dataset is a fresh copy per round, made
  before the clock starts, so both build Ultralytics' label cache every run (visionyard links
  the dataset into each job dir). Its config dir is made once and kept, like a user's.

Goals: wall time through visionyard ≤ 1.03× bare (median/median); time to first epoch's
metrics within 1 s of bare's (medians). visionyard's cost is mostly fixed per job (~0.25 s: the
child's gRPC reporter, the daemon's bookkeeping), so it shows most on the shortest runs: the
default workload (96 images, 5 epochs) trains for ~14 s here; ``--train 32 --epochs 3`` (~7 s)
shows the fixed part at its largest. Also shown, to tell where a difference comes from: the
epochs after the first, the time after the last epoch, the training process's CPU seconds (less
moved by other load on a busy box), and for visionyard the submit → exec latency, the daemon's
own CPU, the report delivery latency and child exit → final state.

Both write and reuse bytecode, as Python does by default: the bare runs the ``.pyc`` files the
warm-up wrote into the venv, the jobs those in the home's shared ``pycache`` (the daemon lets its
children write there even when it runs with ``PYTHONDONTWRITEBYTECODE``).

    uv run python bench/bench_ultralytics.py [--rounds 5] [--epochs 5] [--train 96] [--size 128] [--envs DIR]
                                             [--keep]
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
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.catalog import defaults  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from adapters.ultralytics.trainer import QUIET_SETTINGS  # noqa: E402
from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from protos import visionyard_pb2 as pb  # noqa: E402
from tests.conftest import start_daemon  # noqa: E402

from child_env import alternating_rounds, base_environ, threads  # noqa: E402  (bench/ is on the path)
from tests.dataset_fixtures import make_yolo_task  # noqa: E402

GOAL_RATIO = 1.03
GOAL_FIRST_EPOCH_S = 1.0
#: args.yaml entries that name where things are, not how training goes.
PATH_ARGS = {"data", "project", "name", "save_dir"}
TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.05  # how often the daemon's children's CPU time is read

BARE_SCRIPT = """\
import json, sys, time
from pathlib import Path

args = json.loads(Path(sys.argv[1]).read_text())
from ultralytics import YOLO
from ultralytics.utils import SETTINGS

SETTINGS.update({k: v for k, v in args.pop("settings").items() if k in SETTINGS})
model = YOLO(args.pop("model"))


def epoch_end(trainer):
    print(f"VYBENCH epoch {trainer.epoch + 1} {time.time():.6f}", flush=True)


model.add_callback("on_fit_epoch_end", epoch_end)
model.train(**args)
"""


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return found


class ChildrenCpu(threading.Thread):
    """CPU seconds of a process's children and grandchildren, read every SAMPLE_S while they live.

    The daemon's child is not ours to wait4() on; the last reading before it exits is at most
    SAMPLE_S old, so this undercounts by up to SAMPLE_S per busy core.
    """

    def __init__(self, parent: int):
        super().__init__(daemon=True)
        self.parent, self.seen, self.done = parent, {}, threading.Event()
        self.last_alive = 0.0  # when a child was last seen (not yet reaped), unix seconds

    def run(self) -> None:
        watched: set[int] = set()
        while not self.done.is_set():
            # The daemon's child is the job's supervisor, whose child trains. Once both are found,
            # read only their stats: the sampler must stay light (it runs during visionyard runs).
            candidates = set(watched)
            if len(watched) < 2:
                found = children(self.parent)
                candidates |= found | {grandchild for pid in found for grandchild in children(pid)}
            for pid in candidates:
                if (used := cpu_seconds(pid)) is not None:
                    self.seen[pid], self.last_alive = used, time.time()
                    watched.add(pid)
                else:
                    watched.discard(pid)
            self.done.wait(SAMPLE_S)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return sum(self.seen.values())


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


def job_spec(dataset: Path, args: argparse.Namespace, epochs: int, name: str) -> dict:
    return {"name": name, "framework": "ultralytics", "task": "object_detection", "model": "yolov8n",
            "pretrained": False, "image_size": args.size, "dataset": {"path": str(dataset), "format": "yolo"},
            "training": {"epochs": epochs, "batch_size": args.batch, "learning_rate": 0.01, "device": "cpu"}}


def bare_train_args(spec: dict, data_yaml: Path, out: Path) -> dict:
    """What ``UltralyticsAdapter.train()`` passes for ``spec`` with no ``advanced`` (schema defaults)."""
    d, t = defaults(get_catalog("ultralytics")), spec["training"]
    return dict(
        data=str(data_yaml), imgsz=int(spec["image_size"]), batch=t["batch_size"], device="cpu",
        workers=t.get("num_workers", 0), plots=False, project=str(out), name="checkpoints", exist_ok=True,
        epochs=t["epochs"], seed=t.get("seed", 0), pretrained=False, verbose=True,
        optimizer=d["optimizer"]["type"], lr0=t["learning_rate"], momentum=d["optimizer"]["momentum"],
        weight_decay=d["optimizer"]["weight_decay"], lrf=d["lrf"], cos_lr=d["cos_lr"],
        warmup_epochs=d["warmup_epochs"], patience=d["patience"], close_mosaic=d["close_mosaic"], amp=d["amp"],
        **d["augmentation"],
    )


@dataclass
class Run:
    wall: float  # seconds from submit / process start to the final state / exit
    first: float  # ... to the first epoch's metrics
    last: float  # ... to the last epoch's metrics
    cpu: float  # CPU seconds of the training process
    daemon_cpu: float = 0.0  # CPU seconds the daemon itself spent meanwhile
    daemon_after: float = 0.0  # ... and after the final state, until it went quiet (MLflow artifacts)
    exec_at: float = 0.0  # submit → child exec (RUNNING)
    delivery: float = 0.0  # first metrics: the child's callback (the item's time stamp) → received here
    exit_to_final: float = 0.0  # the child last seen alive (every SAMPLE_S) → the job's final state


class Bare:
    """Bare Ultralytics in the env's python: one subprocess per run, nothing of visionyard's."""

    def __init__(self, python: Path, work: Path, dataset: Path):
        self.python, self.work, self.dataset = python, work, dataset
        self.script = work / "bare_train.py"
        work.mkdir(parents=True, exist_ok=True)
        self.script.write_text(BARE_SCRIPT)
        config = work / "ultralytics-config"
        (config / "Ultralytics").mkdir(parents=True)
        font = subprocess.run([str(python), "-c", "import matplotlib; print(matplotlib.get_data_path())"],
                              check=True, capture_output=True, text=True).stdout.strip()
        shutil.copyfile(Path(font) / "fonts" / "ttf" / "DejaVuSans.ttf", config / "Ultralytics" / "Arial.ttf")
        self.env = base_environ()
        self.env.update(PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=threads(),
                        YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")

    def run(self, spec: dict, name: str) -> tuple[Run, Path]:
        """The run, timed from process start; and its checkpoint dir."""
        out = self.work / name
        data = shutil.copytree(self.dataset, out / "data")  # fresh: no label cache from an earlier round
        doc = {"path": str(data), "train": "images/train", "val": "images/val", "names": {0: "red", 1: "blue"}}
        (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        args = dict(bare_train_args(spec, out / "data.yaml", out), model="yolov8n.yaml", settings=QUIET_SETTINGS)
        (out / "args.json").write_text(json.dumps(args))
        log_path = out / "output.log"
        with open(log_path, "ab") as log:
            started = time.time()
            proc = subprocess.Popen([str(self.python), str(self.script), str(out / "args.json")], cwd=out, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.time() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"bare run {name} exited {proc.returncode}; see {log_path}")
        ends = {}
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("VYBENCH epoch "):
                epoch, at = line.split()[2:4]
                ends.setdefault(int(epoch), float(at) - started)
        epochs = [ends[e] for e in sorted(ends) if e <= spec["training"]["epochs"]]  # not the final val
        return Run(wall, epochs[0], epochs[-1], usage.ru_utime + usage.ru_stime), out / "checkpoints"


def through_daemon(daemon, spec: dict) -> tuple[Run, Path]:
    """The job, timed from the submit call; and its checkpoint dir."""
    client, cpu = daemon.client, ChildrenCpu(daemon.proc.pid)
    daemon_before = cpu_seconds(daemon.proc.pid)
    cpu.start()
    started = time.time()
    job = client.submit(spec)
    metrics, stamps, exec_at = [], [], 0.0
    for event in client.watch(job.id):
        kind = event.WhichOneof("kind")
        if kind == "metrics":
            metrics.append(time.time() - started)
            stamps.append(event.time - started)  # when the adapter's callback queued it, in the child
        elif kind == "status" and event.status.state == pb.RUNNING:
            exec_at = event.time - started
    final = client.get(job.id)
    child_cpu, daemon_cpu = cpu.stop(), cpu_seconds(daemon.proc.pid) - daemon_before
    assert final.state == pb.SUCCEEDED, final.error
    # The daemon logs artifacts to MLflow after the final state: let that end before the next run.
    after = settle(daemon.proc.pid)
    exit_to_final = final.finished_at - cpu.last_alive if cpu.last_alive else float("nan")
    return (Run(final.finished_at - started, metrics[0], metrics[-1], child_cpu, daemon_cpu, after, exec_at,
                metrics[0] - stamps[0], exit_to_final), Path(final.job_dir) / "checkpoints")


def compare_args(visionyard: Path, bare: Path) -> list[str]:
    """Training arguments (args.yaml) that differ, paths aside."""
    a, b = (yaml.safe_load((d / "args.yaml").read_text()) for d in (visionyard, bare))
    return [f"{k}: visionyard {a.get(k)!r}, bare {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in PATH_ARGS and a.get(k) != b.get(k)]


def row(label: str, values: list[float], base: list[float] | None = None) -> str:
    median = statistics.median(values)
    ratio = f"{median / statistics.median(base):7.3f}×" if base else " " * 8
    return (f"    {label:<12}{median:8.2f}{min(values):8.2f}{max(values):8.2f}{ratio}   "
            f"[{', '.join(f'{v:.2f}' for v in values)}]")


#: What the report shows of each run: (title, value of a Run, whether the bare ratio means much).
MEASURES = (
    ("wall time (submit → final state | process start → exit)", lambda r: r.wall, True),
    ("time to first epoch's metrics (submit → first metrics event received | process start → "
     "on_fit_epoch_end)", lambda r: r.first, False),
    ("epochs 2..N (first → last epoch's metrics)", lambda r: r.last - r.first, True),
    ("after the last epoch (last epoch's metrics → end: final val of best.pt, exit, bookkeeping)",
     lambda r: r.wall - r.last, False),
    ("CPU seconds of the training process (visionyard: sampled from /proc, may be ≤0.1 s short)",
     lambda r: r.cpu, True),
)


def report(runs: dict[str, list[Run]], args: argparse.Namespace, seconds: float) -> bool:
    vy, bare = runs["visionyard"], runs["bare"]
    print(f"\nyolov8n from scratch, CPU, {args.train} train / {args.val} val images at {args.size} px, batch "
          f"{args.batch}, {args.epochs} epochs; {args.rounds} rounds, order alternating; seconds")
    print(f"    {'':<12}{'median':>8}{'min':>8}{'max':>8}{'ratio':>8}   rounds")
    for title, value, ratio in MEASURES:
        print(f"  {title}")
        base = [value(r) for r in bare] if ratio else None
        for name, values in runs.items():
            print(row(name, [value(r) for r in values], base))
    print(f"  visionyard, medians: submit → child exec (RUNNING) {statistics.median(r.exec_at for r in vy):.2f} s; "
          f"daemon CPU during a job {statistics.median(r.daemon_cpu for r in vy):.2f} s, after its final state "
          f"{statistics.median(r.daemon_after for r in vy):.2f} s; first metrics from the adapter's callback to "
          f"this client {statistics.median(r.delivery for r in vy):.3f} s; child last seen → final state "
          f"{statistics.median(r.exit_to_final for r in vy):.2f} s (≤{SAMPLE_S:g} s over)")
    ratio = statistics.median(r.wall for r in vy) / statistics.median(r.wall for r in bare)
    diff = statistics.median(r.first for r in vy) - statistics.median(r.first for r in bare)
    ok_wall, ok_first = ratio <= GOAL_RATIO, abs(diff) <= GOAL_FIRST_EPOCH_S
    print(f"goal: wall ≤ {GOAL_RATIO}× bare: {ratio:.3f}× {'ok' if ok_wall else 'MISSED'}; "
          f"first epoch's metrics within {GOAL_FIRST_EPOCH_S:g} s of bare: {diff:+.2f} s "
          f"{'ok' if ok_first else 'MISSED'}  [{seconds:.0f} s total]")
    return ok_wall and ok_first


def measure(tmp: Path, args: argparse.Namespace) -> dict[str, list[Run]]:
    home = tmp / "home"
    home.mkdir()
    if args.envs:
        args.envs.mkdir(parents=True, exist_ok=True)
        (home / "envs").symlink_to(args.envs.absolute(), target_is_directory=True)
    with open(tmp / "env-build.log", "w") as build_log:
        env = EnvManager(home / "envs").ensure(get_spec("ultralytics"), log=build_log)
    print(f"env {env.name} {'reused' if env.reused else f'built in {env.build_seconds:.1f} s'}; "
          f"OMP_NUM_THREADS={threads()}", flush=True)
    dataset = make_yolo_task(tmp / "data" / "rects", "object_detection", train=args.train, val=args.val,
                             size=args.size)
    bare = Bare(env.python, tmp / "bare", dataset)

    daemon = start_daemon(home, home / "envs")
    runs: dict[str, list[Run]] = {"visionyard": [], "bare": []}
    try:
        print("warm-up: one 1-epoch run of each (untimed)...", flush=True)
        _, vy_dir = through_daemon(daemon, job_spec(dataset, args, 1, "warm"))
        _, bare_dir = bare.run(job_spec(dataset, args, 1, "warm"), "warm")
        if differences := compare_args(vy_dir, bare_dir):
            raise SystemExit("bare arguments differ from the adapter's:\n  " + "\n  ".join(differences))
        print("bare arguments = the adapter's (args.yaml, paths aside)", flush=True)
        spec = job_spec(dataset, args, args.epochs, "bench")
        for i, which in alternating_rounds(args.rounds):
            if which == "visionyard":
                run, _ = through_daemon(daemon, dict(spec, name=f"round-{i}"))
            else:
                run, _ = bare.run(spec, f"round-{i}")
            runs[which].append(run)
            print(f"  round {i + 1} {which:<10} wall {run.wall:6.2f} s   first epoch {run.first:6.2f} s   "
                  f"CPU {run.cpu:6.2f} s", flush=True)
    finally:
        daemon.stop()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train", type=int, default=96, help="train images")
    parser.add_argument("--val", type=int, default=8, help="val images")
    parser.add_argument("--size", type=int, default=128, help="image size (px), also imgsz")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in the temp home)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (job logs, bare logs)")
    args = parser.parse_args(argv)
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-ultralytics-"))
    try:
        runs = measure(tmp, args)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report(runs, args, time.perf_counter() - begun) else 1


if __name__ == "__main__":
    raise SystemExit(main())
