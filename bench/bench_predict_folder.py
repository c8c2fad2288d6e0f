"""Folder throughput: N images through the daemon's warm worker against the framework's own batched predict.

Per framework, in the framework's env (the daemon's ``EnvManager`` and spec hash; built in a temp folder, or
reused with ``--envs``), a model with fresh weights: timm resnet18 at 224 px, Ultralytics yolov8n from its
yaml at ``--yolo-size`` px (default 320), Transformers ViT-S/16 (ViT-Small's shape) at 224 px.

- visionyard: ``Client.predict_many`` of the N files through a running daemon (``--predict-max-batch 16``:
  its worker predicts them in batches of up to 16), the model given without a job (``ModelRef``:
  framework, model, weights), as ``visionyard predict --framework ... FOLDER`` sends it. Every answer
  is checked to be a prediction. The worker is started and warmed before the first round.
- bare: the framework's own batched predict in a warm process of the same env, over the same files in
  batches of 16: timm's plain idiom (``resolve_data_config`` + ``create_transform``, PIL, a stacked
  batch, ``model(x).softmax(-1).topk(5)``), Ultralytics ``YOLO(weights).predict(FOLDER, stream=True,
  batch=16)``, Transformers ``pipeline("image-classification")(files, batch_size=16, top_k=5)``.

Rounds alternate which side goes first. Both sides get the threads the daemon gives a child
(``bench/child_env.py``). Reported per framework: images/s of each side (median, min, max), the ratio
of the medians and each round's own ratio (goal ≥ 0.95×).

    uv run python bench/bench_predict_folder.py [--rounds 3] [--images 500] [--frameworks timm ...]
                                                [--yolo-size 320] [--envs DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_predict_batch import MAKE_CHECKPOINT, make_images, write_job  # noqa: E402  (bench/ is on the path)
from child_env import base_environ, print_rates, threads  # noqa: E402

from envs.manager import EnvManager  # noqa: E402
from envs.specs import get_spec  # noqa: E402
from tests.helpers import start_daemon  # noqa: E402

BATCH = 16

# Run in the framework's env: FRAMEWORK JOB_JSON CHECKPOINT SIZE FILE_LIST. Makes the checkpoint, warms the
# framework's own predict, prints "ready"; then per line read on stdin predicts every file once and
# prints the seconds it took.
BARE = """
import dataclasses, json, sys, time
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter

framework, spec, checkpoint, size, listing = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
build_adapter(dataclasses.replace(Job.from_file(spec), device="cpu"), Reporter(None))  # Ultralytics: offline, quiet
""" + MAKE_CHECKPOINT + """
files = open(listing).read().split()
BATCH = %d
if framework == "timm":
    import timm, torch
    from PIL import Image
    from timm.data import create_transform, resolve_data_config
    model = timm.create_model("resnet18", num_classes=1000)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu")["model"])
    model.eval()
    transform = create_transform(**resolve_data_config({"input_size": (3, size, size)}, model=model))

    def run(files):
        with torch.inference_mode():
            for i in range(0, len(files), BATCH):
                x = torch.stack([transform(Image.open(f).convert("RGB")) for f in files[i:i + BATCH]])
                model(x).softmax(-1).topk(5)
elif framework == "ultralytics":
    from ultralytics import YOLO
    model = YOLO(checkpoint)

    def run(files):
        # The folder as the source: Ultralytics reads it in batches of `batch` (a list of files would be
        # one batch of its whole length)
        source = files[0].rsplit("/", 1)[0] if len(files) > 2 * BATCH else files
        for _ in model.predict(source, stream=True, batch=BATCH, imgsz=size, device="cpu", verbose=False):
            pass
else:
    from transformers import pipeline
    pipe = pipeline("image-classification", model=checkpoint, device=-1)

    def run(files):
        for _ in pipe(files, batch_size=BATCH, top_k=5):
            pass

run(files[:2 * BATCH])  # warm
print("ready", flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    run(files)
    print(json.dumps(time.perf_counter() - started), flush=True)
""" % BATCH

#: framework -> (task, model as the job names it, image size); the checkpoint each makes is MAKE_CHECKPOINT's.
CASES = {
    "timm": ("image_classification", "resnet18", 224),
    "ultralytics": ("object_detection", "yolov8n", 320),
    "transformers": ("image_classification", "vit-s16", 224),
}


def bare_process(framework: str, envs: Path, tmp: Path, checkpoint: Path, size: int,
                 listing: Path) -> subprocess.Popen:
    env = EnvManager(envs).ensure(get_spec(framework), log=open(tmp / f"{framework}-env.log", "w"))
    task, model, _ = CASES[framework]
    job = write_job(tmp / f"job-{framework}", framework,
                    (task, str(checkpoint) if framework == "transformers" else model, size))
    environ = {**base_environ(), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "",
               "OMP_NUM_THREADS": threads(), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([str(env.python), "-c", BARE, framework, str(job), str(checkpoint), str(size),
                             str(listing)], env=environ, cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(tmp / f"{framework}-bare.log", "w"), text=True)
    printed = []  # what the framework printed on stdout before the script was ready
    while (line := proc.stdout.readline()) and line.strip() != "ready":
        printed.append(line)
    if not line:
        raise SystemExit(f"{framework}: the bare script failed:\n{''.join(printed)[-1000:]}"
                         + (tmp / f"{framework}-bare.log").read_text()[-3000:])
    return proc


def measure(framework: str, client, envs: Path, tmp: Path, files: list[Path], rounds: int,
            size: int) -> dict[str, list[float]]:
    task, model, _ = CASES[framework]
    checkpoint = tmp / (f"{framework}-model" if framework == "transformers" else f"{framework}.pt")
    listing = tmp / "files.txt"
    listing.write_text("\n".join(map(str, files)))
    bare = bare_process(framework, envs, tmp, checkpoint, size, listing)
    ref = ({"framework": framework, "task": task, "model": str(checkpoint), "image_size": size}
           if framework == "transformers" else
           {"framework": framework, "task": task, "model": model, "weights": str(checkpoint), "image_size": size})

    def through_daemon() -> float:
        started = time.perf_counter()
        answers = list(client.predict_many(ref, files))
        seconds = time.perf_counter() - started
        failed = [a.error for a in answers if a.error]
        assert len(answers) == len(files) and not failed, failed[:3]
        return seconds

    list(client.predict_many(ref, files[:2 * BATCH]))  # the worker starts and warms
    rates: dict[str, list[float]] = {"visionyard": [], "bare": []}
    try:
        for r in range(rounds):
            for side in ("visionyard", "bare") if r % 2 == 0 else ("bare", "visionyard"):
                if side == "visionyard":
                    seconds = through_daemon()
                else:
                    bare.stdin.write("go\n")
                    bare.stdin.flush()
                    while not (line := bare.stdout.readline()).strip().replace(".", "", 1).isdigit():
                        if not line:
                            raise SystemExit(f"{framework}: the bare script ended")
                    seconds = float(line)
                rates[side].append(len(files) / seconds)
                print(f"  {framework} round {r} {side:<10} {rates[side][-1]:6.1f} images/s", flush=True)
    finally:
        bare.stdin.close()
        bare.wait()
        client.stop_workers()
    return rates


def report(framework: str, rates: dict[str, list[float]], count: int, size: int) -> None:
    task, model, _ = CASES[framework]
    ours, bare = rates["visionyard"], rates["bare"]
    print(f"\n{framework} {model} ({task}) at {size} px, CPU, OMP_NUM_THREADS={threads()}, {count} images of "
          f"640x480, batches of {BATCH}, {len(ours)} rounds (alternating); visionyard: predict_many through the "
          "daemon, framework: its own batched predict:")
    print_rates({"visionyard": ours, "framework": bare}, ("visionyard", "framework"), ">= 0.95x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--frameworks", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--yolo-size", type=int, default=CASES["ultralytics"][2])
    parser.add_argument("--envs", type=Path, help="an envs folder to reuse (default: built in a temp folder)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-folder-"))
    results = {}
    try:
        envs = args.envs or tmp / "envs"
        envs.mkdir(parents=True, exist_ok=True)
        files = make_images(tmp / "images", args.images)
        daemon = start_daemon(tmp / "home", envs, ["--predict-max-batch", str(BATCH)])
        try:
            for framework in args.frameworks:
                size = args.yolo_size if framework == "ultralytics" else CASES[framework][2]
                results[framework] = (measure(framework, daemon.client, envs, tmp, files, args.rounds, size), size)
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for framework, (rates, size) in results.items():
        report(framework, rates, args.images, size)


if __name__ == "__main__":
    main()
