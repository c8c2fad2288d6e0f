"""Predict through a warm worker, measured against the bare model call in the same env.

1. Warm single-image latency through the daemon (the Python client's `predict`, CLI excluded) vs
   the adapter's own `predict` on the same image in a process of the same env that loaded the same
   checkpoint (goal: ≤ bare + 15 ms on CPU). Rounds alternate which side goes first; each round
   times `--calls` predicts of each side.
2. Cold start: the first predict of a new worker (env start, imports, load, one image) vs a bare
   script doing the same from process start (reported, no goal).
3. The worker's cost on a folder: `--folder N` images through `Client.predict_many` (the daemon's
   worker batching up to 16) vs the adapter's own `predict_batch` over the same files in batches of
   16 in the bare process, alternating rounds (reported; the goal against each framework's own
   batched predict is measured by bench/bench_predict_folder.py).

    uv run python bench/bench_predict.py [--rounds 5] [--calls 20] [--size 224] [--folder 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.launch import jobdir  # noqa: E402
from tests.helpers import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder, save_image  # noqa: E402

# The bare side: the adapter as the worker builds it, the checkpoint loaded once, then `calls`
# predicts per line read on stdin, each one's milliseconds printed as a JSON list.
BARE = textwrap.dedent("""
    import dataclasses, json, sys, time
    started = time.perf_counter()
    from adapters.entrypoint import build_adapter
    from adapters.job import Job
    from adapters.reporter import Reporter
    spec, checkpoint, image = sys.argv[1:4]
    adapter = build_adapter(dataclasses.replace(Job.from_file(spec), device="auto"), Reporter(None))
    adapter.load_checkpoint(checkpoint)
    adapter.predict(image, 5)
    print(json.dumps({"cold_ms": (time.perf_counter() - started) * 1000}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[0] == "folder":  # the folder's images in batches, as the framework predicts them
            folder, batch = words[1], int(words[2])
            import os
            files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
            t = time.perf_counter()
            for i in range(0, len(files), batch):
                adapter.predict_batch(files[i:i + batch], 5, False)
            print(json.dumps([(time.perf_counter() - t) * 1000]), flush=True)
            continue
        times = []
        for _ in range(int(words[0])):
            t = time.perf_counter()
            adapter.predict(image, 5)
            times.append((time.perf_counter() - t) * 1000)
        print(json.dumps(times), flush=True)
""")


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):7.1f} ms  min {min(values):7.1f}  max {max(values):7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--folder", type=int, default=200, help="images in the folder throughput rounds (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-bench-predict-"))
    dataset = make_imagefolder(tmp / "data", per_class=4, val_per_class=2)
    image = save_image(tmp / "photo.png", "red", size=args.size)
    envs = tmp / "envs"
    envs.mkdir()
    daemon = start_daemon(tmp / "home", envs, ["--predict-max-batch", "16", "--max-concurrent-predicts", "4"])
    try:
        client = daemon.client
        print("training a resnet18 to predict with (the env's first build may take a minute)...", flush=True)
        job = client.wait(client.submit({
            "name": "predict-bench", "framework": "timm", "task": "image_classification", "model": "resnet18",
            "pretrained": False, "image_size": args.size, "dataset": {"path": str(dataset), "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 8, "device": "cpu"}}).id)
        assert job.best_checkpoint, job.error
        python = str(Path(next(e.path for e in client.envs() if e.name == job.env_name)) / "bin" / "python")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("VISIONYARD_")},
               "PYTHONPATH": str(tmp / "home" / "child-path"), "CUDA_VISIBLE_DEVICES": "",
               "OMP_NUM_THREADS": str(os.cpu_count() or 1)}
        spec = str(Path(job.job_dir) / jobdir.JOB_FILE)

        colds_daemon, colds_bare = [], []
        for i in range(3):
            client.stop_workers(job.id)
            started = time.perf_counter()
            client.predict(job.id, image)
            colds_daemon.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            done = subprocess.run([python, "-c", BARE, spec, job.best_checkpoint, image], input="", env=env,
                                  capture_output=True, text=True, check=True, cwd=job.job_dir)
            colds_bare.append((time.perf_counter() - started) * 1000)
            assert json.loads(done.stdout.splitlines()[0])["cold_ms"] > 0

        bare = subprocess.Popen([python, "-c", BARE, spec, job.best_checkpoint, image], env=env, cwd=job.job_dir,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        bare.stdout.readline()
        for _ in range(3):  # warm both sides
            client.predict(job.id, image)
        bare.stdin.write("3\n")
        bare.stdin.flush()
        bare.stdout.readline()
        through, alone, gaps = [], [], []
        for r in range(args.rounds):
            order = ("daemon", "bare") if r % 2 == 0 else ("bare", "daemon")
            medians = {}
            for side in order:
                if side == "daemon":
                    times = []
                    for _ in range(args.calls):
                        started = time.perf_counter()
                        client.predict(job.id, image)
                        times.append((time.perf_counter() - started) * 1000)
                    through += times
                else:
                    bare.stdin.write(f"{args.calls}\n")
                    bare.stdin.flush()
                    times = json.loads(bare.stdout.readline())
                    alone += times
                medians[side] = statistics.median(times)
            gaps.append(medians["daemon"] - medians["bare"])
        rates: dict[str, list[float]] = {"daemon": [], "bare": []}
        if args.folder:
            folder = tmp / "folder"
            folder.mkdir()
            colours = ("red", "green", "blue")
            for i in range(args.folder):
                save_image(folder / f"{i:05d}.png", colours[i % 3], size=args.size)
            files = sorted(folder.iterdir())
            for r in range(max(3, args.rounds // 2)):
                for side in (("daemon", "bare") if r % 2 == 0 else ("bare", "daemon")):
                    if side == "daemon":
                        started = time.perf_counter()
                        answers = list(client.predict_many(job.id, files))
                        assert not any(a.error for a in answers)
                        seconds = time.perf_counter() - started
                    else:
                        bare.stdin.write(f"folder {folder} 16\n")
                        bare.stdin.flush()
                        seconds = json.loads(bare.stdout.readline())[0] / 1000
                    rates[side].append(len(files) / seconds)
        bare.stdin.close()
        bare.wait()
        (worker,) = client.workers(job.id)
    finally:
        daemon.stop()

    print(f"\nwarm predict, timm resnet18 at {args.size}px on CPU, {args.rounds} rounds × {args.calls} calls:")
    print(f"  through the daemon (client.predict)  {spread(through)}")
    print(f"  bare adapter.predict, same env       {spread(alone)}")
    print(f"  per-round gap (median daemon − median bare): median {statistics.median(gaps):.1f} ms "
          f"min {min(gaps):.1f} max {max(gaps):.1f}   goal ≤ 15 ms")
    print("cold start (new worker: env, imports, load, one image), 3 runs:")
    print(f"  through the daemon  {spread(colds_daemon)}")
    print(f"  bare script         {spread(colds_bare)}")
    if rates["daemon"]:
        d, b = statistics.median(rates["daemon"]), statistics.median(rates["bare"])
        print(f"folder of {args.folder} images at {args.size}px, {len(rates['daemon'])} rounds (images/s):")
        print(f"  daemon predict_many (worker batches ≤ 16)  median {d:6.1f}  {['%.1f' % v for v in rates['daemon']]}")
        print(f"  bare predict_batch(16), same env           median {b:6.1f}  {['%.1f' % v for v in rates['bare']]}")
        print(f"  ratio {d / b:.3f}×")
    print(f"worker: {worker.served} images served, {worker.rss_bytes / 2**20:.0f} MiB resident, "
          f"load {worker.load_ms:.0f} ms")


if __name__ == "__main__":
    main()
