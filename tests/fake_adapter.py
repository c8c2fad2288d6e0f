"""Stands in for `python -m adapters.entrypoint --spec job.json` where no framework env is built: it
reports through the real SDK (`adapters.reporter.Reporter`, journal included) the way an adapter
does, and prints to its log. The job's name says what it does, in words:

- ``train``: each epoch a progress report, a log line, metrics, the best and last checkpoints (files
  in the job dir); then the result; exit 0.
- ``hold``: waits after its first epoch until the file ``go-on`` appears in its job dir.
- ``spawn``: first starts two processes that try to escape the job (one in a session of its own,
  one orphaned by its parent) and writes every pid of the job to ``pids`` in the job dir.
- ``crash``: after its epochs, reports an error, prints a traceback and exits with code 3.
- ``stops``: its result says it stopped early (``STOP_NOTE``), as an adapter's early stopping does.
- ``tuned``: a sweep's trial: its val/accuracy grows with its learning rate (``min(0.99, lr × epoch)``),
  and each epoch takes 0.2 s, so a pruner can stop it between epochs.
- ``silent``: reports nothing at all (a test sends reports in its place); writes ``ready`` in the
  job dir, waits for ``go-on``, exits 0.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from adapters.reporter import Reporter

CRASH_MESSAGE = "the fake trainer blew up"
STOP_NOTE = "stopped early at epoch 2 (no improvement of val/accuracy for 1 epochs)"


def wait_for_file(path: Path) -> None:
    while not path.exists():
        time.sleep(0.05)


def spawn_escapees(job_dir: Path) -> None:
    in_own_session = subprocess.Popen(["sleep", "600"], start_new_session=True)
    orphaned = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True,
                              check=True).stdout.strip()
    pids = [os.getpid(), in_own_session.pid, int(orphaned)]
    (job_dir / "pids.tmp").write_text(" ".join(map(str, pids)))
    os.replace(job_dir / "pids.tmp", job_dir / "pids")


def epoch(reporter: Reporter, job_dir: Path, e: int, epochs: int, accuracy: float | None = None) -> tuple[Path, Path]:
    print(f"fake epoch {e}/{epochs}", flush=True)
    reporter.progress(e, epochs, 1, 1)
    reporter.metrics(e, {"train/loss": 1.0 / e, "val/accuracy": 0.5 + 0.1 * e if accuracy is None else accuracy})
    best, last = job_dir / "checkpoints" / "best.pt", job_dir / "checkpoints" / "last.pt"
    for path in (best, last):
        path.write_text(f"weights of epoch {e}")
    reporter.checkpoint(best, "best", e)
    reporter.checkpoint(last, "last", e)
    return best, last


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-m")  # adapters.entrypoint, as the workload runs it
    parser.add_argument("--spec", required=True)
    job = json.loads(Path(parser.parse_args().spec).read_text())
    job_dir, spec = Path(job["job_dir"]), job["spec"]
    words = set(spec.get("name", "").split())
    epochs = spec["training"]["epochs"]
    if "spawn" in words:
        spawn_escapees(job_dir)
    if "silent" in words:
        (job_dir / "ready").touch()
        wait_for_file(job_dir / "go-on")
        return 0
    reporter = Reporter.from_env(linger=0.01, backoff_max=0.2)
    for e in range(1, epochs + 1):
        accuracy = min(0.99, spec["training"]["learning_rate"] * e) if "tuned" in words else None
        if "tuned" in words:
            time.sleep(0.2)
        best, last = epoch(reporter, job_dir, e, epochs, accuracy)
        if e == 1 and "hold" in words:
            wait_for_file(job_dir / "go-on")
    if "crash" in words:
        reporter.error("RuntimeError", CRASH_MESSAGE)
        reporter.close(timeout=1)
        print(f"Traceback (most recent call last):\nRuntimeError: {CRASH_MESSAGE}", file=sys.stderr, flush=True)
        return 3
    reporter.result({"val/accuracy": 0.5 + 0.1 * epochs}, best, last, note=STOP_NOTE if "stops" in words else "")
    reporter.close(timeout=1)  # a daemon that is down: the journal keeps what was not delivered
    return 0


if __name__ == "__main__":
    sys.exit(main())
