"""Sweeps through a real daemon in this process (`tests/inprocess_daemon.py`): trials are ordinary jobs
of the fake adapter (`tuned`: its val/accuracy grows with the learning rate), pruned on their live
metrics, told when they end, carried on across a daemon restart."""

from __future__ import annotations

import json
import os
import re
import time

import grpc
import pytest

from protos import visionyard_pb2 as pb
from runner.client import ClientError
from tests.helpers import wait_for
from tests.inprocess_daemon import InProcessDaemon, end_leftover_jobs, fake_job


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """One daemon for the module's sweeps (a study store is made once per home), two jobs at a time."""
    home = tmp_path_factory.mktemp("sweeps") / "home"
    started = InProcessDaemon(home, max_concurrent_jobs=2)
    yield started
    started.stop()
    end_leftover_jobs(home)


def sweep_spec(data, **options) -> dict:
    spec = {"name": "lr-search", "base": fake_job(data, "tuned", epochs=4),
            "space": {"training.learning_rate": {"type": "categorical", "choices": [0.3, 0.01]}},
            "sampler": {"type": "random", "seed": 0},
            "pruner": {"type": "median", "startup_trials": 1}, "trials": 4, "parallel": 1}
    spec.update(options)
    return spec


def wait_sweep(client, sweep_id: str, timeout: float = 60) -> pb.Sweep:
    return wait_for(lambda: (s := client.sweep(sweep_id)).state != "RUNNING" and s, timeout=timeout, interval=0.1)


def test_a_low_learning_rate_trial_is_pruned_early_with_the_reason(daemon, data):
    created = daemon.client.create_sweep(sweep_spec(data))
    assert created.state == "RUNNING" and created.metric == "val/accuracy" and created.direction == "maximize"
    sweep = wait_sweep(daemon.client, created.id)
    assert sweep.state == "FINISHED" and len(sweep.trial_list) == 4
    pruned = [t for t in sweep.trial_list if t.state == "PRUNED"]
    assert pruned, [(t.params_json, t.state, t.reason) for t in sweep.trial_list]
    for trial in pruned:
        assert json.loads(trial.params_json) == {"training.learning_rate": 0.01}
        assert re.fullmatch(rf"pruned at epoch {trial.pruned_at} \(objective 0\.0\d below the median 0\.\d+\)",
                            trial.reason), trial.reason
        assert trial.pruned_at < 4
        job = daemon.client.get(trial.job_id)
        assert job.state == pb.CANCELLED and job.cause == pb.CAUSE_PRUNED
    complete = [t for t in sweep.trial_list if t.state == "COMPLETE"]
    assert complete and sweep.best_value == pytest.approx(0.99)
    assert json.loads(sweep.best_params_json) == {"training.learning_rate": 0.3}
    assert {daemon.client.get(t.job_id).state for t in complete} == {pb.SUCCEEDED}


def test_a_grid_sweep_runs_exactly_its_grid(daemon, data):
    spec = sweep_spec(data, sampler="grid", pruner="none", trials=None, parallel=2,
                      space={"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                             "training.batch_size": {"type": "categorical", "choices": [1, 2]}})
    spec["base"]["training"]["epochs"] = 1
    sweep = wait_sweep(daemon.client, daemon.client.create_sweep(spec).id)
    assert sweep.state == "FINISHED" and sweep.trials == 6
    points = sorted((p["training.learning_rate"], p["training.batch_size"])
                    for p in (json.loads(t.params_json) for t in sweep.trial_list))
    assert points == [(0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2), (0.3, 1), (0.3, 2)]
    assert {t.state for t in sweep.trial_list} == {"COMPLETE"}
    jobs = {t.job_id: daemon.client.get(t.job_id) for t in sweep.trial_list}
    for trial in sweep.trial_list:  # each trial's job ran the sampled values
        assert jobs[trial.job_id].spec.training.batch_size == json.loads(trial.params_json)["training.batch_size"]


@pytest.mark.parametrize("change, field, words", [
    ({"space": {"training.lr": {"type": "float", "low": 0.001, "high": 0.1}}}, "space.training.lr",
     "the job spec has no field training.lr"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 0.001, "high": 50}}}, "space.training.learning_rate",
     "value 50.0 is refused"),
    ({"space": {"training.batch_size": {"type": "int", "low": 0, "high": 8}}}, "space.training.batch_size",
     "greater than or equal to 1"),
    ({"objective": {"metric": "val/mAP50-95"}}, "objective.metric", "image_classification never reports"),
    ({"parallel": 5, "trials": 3}, "parallel", "more than the 3 trials"),
    ({"sampler": "grid"}, "space", "grid sweep needs every float parameter to have `step`"),
    ({"sampler": "annealing"}, "sampler.type", "tpe"),
    ({"pruner": {"type": "median", "warmup": 2}}, "pruner.warmup", "unknown field. Valid: type, warmup_epochs"),
    ({"trials": 3, "triels": 4}, "triels", "unknown field. Valid: name, base"),
    ({"base": {"framework": "timm"}}, "base.task", "required"),
])
def test_bad_input_is_refused_naming_the_field_before_any_trial_runs(daemon, data, change, field, words):
    jobs, sweeps = len(daemon.client.list()), len(daemon.client.sweeps())
    spec = sweep_spec(data, **change)
    if "sampler" in change and change["sampler"] == "grid":
        spec["space"] = {"training.learning_rate": {"type": "float", "low": 0.01, "high": 0.3}}
    with pytest.raises(ClientError) as caught:
        daemon.client.create_sweep(spec)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert f"\n{field}: " in str(caught.value) and words in str(caught.value), str(caught.value)
    assert (len(daemon.client.list()), len(daemon.client.sweeps())) == (jobs, sweeps)


@pytest.mark.parametrize("sampler, pruner", [("cmaes", "hyperband"), ("tpe", "successive_halving")])
def test_every_sampler_and_pruner_runs_a_sweep(daemon, data, sampler, pruner):
    spec = sweep_spec(data, name=f"{sampler}-{pruner}", sampler={"type": sampler, "seed": 3}, pruner=pruner, trials=3,
                      space={"training.learning_rate": {"type": "float", "low": 0.05, "high": 0.3},
                             "training.batch_size": {"type": "int", "low": 1, "high": 4}})
    spec["base"]["training"]["epochs"] = 2
    sweep = wait_sweep(daemon.client, daemon.client.create_sweep(spec).id)
    assert sweep.state == "FINISHED" and len(sweep.trial_list) == 3 and sweep.best_trial >= 0
    assert {t.state for t in sweep.trial_list} <= {"COMPLETE", "PRUNED"}
    for trial in sweep.trial_list:
        params = json.loads(trial.params_json)
        assert 0.05 <= params["training.learning_rate"] <= 0.3 and params["training.batch_size"] in (1, 2, 3, 4)


def test_minimizing_accuracy_is_allowed_with_a_warning(daemon, data):
    sweep = daemon.client.create_sweep(sweep_spec(data, trials=1, objective={"metric": "val/accuracy",
                                                                             "direction": "minimize"}))
    assert sweep.direction == "minimize"
    assert any("minimize val/accuracy, where higher is better" in w for w in sweep.warnings)
    assert wait_sweep(daemon.client, sweep.id).state == "FINISHED"


def test_a_refused_combination_is_a_failed_trial_and_max_failed_stops_the_sweep(daemon, data):
    spec = sweep_spec(data, trials=4, max_failed=2, pruner="none",  # fp16 is fine on auto, cpu on no; not both
                      space={"training.mixed_precision": {"type": "categorical", "choices": ["fp16"]},
                             "training.device": {"type": "categorical", "choices": ["cpu"]}})
    spec["base"]["training"]["device"] = "auto"
    sweep = wait_sweep(daemon.client, daemon.client.create_sweep(spec).id)
    assert sweep.state == "STOPPED" and "max_failed: 2" in sweep.message
    assert [t.state for t in sweep.trial_list] == ["FAIL", "FAIL"]
    assert all(t.job_id == "" and "its spec was refused: training.mixed_precision" in t.reason
               for t in sweep.trial_list)


def test_a_timeout_stops_asking_for_trials_and_lets_the_running_ones_end(daemon, data):
    spec = sweep_spec(data, name="lr-search-timeout", trials=50, pruner="none", timeout=1.0)
    sweep = wait_sweep(daemon.client, daemon.client.create_sweep(spec).id)
    assert sweep.state == "STOPPED" and sweep.message == "stopped: its timeout of 1 s passed"
    assert 1 <= len(sweep.trial_list) < 50 and {t.state for t in sweep.trial_list} == {"COMPLETE"}


def test_cancel_stops_the_running_trial_and_resume_adds_trials(daemon, data):
    spec = sweep_spec(data, trials=3, pruner="none", name="lr-search-cancel")
    spec["base"]["training"]["epochs"] = 30
    created = daemon.client.create_sweep(spec)
    first = wait_for(lambda: (s := daemon.client.sweep(created.id)).trial_list and s.trial_list[0], timeout=15)
    daemon.wait_state(first.job_id, pb.RUNNING)
    cancelled = daemon.client.cancel_sweep("lr-search-cancel")
    assert cancelled.state == "CANCELLED"
    assert daemon.wait_final(first.job_id).state == pb.CANCELLED
    with pytest.raises(ClientError) as caught:
        daemon.client.cancel_sweep(created.id)
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    ended = wait_for(lambda: (s := daemon.client.sweep(created.id)).done == 1 and s, timeout=15)
    assert ended.trial_list[0].state == "FAIL" and len(ended.trial_list) == 1
    spec["base"]["training"]["epochs"] = 1
    resumed = daemon.client.create_sweep(dict(spec, trials=2), resume=True)
    assert resumed.id == created.id and resumed.trials == 3
    sweep = wait_sweep(daemon.client, created.id)
    assert sweep.state == "FINISHED" and len(sweep.trial_list) == 3
    assert [t.state for t in sweep.trial_list][1:] == ["COMPLETE", "COMPLETE"]


def test_resuming_a_grid_sweep_runs_its_points_left_and_then_is_refused(daemon, data, tmp_path, capsys, monkeypatch):
    import yaml

    from runner.cli.app import main

    spec = sweep_spec(data, name="grid-resume", sampler="grid", pruner="none", trials=2,
                      space={"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.2, "step": 0.1},
                             "training.batch_size": {"type": "categorical", "choices": [1, 2]}})
    spec["base"]["training"]["epochs"] = 1
    created = daemon.client.create_sweep(spec)
    assert wait_sweep(daemon.client, created.id).state == "FINISHED"
    monkeypatch.setenv("NO_COLOR", "1")
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(dict(spec, trials=None)))  # the grid's size: 4 asked
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--resume", "--address", daemon.client.address]) == 0
    shown = " ".join("".join(capsys.readouterr()).split())
    assert "resumed: 2 more trial(s), only 2 of its grid's 4 points being left to run (4 asked)" in shown, shown
    resumed = daemon.client.sweep(created.id)
    assert resumed.trials == 4
    sweep = wait_sweep(daemon.client, created.id)
    assert sweep.state == "FINISHED" and {t.state for t in sweep.trial_list} == {"COMPLETE"}
    points = sorted((p["training.learning_rate"], p["training.batch_size"])
                    for p in (json.loads(t.params_json) for t in sweep.trial_list))
    assert points == [(0.1, 1), (0.1, 2), (0.2, 1), (0.2, 2)]  # each point once: none ran twice

    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--resume", "--address", daemon.client.address]) == 2
    shown = " ".join("".join(capsys.readouterr()).split())
    assert f"sweep {created.id} (grid-resume): all 4 points of its grid have run; nothing to resume" in shown, shown
    assert len(daemon.client.sweep(created.id).trial_list) == 4


def test_a_restarted_daemon_carries_the_sweep_on_without_losing_or_repeating_a_trial(serve, data, tmp_path):
    daemon = serve()
    spec = sweep_spec(data, trials=4, parallel=2, pruner="none")
    spec["base"]["training"]["epochs"] = 8  # 1.6 s a trial
    created = daemon.client.create_sweep(spec)
    wait_for(lambda: len(daemon.client.sweep(created.id).trial_list) >= 2, timeout=15, interval=0.05)
    daemon.stop()  # its trials' jobs go on; one may end while no daemon watches
    time.sleep(2.0)
    daemon = serve(tmp_path / "home")
    sweep = wait_sweep(daemon.client, created.id)
    assert sweep.state == "FINISHED"
    assert [t.number for t in sweep.trial_list] == [0, 1, 2, 3]
    assert len({t.job_id for t in sweep.trial_list}) == 4 and {t.state for t in sweep.trial_list} == {"COMPLETE"}
    assert len(daemon.client.list()) == 4
    daemon.stop()


def test_the_cli_runs_a_sweep_file_whose_base_is_a_job_file_and_shows_and_plots_it(daemon, data, tmp_path, capsys,
                                                                                    monkeypatch):
    import yaml

    from runner.cli.app import main

    monkeypatch.setenv("NO_COLOR", "1")
    base = fake_job(data, "tuned", epochs=2)
    (tmp_path / "jobs").mkdir()
    base["dataset"]["path"] = os.path.relpath(data, tmp_path / "jobs")  # relative to the job file's folder
    (tmp_path / "jobs" / "job.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump({
        "name": "cli-search", "base": "jobs/job.yaml", "sampler": "random", "seed": 1, "trials": 3, "parallel": 1,
        "pruner": "none", "space": {"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.4}}}))
    address = ["--address", daemon.client.address]
    assert main(["sweep", str(tmp_path / "sweep.yaml"), "--follow", *address]) == 0
    shown = capsys.readouterr().out
    assert "trial 2 " in shown and "COMPLETE" in shown and "learning_rate=" in shown
    assert main(["sweeps", "list", *address]) == 0
    assert "cli-search" in capsys.readouterr().out
    assert main(["sweeps", "status", "cli-search", "--json", *address]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"] == "FINISHED" and len(status["trial_list"]) == 3
    assert main(["sweeps", "plot", "cli-search", "-o", str(tmp_path / "history.png"), *address]) == 0
    capsys.readouterr()
    for name in ("history.png", "history-importance.png", "history-parallel.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    assert main(["sweeps", "cancel", "cli-search", *address]) == 2
    assert "is already FINISHED; nothing to cancel" in "".join(capsys.readouterr())
