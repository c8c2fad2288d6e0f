"""The Ultralytics adapter vs bare Ultralytics in the same venv.

A tiny YOLO detection dataset is made in code (red and blue rectangles, ``make_yolo_task``);
``bench/harness.py`` builds (or reuses) the ``ultralytics`` env, starts a real daemon and times
both sides in alternating rounds after one untimed 1-epoch warm-up of each:

- visionyard: ``SubmitJob`` of a yolov8n job (from scratch, CPU) → the job's final state; time to
  first epoch = submit → the first ``metrics`` event received on ``WatchJob``.
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
own CPU, the report delivery latency and the supervisor's exit record → final state.

Both write and reuse bytecode, as Python does by default: the bare runs the ``.pyc`` files the
warm-up wrote into the venv, the jobs those in the home's shared ``pycache`` (the daemon lets its
children write there even when it runs with ``PYTHONDONTWRITEBYTECODE``).

    uv run python bench/bench_ultralytics.py [--rounds 5] [--epochs 5] [--train 96] [--size 128] [--envs DIR]
                                             [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.catalog import defaults  # noqa: E402
from adapters.frameworks import get_catalog  # noqa: E402
from adapters.ultralytics.trainer import QUIET_SETTINGS  # noqa: E402
from envs.manager import Env  # noqa: E402

from harness import CPU, WALL, BareScript, Case, Run, arguments, bare_environ, run_bench, wall_goal  # noqa: E402
from tests.dataset_fixtures import make_yolo_task  # noqa: E402

GOAL_RATIO = 1.03
GOAL_FIRST_EPOCH_S = 1.0
#: args.yaml entries that name where things are, not how training goes.
PATH_ARGS = {"data", "project", "name", "save_dir"}

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


class Bare:
    """Bare Ultralytics in the env's python: one subprocess per run, nothing of visionyard's."""

    def __init__(self, python: Path, work: Path, dataset: Path):
        self.work, self.dataset = work, dataset
        config = work / "ultralytics-config"
        (config / "Ultralytics").mkdir(parents=True)
        font = subprocess.run([str(python), "-c", "import matplotlib; print(matplotlib.get_data_path())"],
                              check=True, capture_output=True, text=True).stdout.strip()
        shutil.copyfile(Path(font) / "fonts" / "ttf" / "DejaVuSans.ttf", config / "Ultralytics" / "Arial.ttf")
        self.script = BareScript(python, work, BARE_SCRIPT, bare_environ(
            YOLO_CONFIG_DIR=str(config), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false"))

    def run(self, spec: dict, name: str) -> tuple[Run, Path]:
        """The run, timed from process start; and its checkpoint dir."""
        out = self.work / name
        data = shutil.copytree(self.dataset, out / "data")  # fresh: no label cache from an earlier round
        doc = {"path": str(data), "train": "images/train", "val": "images/val", "names": {0: "red", 1: "blue"}}
        (out / "data.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        args = dict(bare_train_args(spec, out / "data.yaml", out), model="yolov8n.yaml", settings=QUIET_SETTINGS)
        return self.script.run(out, args, spec["training"]["epochs"]), out / "checkpoints"


def compare_args(visionyard: Path, bare: Path) -> list[str]:
    """Training arguments (args.yaml) that differ, paths aside."""
    a, b = (yaml.safe_load((d / "args.yaml").read_text()) for d in (visionyard, bare))
    return [f"{k}: visionyard {a.get(k)!r}, bare {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in PATH_ARGS and a.get(k) != b.get(k)]


#: What the report shows of each run: (title, value of a Run, whether the bare ratio means much).
MEASURES = (
    WALL,
    ("time to first epoch's metrics (submit → first metrics event received | process start → "
     "on_fit_epoch_end)", lambda r: r.seen[0], False),
    ("epochs 2..N (first → last epoch's metrics)", lambda r: r.seen[-1] - r.seen[0], True),
    ("after the last epoch (last epoch's metrics → end: final val of best.pt, exit, bookkeeping)",
     lambda r: r.wall - r.seen[-1], False),
    CPU,
)


def goals(runs: dict[str, list[Run]]) -> list[tuple[str, bool]]:
    diff = statistics.median(r.seen[0] for r in runs["visionyard"]) - statistics.median(r.seen[0] for r in runs["bare"])
    return [wall_goal(runs, GOAL_RATIO),
            (f"first epoch's metrics within {GOAL_FIRST_EPOCH_S:g} s of bare: {diff:+.2f} s",
             abs(diff) <= GOAL_FIRST_EPOCH_S)]


def main(argv: list[str] | None = None) -> int:
    parser = arguments(__doc__, epochs=5, size=128, batch=8, size_help="image size (px), also imgsz")
    parser.add_argument("--train", type=int, default=96, help="train images")
    parser.add_argument("--val", type=int, default=8, help="val images")
    args = parser.parse_args(argv)

    def prepare(tmp: Path, env: Env) -> Case:
        dataset = make_yolo_task(tmp / "data" / "rects", "object_detection", train=args.train, val=args.val,
                                 size=args.size)
        bare = Bare(env.python, tmp / "bare", dataset)
        return Case(
            title=(f"yolov8n from scratch, CPU, {args.train} train / {args.val} val images at {args.size} px, "
                   f"batch {args.batch}, {args.epochs} epochs"),
            job_spec=lambda epochs, name: job_spec(dataset, args, epochs, name),
            bare=bare.run,
            differences=compare_args,
            compared="arguments (args.yaml, paths aside)",
            measures=MEASURES,
            goals=goals,
        )

    return run_bench(args, "ultralytics", prepare)


if __name__ == "__main__":
    raise SystemExit(main())
