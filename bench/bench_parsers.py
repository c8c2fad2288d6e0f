"""Log-parser throughput on long synthetic logs, splitting included (goal: >= 200k lines/s).

Each format gets a log of >= 1M lines built with the real print formats (YOLOv7's tqdm rows with
`\\r` repaints and ANSI colours, ConvNeXt's MetricLogger lines, a YAML regex parser's custom
lines, HF-Trainer dicts and key=value lines for `generic`). The log is encoded to bytes and fed
in 64 KiB chunks, the way the daemon tails a file:

- splitter:        LineSplitter.feed(chunk) for every chunk
- splitter+parser: the same, plus parser.feed_line(line) for every line, plus finish()

    uv run python bench/bench_parsers.py [--lines 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from log_parsers import LineSplitter, MetricUpdate, build_parser  # noqa: E402

GOAL = 200_000
CHUNK = 64 * 1024
ESC = "\x1b"


def yolov7_log(min_lines: int) -> str:
    epochs, nb = 300, max(1, min_lines // (300 * 2) + 1)
    out = [f"{ESC}[34m{ESC}[1mhyperparameters: {ESC}[0mlr0=0.01, lrf=0.1, momentum=0.937\n"]
    header = ("\n" + "%10s" * 8) % ("Epoch", "gpu_mem", "box", "obj", "cls", "total", "labels", "img_size")
    val = ("%20s" + "%12s" * 6) % ("Class", "Images", "Labels", "P", "R", "mAP@.5", "mAP@.5:.95")
    pf = "%20s" + "%12i" * 2 + "%12.3g" * 4
    for epoch in range(epochs):
        out.append(header + "\n")
        out.append(f"\r  0%|          | 0/{nb} [00:00<?, ?it/s]")
        for i in range(nb):
            s = ("%10s" * 2 + "%10.4g" * 6) % (f"{epoch}/{epochs - 1}", "3.21G", 0.05 + i * 1e-6, 0.02,
                                              0.01, 0.08 + i * 1e-6, 23 + i % 7, 640)
            done = 10 * (i + 1) // nb
            bar = "█" * done + " " * (10 - done)
            out.append(f"\r{s}: {100 * i // nb:3d}%|{bar}| {i}/{nb} [00:{i % 60:02d}<00:10,  2.61it/s]")
            out.append(f"\r{s}: {100 * (i + 1) // nb:3d}%|{bar}| {i + 1}/{nb} [00:{i % 60:02d}<00:10,  2.61it/s]")
        out.append("\n")
        out.append(f"\r{val}:   0%|          | 0/4 [00:00<?, ?it/s]\r{val}: 100%|██████████| 4/4 [00:01<00:00,  3.5it/s]\n")
        out.append(pf % ("all", 128, 929, 0.61, 0.52, 0.55 + epoch * 1e-4, 0.33) + "\n")
    out.append(pf % ("person", 128, 254, 0.7, 0.6, 0.65, 0.4) + "\n")
    return "".join(out)


def convnext_log(min_lines: int) -> str:
    epochs = 100
    steps = max(1, min_lines // epochs)
    width = len(str(steps))
    out = [f"Start training for {epochs} epochs\n"]
    for epoch in range(epochs):
        for i in range(steps):
            out.append(f"Epoch: [{epoch}]  [{i:{width}d}/{steps}]  eta: 0:12:{i % 60:02d}  lr: {0.004 / (i + 1):.6f}"
                       f"  min_lr: {0.004 / (i + 1):.6f}  loss: {2.3 - i * 1e-6:.4f} ({2.31 - i * 1e-6:.4f})"
                       f"  class_acc: 0.2500 (0.2100)  weight_decay: 0.0500 (0.0500)  time: 1.4118  data: 0.0110"
                       f"  max mem: 3512\n")
        out.append(f"Epoch: [{epoch}] Total time: 0:00:14 (1.4119 s / it)\n")
        out.append("Averaged stats: lr: 0.002313  min_lr: 0.002313  loss: 4.6589 (5.3702)  class_acc: 0.0 (0.2)\n")
        out.append("Test:  [0/5]  eta: 0:00:05  loss: 0.6732 (0.6732)  acc1: 100.0000 (100.0000)  time: 1.1577\n")
        out.append("* Acc@1 53.333 Acc@5 100.000 loss 3.625\n")
        out.append("Accuracy of the model on the 15 test images: 53.3%\nMax accuracy: 53.33%\n")
    return "".join(out)


REGEX_SPEC = {"parser": {"patterns": [
    {"regex": r"^epoch (?P<e>\d+)/(?P<n>\d+) iter (?P<i>\d+)/(?P<m>\d+) loss=(?P<loss>\S+) lr=(?P<lr>\S+)",
     "metrics": {"loss": "train/loss", "lr": "lr"}, "epoch_group": "e", "total_epochs_group": "n",
     "step_group": "i", "total_steps_group": "m"},
    {"regex": r"^val acc (?P<acc>[\d.]+)% top5 (?P<top5>[\d.]+)%", "metrics": {"acc": "val/accuracy", "top5": "val/top5"},
     "scale": {"acc": 0.01, "top5": 0.01}},
]}}


def regex_log(min_lines: int) -> str:
    epochs = 100
    steps = max(1, min_lines // epochs)
    out = []
    for epoch in range(1, epochs + 1):
        for i in range(1, steps + 1):
            out.append(f"epoch {epoch}/{epochs} iter {i}/{steps} loss={1.5 - i * 1e-6:.5f} lr={0.01 / i:.3e}\n")
            if i % 50 == 0:
                out.append(f"[2024-05-01 12:00:{i % 60:02d}] data loader: {i} batches cached\n")
        out.append(f"val acc {50 + epoch * 0.3:.2f}% top5 {80 + epoch * 0.1:.2f}%\n")
    return "".join(out)


def generic_log(min_lines: int, dense: bool = False) -> str:
    """An HF-Trainer-like log: tqdm refreshes (`\\r`), train/eval dicts, key=value and key: value
    metric lines, noise. Mix per 10 lines: 6 refreshes, 1 dict, 1 key=value, 1 key: value, 1 noise.
    `dense`: metric lines only (dicts, key=value, key: value) - the worst case."""
    out, n, step, total = [], 0, 0, 1000
    while n < min_lines:
        step += 1
        epoch = step / total
        if not dense:
            for k in range(6):
                done = 10 * (step % total) // total
                out.append(f"\r{100 * (step % total) // total:3d}%|{'█' * done}{' ' * (10 - done)}| "
                           f"{step % total}/{total} [01:{k:02d}<02:02,  4.50it/s]")
            out.append("\n")
            out.append(f"[2024-05-01 12:00:{n % 60:02d}] INFO worker 3: prefetching shard {n}\n")
            n += 7
        out.append(f"{{'loss': '{0.7 - epoch * 1e-3:.4g}', 'grad_norm': '1.25', 'learning_rate': '5e-05', "
                   f"'epoch': '{epoch:.4g}'}}\n")
        out.append(f"step={step} loss={0.7 - epoch * 1e-3:.4f} lr=5e-05 throughput=812.5 samples/s\n")
        out.append(f"Train Loss: {0.7:.4f}  val loss: 0.6500  Test Acc: 81.5%  eta: 0:00:{n % 60:02d}\n")
        n += 3
        if step % total == 0:
            out.append(f"{{'eval_loss': '0.65', 'eval_accuracy': '0.81', 'eval_runtime': '1.2', 'epoch': '{epoch:.4g}'}}\n")
            n += 1
    return "".join(out)


def best_of(rounds: int, fn: Callable[[], tuple[int, int]]) -> tuple[float, int, int]:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        lines, metrics = fn()
        best = min(best, time.perf_counter() - started)
    return best, lines, metrics


def split_only(raw: bytes) -> tuple[int, int]:
    splitter, count = LineSplitter(), 0
    for i in range(0, len(raw), CHUNK):
        count += len(splitter.feed(raw[i:i + CHUNK]))
    return count + len(splitter.flush()), 0


def split_and_parse(raw: bytes, config) -> tuple[int, int]:
    splitter, parser = LineSplitter(), build_parser(config)
    feed_line = parser.feed_line
    lines = metrics = 0
    for i in range(0, len(raw), CHUNK):
        batch = splitter.feed(raw[i:i + CHUNK])
        lines += len(batch)
        for line in batch:
            for event in feed_line(line):
                metrics += type(event) is MetricUpdate
    for line in splitter.flush():
        lines += 1
        metrics += sum(type(e) is MetricUpdate for e in feed_line(line))
    return lines, metrics + sum(type(e) is MetricUpdate for e in parser.finish())


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--lines", type=int, default=1_000_000, help="minimum lines per log")
    args.add_argument("--rounds", type=int, default=3, help="best of N runs")
    opts = args.parse_args(argv)
    formats = [("yolov7", "yolov7", yolov7_log), ("convnext", "convnext", convnext_log),
               ("regex (YAML)", REGEX_SPEC, regex_log), ("generic", "generic", generic_log),
               ("generic dense", "generic", lambda n: generic_log(n, dense=True))]
    print(f"{'format':<14}{'lines':>10}{'MB':>7}  {'splitter lines/s':>17}  {'split+parse lines/s':>20}"
          f"{'metric events':>14}  goal")
    ok = True
    for label, config, make in formats:
        raw = make(opts.lines).encode()
        t_split, lines, _ = best_of(opts.rounds, lambda raw=raw: split_only(raw))
        t_parse, parsed, metrics = best_of(opts.rounds, lambda raw=raw, config=config: split_and_parse(raw, config))
        assert parsed == lines and lines >= opts.lines, (label, lines, parsed)
        rate = lines / t_parse
        ok &= rate >= GOAL
        print(f"{label:<14}{lines:>10,}{len(raw) / 1e6:>7.0f}  {lines / t_split:>17,.0f}  {rate:>20,.0f}"
              f"{metrics:>14,}  {'ok' if rate >= GOAL else 'MISSED'}")
    print(f"goal: >= {GOAL:,} lines/s with splitting, on {sys.implementation.name} {sys.version.split()[0]}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
