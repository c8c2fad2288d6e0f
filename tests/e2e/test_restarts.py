"""Jobs outlive the daemon: kill -9 it mid-training, start it again, and nothing is lost or doubled.

Real daemons, real supervisors, real children, real signals. A daemon killed with SIGKILL gets no
chance to clean up; its jobs' supervisors live on in their own sessions, and the next daemon on
the same home adopts them (or harvests how they ended while it was down).

No step waits on the clock: a job outlasts what a test checks because the test holds it (a custom
repo's trainer waits at a gate file before each epoch; a timm child is kept stopped with SIGSTOP
but while the test lets it run until a condition), and whatever is to happen while no daemon runs
is waited for as a condition (a line in the job's log).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from protos import visionyard_pb2 as pb
from runner.launch.jobdir import LOG
from runner.payload.supervisor import alive, descendants
from tests.fixtures import make_imagefolder
from tests.helpers import discard_daemon, job_spec, kill_daemon, pid_of, start_daemon, states, wait_for
from tests.repo_fixtures import make_git_repo, toy_repo, toy_spec

pytestmark = pytest.mark.e2e

#: A real timm model small enough that an epoch on the tiny dataset below takes well under a second
#: (resnet18's checkpoints alone are 130 MB): what is tested is the daemon's hold on the job.
MODEL = "test_resnet"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("data") / "colours", per_class=2, val_per_class=1)


def timm_job(data: Path, name: str, epochs: int) -> dict:
    return job_spec(data, name=name, model=MODEL, training={"epochs": epochs, "batch_size": 4, "device": "cpu"})


def metric_events(client, job_id) -> list[pb.JobEvent]:
    return [e for e in client.watch(job_id) if e.WhichOneof("kind") == "metrics"]


def mlflow_run(daemon, job_id: str):
    """The job's MLflow run once it is ended (runs are made and ended off the job's path)."""
    from mlflow.tracking import MlflowClient

    run_id = wait_for(lambda: daemon.client.get(job_id).mlflow_run_id, timeout=60)
    client = MlflowClient(f"sqlite:///{daemon.home / 'mlflow.db'}")
    return client, wait_for(lambda: (r := client.get_run(run_id)).info.status != "RUNNING" and r, timeout=60)


def supervisor_pid(daemon, job_id) -> int:
    return pid_of(daemon, job_id)  # the RUNNING event names the job's supervisor


class Held:
    """A job's processes (everything below its supervisor) stopped with SIGSTOP, but while
    `run_until` lets them go on: the job neither ends nor gets ahead of the test behind its back,
    however fast or slow the machine."""

    def __init__(self, supervisor: int):
        self.supervisor = supervisor
        self.pids = wait_for(lambda: descendants(supervisor), timeout=60)  # its command started
        self._send(signal.SIGSTOP)

    def run_until(self, condition, timeout: float = 240):
        """Let the job go on until `condition()` holds, then stop it again."""
        self._send(signal.SIGCONT)
        try:
            return wait_for(condition, timeout=timeout, interval=0.01)
        finally:
            self.pids = descendants(self.supervisor)
            self._send(signal.SIGSTOP)

    def release(self) -> None:
        self._send(signal.SIGCONT)

    def _send(self, sig: int) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def restart_after_the_job_ended(daemon, job_id, home, envs, release=lambda: None):
    """Kill the daemon while the job runs (held, so that it reports nothing before), let the job
    end unwatched (`release` lets a job waiting at its gate go on), start a new daemon."""
    wait_for(lambda: daemon.client.get(job_id).state == pb.RUNNING, timeout=240)
    pid = supervisor_pid(daemon, job_id)
    held = Held(pid)
    kill_daemon(daemon)
    release()
    held.release()
    wait_for(lambda: not alive(pid), timeout=240)
    return start_daemon(home, envs)


def reported_epochs(job_dir: Path) -> list[int]:
    """The epochs whose metrics an adapter child has reported, as its log says at once (the report
    itself is journaled and sent by the reporter's thread, which waits out a backoff while no
    daemon answers)."""
    return [int(n) for n in re.findall(r"visionyard\.reporter: step (\d+):", (job_dir / LOG).read_text())]


def last_status_message(daemon, job_id) -> str:
    return [e.status.message for e in daemon.client.watch(job_id) if e.WhichOneof("kind") == "status"][-1]


def test_a_timm_job_survives_three_kill_9s_of_the_daemon(tmp_path, shared_envs, timm_env, dataset):
    # Epochs to spare after the third restart: the child runs on a little past each condition before
    # it is stopped (the daemon hears of an epoch some 50 ms after it), at 60 ms an epoch when idle.
    home, epochs = tmp_path / "home", 12
    daemon = start_daemon(home, shared_envs)
    job = daemon.client.submit(timm_job(dataset, "survivor", epochs))
    job_dir, held = home / "jobs" / job.id, None
    try:
        wait_for(lambda: daemon.client.get(job.id).state == pb.RUNNING, timeout=240)
        held = Held(supervisor_pid(daemon, job.id))
        for kill_after_epoch in (1, 3, 5):
            held.run_until(lambda: daemon.client.get(job.id).epoch >= kill_after_epoch)
            kill_daemon(daemon)
            reported = max(reported_epochs(job_dir), default=0)
            # It trains on with no daemon: an epoch's metrics go to the journal and a failing send.
            held.run_until(lambda: max(reported_epochs(job_dir), default=0) > reported)
            assert alive(held.supervisor) and held.pids, "the job ended before the next daemon started"
            daemon = start_daemon(home, shared_envs)  # while the job is held: still running
            assert daemon.client.get(job.id).state == pb.RUNNING  # adopted, not failed
        held.release()
        final = daemon.client.wait(job.id)
        assert final.state == pb.SUCCEEDED, final.error
        steps = Counter(e.metrics.step for e in metric_events(daemon.client, job.id))
        assert steps == {step: 1 for step in range(1, epochs + 1)}  # every epoch's metrics, exactly once
        assert Path(final.best_checkpoint).is_file() and Path(final.last_checkpoint).is_file()
        assert states(daemon.client.watch(job.id)) == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]
        client, run = mlflow_run(daemon, job.id)
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val/accuracy")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))
    finally:
        if held is not None:
            held.release()
        daemon.stop()


def toy_job(data: Path, repo: str, epochs: int, **advanced) -> dict:
    return {"name": f"{repo}-job", "framework": "custom", "repo": repo, "model": "toy",
            "task": "image_classification", "dataset": {"path": str(data), "format": "imagefolder"},
            "training": {"epochs": epochs, "batch_size": 2, "device": "cpu"}, "advanced": advanced}


# The toy repo's trainer (`tests/repo_fixtures.TOY_TRAIN`: the same lines, metrics and files), except
# that it starts epoch E only once the file `<--hold-file>.E` exists: the test moves it on.
GATED_TRAIN = """
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--train", required=True)
p.add_argument("--out", required=True)
p.add_argument("--fail-at", type=int, default=0)
p.add_argument("--epoch-seconds", type=float, default=0.0)
p.add_argument("--hold-file", required=True)
a = p.parse_args()
classes = sorted(os.listdir(a.train))
print(f"toy trainer: {len(classes)} classes, {a.epochs} epochs", flush=True)
os.makedirs(a.out, exist_ok=True)
for e in range(1, a.epochs + 1):
    while not os.path.exists(f"{a.hold_file}.{e}"):
        time.sleep(0.02)
    for i in range(1, 4):
        print(f"epoch {e}/{a.epochs} step {i}/3 loss={1.0 / (e - 1 + i):.4f}", flush=True)
        time.sleep(0.02 + a.epoch_seconds / 3)
    if a.fail_at and e == a.fail_at:
        print("Traceback (most recent call last):\\nRuntimeError: toy trainer blew up", file=sys.stderr)
        sys.exit(3)
    print(f"validation: acc {50 + 10 * (e - 1):.1f}%", flush=True)
    with open(os.path.join(a.out, f"model_{e}.bin"), "w") as f:
        f.write(json.dumps({"epoch": e}))
"""


@pytest.fixture
def gated(tmp_path):
    """`gated(daemon, name)` adds a repo whose trainer waits before each epoch (`GATED_TRAIN`); its
    jobs' `hold_file` is `gated.gate`, and `gated.open(epoch)` lets that epoch start."""
    url, sha = make_git_repo(tmp_path / "gated", {"train.py": GATED_TRAIN})

    def add(daemon, name="toygated"):
        spec_file = tmp_path / f"{name}.yaml"
        spec_file.write_text(toy_spec(str(url), sha, name=name))
        daemon.client.add_repo(spec_file)
        return name
    add.gate = tmp_path / "gate"
    add.open = lambda epoch: Path(f"{add.gate}.{epoch}").touch()
    return add


def validation_line(epoch: int) -> str:
    return f"validation: acc {50 + 10 * (epoch - 1):.1f}%"


@pytest.fixture
def toy(tmp_path):
    url, sha = toy_repo(tmp_path / "toy")

    def add(daemon, name="toyslow"):
        spec_file = tmp_path / f"{name}.yaml"
        spec_file.write_text(toy_spec(str(url), sha, name=name))
        daemon.client.add_repo(spec_file)
        return name
    return add


def test_a_custom_repo_job_survives_three_kill_9s_with_every_line_parsed_once(tmp_path, shared_envs, gated):
    home, epochs = tmp_path / "home", 8
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    daemon = start_daemon(home, shared_envs)
    job = daemon.client.submit(toy_job(data, gated(daemon), epochs, hold_file=str(gated.gate)))
    log = home / "jobs" / job.id / LOG
    try:
        gated.open(1)
        for kill_after_epoch in (1, 3, 5):
            wait_for(lambda: daemon.client.get(job.id).epoch >= kill_after_epoch, timeout=120)
            kill_daemon(daemon)
            gated.open(kill_after_epoch + 1)  # a whole epoch logged while no daemon reads the log
            wait_for(lambda: validation_line(kill_after_epoch + 1) in log.read_text(), timeout=120)
            daemon = start_daemon(home, shared_envs)
            assert daemon.client.get(job.id).state == pb.RUNNING  # adopted: it waits at its next gate
            gated.open(kill_after_epoch + 2)
        gated.open(epochs)
        final = daemon.client.wait(job.id)
        assert final.state == pb.SUCCEEDED, final.error
        accuracy = [(e.metrics.step, round(e.metrics.values["val/accuracy"], 3))
                    for e in metric_events(daemon.client, job.id) if "val/accuracy" in e.metrics.values]
        assert accuracy == [(e, round(0.5 + 0.1 * (e - 1), 3)) for e in range(1, epochs + 1)]
        logs = [e.log.text for e in daemon.client.watch(job.id, include_logs=True) if e.WhichOneof("kind") == "log"]
        validation = [line for line in logs if line.startswith("validation: acc")]
        assert len(validation) == epochs and len(set(validation)) == epochs  # no line twice, none skipped
        steps = [line for line in logs if line.startswith("epoch ")]
        assert len(steps) == 3 * epochs and len(set(steps)) == 3 * epochs
        assert final.last_checkpoint.endswith(f"model_{epochs}.bin")
        _, run = mlflow_run(daemon, job.id)
        assert run.info.status == "FINISHED"
    finally:
        daemon.stop()


def test_a_job_that_finished_while_the_daemon_was_down_is_harvested(tmp_path, shared_envs, timm_env, dataset):
    home = tmp_path / "home"
    daemon = start_daemon(home, shared_envs)
    job = daemon.client.submit(timm_job(dataset, "harvest", 3))
    daemon = restart_after_the_job_ended(daemon, job.id, home, shared_envs)
    try:
        final = daemon.client.wait(job.id)
        assert final.state == pb.SUCCEEDED, final.error
        assert final.exit_code == 0
        steps = Counter(e.metrics.step for e in metric_events(daemon.client, job.id))
        assert steps == {1: 1, 2: 1, 3: 1}  # reported while nobody listened: applied from the journal
        assert Path(final.best_checkpoint).is_file()
        _, run = mlflow_run(daemon, job.id)
        assert run.info.status == "FINISHED"
    finally:
        daemon.stop()


def test_a_child_that_crashed_while_the_daemon_was_down_fails_with_its_exit_code(tmp_path, shared_envs, gated):
    home = tmp_path / "home"
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    daemon = start_daemon(home, shared_envs)
    job = daemon.client.submit(toy_job(data, gated(daemon, "toycrash"), 4, fail_at=2, hold_file=str(gated.gate)))
    daemon = restart_after_the_job_ended(daemon, job.id, home, shared_envs,
                                         release=lambda: (gated.open(1), gated.open(2)))  # both epochs unwatched
    try:
        final = daemon.client.wait(job.id)
        assert final.state == pb.FAILED and final.exit_code == 3 and final.cause == pb.CAUSE_TRAINING
        assert "exited with code 3" in final.error and "toy trainer blew up" in final.error
        accuracy = [e.metrics.step for e in metric_events(daemon.client, job.id) if "val/accuracy" in e.metrics.values]
        assert accuracy == [1]  # the epoch it finished, parsed from the log after the restart
        _, run = mlflow_run(daemon, job.id)
        assert run.info.status == "FAILED"
    finally:
        daemon.stop()


def test_stopping_the_daemon_leaves_jobs_running_unless_told_to_cancel_them(tmp_path, shared_envs, toy):
    home = tmp_path / "home"
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    daemon = start_daemon(home, shared_envs, cancel_jobs_on_stop=False)  # the default
    # It holds after its first epoch until a file nobody writes: it runs until it is stopped.
    job = daemon.client.submit(toy_job(data, toy(daemon), 2, hold_file=str(tmp_path / "never")))
    wait_for(lambda: daemon.client.get(job.id).state == pb.RUNNING, timeout=120)
    pid = supervisor_pid(daemon, job.id)
    assert daemon.stop() == 0
    assert alive(pid) and descendants(pid)  # a clean stop left it running

    daemon = start_daemon(home, shared_envs, ["--cancel-jobs-on-stop"])
    assert daemon.client.get(job.id).state == pb.RUNNING  # adopted after a clean stop too
    assert daemon.stop() == 0
    daemon = start_daemon(home, shared_envs, cancel_jobs_on_stop=False)
    try:
        final = daemon.client.get(job.id)
        assert final.state == pb.CANCELLED and "shut down" in last_status_message(daemon, job.id)
        assert final.cause == pb.CAUSE_CANCELLED
        assert not alive(pid)
    finally:
        daemon.stop()


def test_a_cancelled_job_leaves_no_process_even_setsid_and_double_forked_ones(tmp_path, shared_envs, toy):
    """A repo whose command starts a `setsid` grandchild and a double-forked daemon: cancel stops
    them all within the grace period and a second."""
    from tests.repo_fixtures import make_git_repo

    escaping = ("import os, subprocess, sys, time\n"
                "subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(600)'])\n"
                "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(600)\n"
                "    os._exit(0)\n"
                "print('epoch 1/9 step 1/3 loss=0.5', flush=True)\ntime.sleep(600)\n")
    url, sha = make_git_repo(tmp_path / "escaper", {"train.py": escaping})
    spec_file = tmp_path / "escaper.yaml"
    spec_file.write_text(toy_spec(str(url), sha, name="escaper"))
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    daemon = start_daemon(tmp_path / "home", shared_envs)
    try:
        daemon.client.add_repo(spec_file)
        job = daemon.client.submit(toy_job(data, "escaper", 9))
        wait_for(lambda: daemon.client.get(job.id).epoch >= 1, timeout=120)
        pid = supervisor_pid(daemon, job.id)
        processes = wait_for(lambda: len(d := descendants(pid)) >= 3 and d, timeout=30)
        started = time.monotonic()
        daemon.client.cancel(job.id)
        assert daemon.client.wait(job.id).state == pb.CANCELLED
        wait_for(lambda: not [p for p in processes if alive(p)], timeout=15)
        assert time.monotonic() - started < 10 + 1  # the default grace period, plus a second
    finally:
        discard_daemon(daemon)


FILLS_THE_DISK = """
import os, sys
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
print("epoch 1/2 step 1/3 loss=0.5", flush=True)
with open(os.path.join(out, "filler.bin"), "wb") as f:
    while True:
        f.write(b"\\0" * (1 << 20))
        f.flush()
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs (root only: mounting needs it)."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_job_naming_the_disk_and_never_runs_two_jobs_under_a_limit_of_one(
        tmp_path, shared_envs, toy, small_disk):
    import grpc

    from runner.client import ClientError
    from tests.repo_fixtures import make_git_repo

    url, sha = make_git_repo(tmp_path / "filler", {"train.py": FILLS_THE_DISK})
    spec_file = tmp_path / "filler.yaml"
    spec_file.write_text(toy_spec(str(url), sha, name="filler"))
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    home = small_disk / "home"
    daemon = start_daemon(home, shared_envs, ["--max-concurrent-jobs", "1"])
    try:
        daemon.client.add_repo(spec_file)
        filler = daemon.client.submit(toy_job(data, "filler", 2))
        after = daemon.client.submit(toy_job(data, toy(daemon), 2))
        full = Path(wait_for(lambda: list(home.rglob("filler.bin")), timeout=120)[0])
        wait_for(lambda: os.statvfs(small_disk).f_bavail == 0, timeout=60)
        with pytest.raises(ClientError) as info:  # nothing new is stored on a full disk
            daemon.client.submit(toy_job(data, "filler", 2))
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and str(home) in str(info.value)
        # The filler's command failed on the full disk and its supervisor is gone: the daemon can't
        # store the job's end (retried at 0.5, 1, 2 s, ...) and keeps its slot meanwhile.
        supervisor = pid_of(daemon, filler.id)
        wait_for(lambda: not alive(supervisor), timeout=60)
        deadline = time.monotonic() + 2  # the disk stays full: the limit holds all along
        while time.monotonic() < deadline:
            active = [j for j in daemon.client.list() if j.state in (pb.PREPARING, pb.RUNNING)]
            assert len(active) <= 1
            assert daemon.client.get(after.id).state == pb.QUEUED or daemon.client.get(filler.id).state == pb.FAILED
            time.sleep(0.1)
        full.unlink()  # the user frees space
        final = daemon.client.wait(filler.id)
        assert final.state == pb.FAILED
        assert f"the disk holding {home / 'jobs' / filler.id} is full" in final.error
        assert "No space left on device" in final.error and final.cause == pb.CAUSE_DISK_FULL
        assert [j.id for j in daemon.client.list(causes=[pb.CAUSE_DISK_FULL])] == [filler.id]
        assert daemon.client.wait(after.id).state == pb.SUCCEEDED
        first, second = daemon.client.get(filler.id), daemon.client.get(after.id)
        assert second.started_at >= first.finished_at  # the second started only once the first was final
    finally:
        discard_daemon(daemon)
