"""End-to-end lag from a line a custom repo's script prints to its metric arriving in `watch`.

A YAML-only repo prints `tick <i> sent=<unix time>` every 50 ms; its regex parser turns `sent`
into a metric. The client, watching, takes (arrival time − sent) for each of them.

    uv run python bench/bench_log_lag.py [--ticks 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_daemon  # noqa: E402
from tests.fixtures import make_imagefolder  # noqa: E402
from tests.repo_fixtures import make_git_repo  # noqa: E402

TICKER = '''
import sys, time
n = int(sys.argv[1])
for i in range(1, n + 1):
    print(f"tick {i} sent={time.time():.6f}", flush=True)
    time.sleep(0.05)
'''

SPEC = """
name: ticker
url: {url}
commit: {sha}
tasks: [image_classification]
dataset_format: imagefolder
command: ["{{python}}", ticker.py, "{{advanced.ticks}}"]
advanced:
  ticks: {{type: int, default: 100, minimum: 1}}
parser:
  patterns:
    - regex: 'tick (?P<i>\\d+) sent=(?P<sent>[\\d.]+)'
      metrics: {{sent: custom/sent}}
      epoch_group: i
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ticks", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vy-lag-"))
    url, sha = make_git_repo(tmp / "ticker", {"ticker.py": TICKER})
    (tmp / "ticker.yaml").write_text(SPEC.format(url=url, sha=sha))
    data = make_imagefolder(tmp / "data", per_class=2, val_per_class=1)
    (tmp / "envs").mkdir()
    daemon = start_daemon(tmp / "home", tmp / "envs")
    lags = []
    try:
        daemon.client.add_repo(tmp / "ticker.yaml")
        job = daemon.client.submit({"framework": "custom", "repo": "ticker", "model": "ticker",
                                    "task": "image_classification",
                                    "dataset": {"path": str(data), "format": "imagefolder"},
                                    "training": {"epochs": 1}, "advanced": {"ticks": args.ticks}})
        for event in daemon.client.watch(job.id):
            if event.WhichOneof("kind") == "metrics" and "custom/sent" in event.metrics.values:
                lags.append(time.time() - event.metrics.values["custom/sent"])
    finally:
        daemon.stop()
    lags.sort()
    print(f"line → metric in watch, {len(lags)} lines: median {statistics.median(lags) * 1000:.0f} ms, "
          f"p90 {lags[int(len(lags) * 0.9)] * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
