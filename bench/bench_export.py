"""ONNX (onnxruntime) against PyTorch images/s, per framework, through the adapter's own predict path.

Per framework: timm resnet18 at 224 px (1000 classes, fresh weights), Ultralytics yolov8n from its yaml
at 640 px, Transformers ViT-S/16 (a config of ViT-Small's shape, fresh weights) at 224 px. In the
framework's env (the daemon's ``EnvManager`` and spec hash; built in a temp folder, or reused with
``--envs``) a script makes the checkpoint, exports it with the adapter's ``export_onnx`` (what
``visionyard export`` runs), then builds two adapters as the warm worker does (``adapters.serve``):
one predicting with PyTorch, one with the export (``use_onnx``: the same pre- and post-processing,
onnxruntime in place of the model). Both are warmed once, then each round times one
``predict_batch`` of the N images on each side, which side goes first flipping every round.

Reported: images/s of each side (median, min, max over rounds), the ratio of the medians and each
round's own ratio, and the export's time. Threads: what the daemon gives a child
(``bench/child_env.py``; ``OMP_NUM_THREADS`` set here overrides them; onnxruntime takes the same).

    uv run python bench/bench_export.py [--rounds 5] [--images 16] [--frameworks timm ultralytics transformers]
                                        [--envs DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench_predict_batch import MAKE_CHECKPOINT, run_bench, run_in_env, write_job  # noqa: E402  (bench/ is on the path)
from child_env import print_rates, threads  # noqa: E402

#: framework -> (task, model, image size); the checkpoint each makes is in ``IN_ENV``.
CASES = {
    "timm": ("image_classification", "resnet18", 224),
    "ultralytics": ("object_detection", "yolov8n", 640),
    "transformers": ("image_classification", "vit-s16", 224),
}

# Run in the framework's env: FRAMEWORK JOB_JSON CHECKPOINT ONNX ROUNDS IMAGE...; JSON lines.
IN_ENV = """
import dataclasses, json, sys, time
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter

framework, spec, checkpoint, onnx, rounds, images = (sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
                                                     int(sys.argv[5]), sys.argv[6:])
job = dataclasses.replace(Job.from_file(spec), device="auto")
torch_side = build_adapter(job, Reporter(None))
""" + MAKE_CHECKPOINT + """
torch_side.load_checkpoint(checkpoint)
started = time.perf_counter()
from pathlib import Path
torch_side.export_onnx(Path(onnx), dynamic=False, half=False, opset=None)
print(json.dumps({"export_s": time.perf_counter() - started}), flush=True)
onnx_side = build_adapter(job, Reporter(None))
onnx_side.load_checkpoint(checkpoint)
onnx_side.use_onnx(onnx)
sides = {"pytorch": torch_side, "onnx": onnx_side}
for adapter in sides.values():
    adapter.predict_batch(images, 5, False)  # warm: first calls set things up
for r in range(rounds):
    for side in (("pytorch", "onnx") if r % 2 == 0 else ("onnx", "pytorch")):
        started = time.perf_counter()
        sides[side].predict_batch(images, 5, False)
        print(json.dumps({"round": r, "side": side, "images_per_s": len(images) / (time.perf_counter() - started)}),
              flush=True)
"""


def measure(framework: str, envs: Path, tmp: Path, images: list[Path], rounds: int) -> dict:
    checkpoint = tmp / (f"{framework}-model" if framework == "transformers" else f"{framework}.pt")
    task, model, size = CASES[framework]
    job = write_job(tmp / f"job-{framework}", framework,
                    (task, str(checkpoint) if framework == "transformers" else model, size))
    done = run_in_env(framework, envs, tmp, IN_ENV, framework, str(job), str(checkpoint),
                      str(tmp / f"{framework}.onnx"), str(rounds), *map(str, images))
    found: dict = {"pytorch": [], "onnx": [], "export_s": 0.0}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            if "export_s" in row:
                found["export_s"] = row["export_s"]
            else:
                found[row["side"]].append(row["images_per_s"])
    return found


def report(framework: str, found: dict, count: int) -> None:
    task, model, size = CASES[framework]
    torch_rates, onnx_rates = found["pytorch"], found["onnx"]
    print(f"\n{framework} {model} ({task}) at {size} px, CPU, OMP_NUM_THREADS={threads()}, batches of {count} "
          f"images of 640x480, {len(torch_rates)} rounds (alternating); export {found['export_s']:.1f} s:")
    print_rates({"pytorch": torch_rates, "onnx": onnx_rates}, ("onnx", "pytorch"))


if __name__ == "__main__":
    run_bench(__doc__.splitlines()[0], CASES, measure, report, "vy-bench-export-")
