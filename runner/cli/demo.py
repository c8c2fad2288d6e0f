"""`make demo`: train a real classifier on scikit-learn's bundled digits through the runner.

Exports the digits (1,797 real 8×8 scans, no download) to an ImageFolder, starts a daemon in the
home unless one already answers, submits a timm job, follows it, and prints the result.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from protos import visionyard_pb2 as pb
from runner.client import Client, ClientError
from runner.cli.output import Output
from runner.cli.progress import follow
from runner.cli.views import show_job
from runner.settings import Paths, resolve_home

IMAGE_SIZE = 32
TARGET_ACCURACY = 0.90


def export_digits(root: Path, val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Write sklearn's digits as train/<digit>/*.png and val/<digit>/*.png (stratified split)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if (root / "train").is_dir() and (root / "val").is_dir() and (root / ".complete").exists():
        return root
    digits = load_digits()
    images = (digits.images / 16.0 * 255).astype(np.uint8)
    indices = np.arange(len(images))
    train_idx, val_idx = train_test_split(indices, test_size=val_fraction, stratify=digits.target,
                                          random_state=seed)
    for split, idx in (("train", train_idx), ("val", val_idx)):
        for i in idx:
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(images[i], mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            image.save(folder / f"{i:04d}.png")
    (root / ".complete").touch()
    return root


def demo_spec(dataset: Path) -> dict:
    return {
        "name": "digits-resnet18",
        "framework": "timm",
        "task": "image_classification",
        "model": "resnet18",
        "pretrained": False,
        "image_size": IMAGE_SIZE,
        "dataset": {"path": str(dataset), "format": "imagefolder"},
        "training": {"epochs": 8, "batch_size": 64, "learning_rate": 0.002, "device": "cpu"},
        "advanced": {
            "optimizer": {"type": "adamw", "weight_decay": 0.01},
            "scheduler": {"type": "cosine"},
            "augmentation": {"random_flip": False},  # a mirrored digit is a different glyph
        },
    }


def start_daemon(home: Path) -> subprocess.Popen:
    log = open(home / "daemon.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "runner.cli", "serve", "--home", str(home)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", default=None)
    args = parser.parse_args(argv)
    home = resolve_home(args.home)
    paths = Paths(home).ensure()
    dataset = export_digits(home / "datasets" / "digits")
    out = Output()
    out.line(f"digits exported to {dataset}")

    client = Client(home=home)
    daemon = None
    try:
        try:
            client.wait_ready(timeout=1)
            out.line(f"using the daemon already running at {client.address}")
        except ClientError:
            daemon = start_daemon(home)
            client.wait_ready(timeout=60)
            out.line(f"started a daemon (pid {daemon.pid}, log {home / 'daemon.log'})")
        job = client.submit(demo_spec(dataset))
        out.line(f"submitted job {job.id}; the first run builds the timm env (about a minute)")
        final = follow(client, job, out)
        show_job(final, out)
        accuracy = final.metrics.get("val/accuracy", 0.0)
        out.line(f"\njob id: {final.id}")
        out.line(f"val/accuracy: {accuracy:.4f} (target ≥ {TARGET_ACCURACY})")
        out.line(f"best checkpoint: {final.best_checkpoint}")
        out.line(f"MLflow UI: `uv run visionyard ui --home {home}` then open http://127.0.0.1:5000 "
                      f"(store {paths.mlflow_uri})")
        return 0 if final.state == pb.SUCCEEDED and accuracy >= TARGET_ACCURACY else 1
    finally:
        client.close()
        if daemon is not None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
