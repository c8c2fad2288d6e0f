"""Sweeps through real daemons (`visionyard serve` subprocesses), real MLflow: a custom repo's trials pruned
from its parsed stdout, a sweep that outlives a kill -9 of its daemon with every trial once and one MLflow
child run each, and a real timm sweep whose median pruner stops trials that can't learn."""

from __future__ import annotations

import json
import time

import pytest

from protos import visionyard_pb2 as pb
from tests.fixtures import make_imagefolder
from tests.helpers import discard_daemon, fake_timm_envs, job_spec, kill_daemon, start_daemon, wait_for
from tests.repo_fixtures import make_git_repo

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A repo whose validation accuracy grows with its learning rate: `lr × epoch` (as a percentage).
TUNED_TRAIN = '''
import argparse, os, time
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--lr", type=float, required=True)
p.add_argument("--out", required=True)
a = p.parse_args()
os.makedirs(a.out, exist_ok=True)
for e in range(1, a.epochs + 1):
    time.sleep(0.4)
    print(f"epoch {e}/{a.epochs} loss={1.0 / e:.4f}", flush=True)
    print(f"validation: acc {min(99.0, 100 * a.lr * e):.1f}%", flush=True)
'''

TUNED_SPEC = """
name: tunedrepo
url: {url}
commit: {commit}
description: a toy trainer whose accuracy grows with its learning rate
tasks: [image_classification]
dataset_format: imagefolder
command: ["{{python}}", train.py, --epochs, "{{epochs}}", --lr, "{{advanced.lr}}", --out, "{{output_dir}}"]
advanced:
  lr: {{type: float, default: 0.1, minimum: 0, description: "the learning rate"}}
parser:
  patterns:
    - regex: 'epoch (?P<epoch>\\d+)/(?P<epochs>\\d+) loss=(?P<loss>[\\d.]+)'
      metrics: {{loss: train/loss}}
      epoch_group: epoch
      total_epochs_group: epochs
    - regex: 'validation: acc (?P<acc>[\\d.]+)%'
      metrics: {{acc: val/accuracy}}
      scale: {{acc: 0.01}}
"""


def wait_sweep(client, sweep_id: str, timeout: float = 240) -> pb.Sweep:
    return wait_for(lambda: (s := client.sweep(sweep_id)).state != "RUNNING" and s, timeout=timeout, interval=0.2)


def test_a_custom_repo_sweep_prunes_from_parsed_stdout(tmp_path, shared_envs):
    url, commit = make_git_repo(tmp_path / "tuned", {"train.py": TUNED_TRAIN})
    (tmp_path / "tunedrepo.yaml").write_text(TUNED_SPEC.format(url=url, commit=commit))
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    daemon = start_daemon(tmp_path / "home", shared_envs)
    try:
        daemon.client.add_repo(tmp_path / "tunedrepo.yaml")
        base = {"framework": "custom", "repo": "tunedrepo", "task": "image_classification", "model": "default",
                "dataset": {"path": str(data), "format": "imagefolder"}, "training": {"epochs": 4, "device": "cpu"}}
        models = [m.name for m in daemon.client.models(framework="custom") if "repo:tunedrepo" in m.tags]
        base["model"] = models[0] if models else base["model"]
        sweep = daemon.client.create_sweep({
            "name": "repo-lr", "base": base, "trials": 4, "parallel": 1,
            "space": {"advanced.lr": {"type": "categorical", "choices": [0.2, 0.01]}},
            "sampler": {"type": "random", "seed": 0}, "pruner": {"type": "median", "startup_trials": 1}})
        sweep = wait_sweep(daemon.client, sweep.id)
        assert sweep.state == "FINISHED", sweep
        pruned = [t for t in sweep.trial_list if t.state == "PRUNED"]
        assert pruned and all(json.loads(t.params_json) == {"advanced.lr": 0.01} for t in pruned), sweep
        for trial in pruned:
            assert "below the median" in trial.reason and trial.pruned_at < 4
            job = daemon.client.get(trial.job_id)
            assert job.state == pb.CANCELLED and job.cause == pb.CAUSE_PRUNED and job.epoch < 4
        assert sweep.best_value == pytest.approx(0.8)
    finally:
        discard_daemon(daemon)


def test_a_sweep_outlives_a_kill_9_with_every_trial_once_and_one_nested_mlflow_run_each(tmp_path):
    from mlflow.tracking import MlflowClient

    home, trials = tmp_path / "home", 4
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1, size=8)
    envs = fake_timm_envs(tmp_path / "envs")  # trials of the fake adapter: what is tested is the sweep's hold
    base = job_spec(data, name="tuned", model="resnet18", image_size=32,
                    training={"epochs": 5, "batch_size": 2, "device": "cpu"})
    daemon = start_daemon(home, envs, ["--max-concurrent-jobs", "2"], cancel_jobs_on_stop=False)
    try:
        sweep = daemon.client.create_sweep({
            "name": "restart", "base": base, "trials": trials, "parallel": 2, "pruner": "none",
            "space": {"training.learning_rate": {"type": "float", "low": 0.05, "high": 0.2}}})
        wait_for(lambda: sum(t.epoch >= 2 for t in daemon.client.sweep(sweep.id).trial_list) >= 1, timeout=120)
        kill_daemon(daemon)
        time.sleep(1.0)  # trials go on, report to no one; one may end meanwhile
        daemon = start_daemon(home, envs, ["--max-concurrent-jobs", "2"], cancel_jobs_on_stop=False)
        sweep = wait_sweep(daemon.client, sweep.id)
        assert sweep.state == "FINISHED" and [t.number for t in sweep.trial_list] == list(range(trials))
        assert {t.state for t in sweep.trial_list} == {"COMPLETE"}
        job_ids = [t.job_id for t in sweep.trial_list]
        assert len(set(job_ids)) == trials and sorted(j.id for j in daemon.client.list()) == sorted(job_ids)
        parent = wait_for(lambda: daemon.client.sweep(sweep.id).mlflow_run_id, timeout=60)  # the store is made
        mlflow = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        experiment = mlflow.get_experiment_by_name("visionyard").experiment_id

        def children():
            runs = mlflow.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent}'")
            return len(runs) == trials and all(r.info.status != "RUNNING" for r in runs) and runs
        runs = wait_for(children, timeout=120)
        assert sorted(r.data.tags["visionyard.job_id"] for r in runs) == sorted(job_ids)
        best_job = sweep.trial_list[sweep.best_trial].job_id
        assert wait_for(lambda: [r.data.tags["visionyard.job_id"] for r in mlflow.search_runs(
            [experiment], "tags.`visionyard.sweep.best` = 'true'")], timeout=60) == [best_job]
        assert wait_for(lambda: mlflow.get_run(parent).info.status == "FINISHED", timeout=60)
    finally:
        discard_daemon(daemon)


def test_a_timm_sweep_prunes_the_trials_that_cannot_learn(tmp_path, shared_envs, timm_env):
    """6 trials, 2 at once, 3 epochs of a tiny timm model: a learning rate of 1e-9 can't lower the training
    loss, 0.01 can; the seeded sampler asks good, good, bad, good, bad, bad, so a bad trial starts only after a
    good one ended, and the median pruner stops it."""
    data = make_imagefolder(tmp_path / "colours", per_class=8, val_per_class=2)
    daemon = start_daemon(tmp_path / "home", shared_envs, ["--max-concurrent-jobs", "2"])
    try:
        base = job_spec(data, name="timm-lr", model="test_resnet",
                        training={"epochs": 3, "batch_size": 4, "device": "cpu", "seed": 0})
        sweep = daemon.client.create_sweep({
            "name": "timm-lr", "base": base, "trials": 6, "parallel": 2,
            "objective": {"metric": "train/loss"},
            "space": {"training.learning_rate": {"type": "categorical", "choices": [0.01, 1e-9]}},
            "sampler": {"type": "random", "seed": 6}, "pruner": {"type": "median", "startup_trials": 1}})
        assert sweep.direction == "minimize"
        sweep = wait_sweep(daemon.client, sweep.id, timeout=600)
        assert sweep.state == "FINISHED" and len(sweep.trial_list) == 6
        lrs = [json.loads(t.params_json)["training.learning_rate"] for t in sweep.trial_list]
        assert lrs == [0.01, 0.01, 1e-9, 0.01, 1e-9, 1e-9]
        pruned = [t for t in sweep.trial_list if t.state == "PRUNED"]
        assert pruned, [(t.state, t.reason) for t in sweep.trial_list]
        for trial in pruned:
            assert json.loads(trial.params_json)["training.learning_rate"] == 1e-9
            assert "above the median" in trial.reason and trial.pruned_at < 3
            job = daemon.client.get(trial.job_id)
            assert job.state == pb.CANCELLED and job.cause == pb.CAUSE_PRUNED and job.epoch < 3
        assert json.loads(sweep.best_params_json) == {"training.learning_rate": 0.01}
    finally:
        discard_daemon(daemon)

