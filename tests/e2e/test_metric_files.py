"""A repo that prints nothing a parser can read and writes its metrics to files (its spec's `metric_files`),
through a real daemon: the metrics come per epoch while it runs, and a daemon killed mid-job and started
again applies no row twice (job history, event stream, MLflow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protos import visionyard_pb2 as pb
from tests.fixtures import make_imagefolder
from tests.helpers import kill_daemon, start_daemon, wait_for
from tests.repo_fixtures import make_git_repo

pytestmark = pytest.mark.e2e

# Epoch E starts once `<gate>.E` exists. A CSV in the output dir (its header written first) and JSON lines in
# the working tree (the command's cwd), epochs from 0 there; stdout says nothing with a number in it.
QUIET_TRAIN = '''
import argparse, json, os, time
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--out", required=True)
p.add_argument("--gate", required=True)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
os.makedirs("logs", exist_ok=True)
print("training quietly", flush=True)
results = os.path.join(a.out, "results.csv")
with open(results, "w") as f:
    f.write("epoch,accuracy,top5\\n")
for e in range(1, a.epochs + 1):
    while not os.path.exists(f"{a.gate}.{e}"):
        time.sleep(0.02)
    with open(os.path.join("logs", "train.jsonl"), "a") as f:
        f.write(json.dumps({"epoch": e - 1, "loss": round(1.0 / e, 4), "note": "done"}) + "\\n")
    with open(results, "a") as f:
        f.write(f"{e},{0.1 * e:.1f},")
        f.flush()
        time.sleep(0.05)  # half a row on disk for a moment
        f.write(f"{0.2 * e:.1f}\\n")
print("done", flush=True)
'''

SPEC = """
name: quiet
url: {url}
commit: {sha}
tasks: [image_classification]
dataset_format: imagefolder
command: ["{{python}}", train.py, --epochs, "{{epochs}}", --out, "{{output_dir}}", --gate, "{{advanced.gate}}"]
advanced:
  gate: {{type: str, default: "", description: "epoch E waits for <gate>.E"}}
parser: generic
metric_files:
  - path: results.csv
    format: csv
    epoch: epoch
    metrics: {{accuracy: val/accuracy, top5: val/top5}}
  - path: logs/train.jsonl
    format: json_lines
    epoch: epoch
    first_epoch: 0
    metrics: {{loss: train/loss}}
"""


def history(client, job_id, key) -> list[tuple[int, float]]:
    return [(e.metrics.step, round(e.metrics.values[key], 4)) for e in client.watch(job_id, snapshot=True)
            if e.WhichOneof("kind") == "metrics" and key in e.metrics.values]


def test_metrics_from_files_per_epoch_and_once_across_a_daemon_kill(tmp_path, shared_envs):
    url, sha = make_git_repo(tmp_path / "quiet", {"train.py": QUIET_TRAIN})
    (tmp_path / "quiet.yaml").write_text(SPEC.format(url=url, sha=sha))
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    gate, home, epochs = tmp_path / "gate", tmp_path / "home", 4
    daemon = start_daemon(home, shared_envs)
    try:
        daemon.client.add_repo(tmp_path / "quiet.yaml")
        job = daemon.client.submit({
            "name": "quiet-job", "framework": "custom", "repo": "quiet", "model": "toy",
            "task": "image_classification", "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": 2, "device": "cpu"}, "advanced": {"gate": str(gate)}})
        Path(f"{gate}.1").touch()
        wait_for(lambda: len(history(daemon.client, job.id, "train/loss")) == 1
                 and len(history(daemon.client, job.id, "val/top5")) == 1, timeout=120)
        assert history(daemon.client, job.id, "val/accuracy") == [(1, 0.1)]  # while epoch 2 waits at its gate

        kill_daemon(daemon)
        Path(f"{gate}.2").touch()  # epoch 2's rows written while no daemon reads the files
        results = home / "jobs" / job.id / "output" / "results.csv"
        wait_for(lambda: results.read_text().endswith("2,0.2,0.4\n"), timeout=60)
        daemon = start_daemon(home, shared_envs)
        assert daemon.client.get(job.id).state == pb.RUNNING  # adopted
        wait_for(lambda: len(history(daemon.client, job.id, "val/accuracy")) == 2, timeout=60)
        for epoch in range(3, epochs + 1):
            Path(f"{gate}.{epoch}").touch()
        final = daemon.client.wait(job.id)
        assert final.state == pb.SUCCEEDED, final.error

        assert history(daemon.client, job.id, "val/accuracy") == [(e, round(0.1 * e, 4)) for e in range(1, 5)]
        assert history(daemon.client, job.id, "val/top5") == [(e, round(0.2 * e, 4)) for e in range(1, 5)]
        assert history(daemon.client, job.id, "train/loss") == [(e, round(1.0 / e, 4)) for e in range(1, 5)]
        assert final.epoch == epochs and final.metrics["val/accuracy"] == pytest.approx(0.4)
        statuses = [e.status.message for e in daemon.client.watch(job.id) if e.WhichOneof("kind") == "status"]
        assert statuses[-1] == "finished"  # the files showed every epoch: no "log showed 0 of 4 epochs"
        assert not [w for w in final.warnings if "metric file" in w]
    finally:
        daemon.stop()  # a clean stop: MLflow has the run ended with every point

    from mlflow.tracking import MlflowClient

    from runner.core.store import JobStore

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    store = JobStore(home / "state.db")  # the daemon is stopped: its store, read directly
    try:
        run_id = store.get(job.id).mlflow_run_id
        assert store.metric_file_positions(job.id) == {
            0: (str(results), len(results.read_bytes())),
            1: (str(home / "jobs" / job.id / "repo" / "logs" / "train.jsonl"),
                len((home / "jobs" / job.id / "repo" / "logs" / "train.jsonl").read_bytes()))}
    finally:
        store.close()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    points = [(m.step, round(m.value, 4)) for m in client.get_metric_history(run_id, "val/accuracy")]
    assert sorted(points) == [(e, round(0.1 * e, 4)) for e in range(1, 5)]
