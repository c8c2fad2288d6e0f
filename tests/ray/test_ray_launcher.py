"""The Ray launcher against a real local head: submit, logs, exit codes, stop, re-attach, loss."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time

import pytest

from runner.launch.ray.api import RayJobsClient
from runner.launch.ray.child import RayChild

pytestmark = pytest.mark.slow


def script(text: str) -> list[str]:
    return [sys.executable, "-c", text]


def ray_status_becomes(client, submission_id: str, status: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while (seen := client.job(submission_id).status) != status and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen == status


def start(client, tmp_path, cmd, **kwargs) -> RayChild:
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    log_path = job_dir / "output.log"
    log_path.write_text("[visionyard] prepared\n")
    return RayChild.start(client, f"vy-test-{secrets.token_hex(4)}", cmd, job_dir, {"GREETING": "hi"},
                          log_path, job_dir, token="t0ken", grace=2, **kwargs)


def test_a_command_runs_on_the_cluster_with_its_env_and_its_exit_code(ray_client, tmp_path):
    child = start(ray_client, tmp_path, script(
        "import os, sys\nfor i in range(3): print('line', i, os.environ['GREETING'], flush=True)\nsys.exit(3)"))
    status = child.wait(timeout=180)
    assert status is not None and status.code == 3 and not status.ok
    log_text = (tmp_path / "job" / "output.log").read_text()
    assert log_text.startswith("[visionyard] prepared\n")
    assert [line for line in log_text.splitlines() if line.startswith("line ")] == [f"line {i} hi" for i in range(3)]
    # the same submission id again: Ray refuses it, and the job is not run twice
    assert not ray_client.submit(child.submission_id, "true", {}, {})
    # the supervisor's exit record (a shared job dir) told first; Ray's own status follows
    assert ray_status_becomes(ray_client, child.submission_id, "FAILED")


def test_stop_ends_everything_the_job_started(ray_client, tmp_path):
    marker = f"vy-ray-stop-{secrets.token_hex(4)}"
    child = start(ray_client, tmp_path, script(
        "import subprocess, time\n"
        f"subprocess.Popen(['bash', '-c', 'exec -a {marker}-child sleep 600'])\n"
        f"subprocess.Popen(['bash', '-c', 'exec -a {marker}-setsid sleep 600'], start_new_session=True)\n"
        "print('started', flush=True)\ntime.sleep(600)"))
    deadline = time.monotonic() + 180
    while "started" not in (tmp_path / "job" / "output.log").read_text():
        assert time.monotonic() < deadline
        assert child.wait(timeout=0.5) is None
    running = subprocess.run(["pgrep", "-f", f"^{marker}-"], capture_output=True, text=True).stdout.split()
    assert len(running) == 2
    child.terminate()
    status = child.wait(timeout=60)
    assert status is not None and status.cancelled
    assert ray_client.job(child.submission_id).status == "STOPPED"
    left = subprocess.run(["pgrep", "-f", f"^{marker}-"], capture_output=True, text=True).stdout.split()
    assert left == []  # the setsid'ed one too: the supervisor stops every descendant


def test_a_restarted_daemon_follows_the_job_and_its_log_on(ray_client, tmp_path):
    child = start(ray_client, tmp_path, script(
        "import time\nfor i in range(12): print('tick', i, flush=True); time.sleep(0.25)"))
    log_path = tmp_path / "job" / "output.log"
    deadline = time.monotonic() + 180
    while "tick 2" not in log_path.read_text():
        assert time.monotonic() < deadline
        assert child.wait(timeout=0.3) is None
    child.pump.stop()  # the daemon goes; the job goes on
    again = RayChild.attach(ray_client, child.submission_id, tmp_path / "job", log_path, child.pump.log_base)
    status = again.wait(timeout=120)
    assert status is not None and status.ok
    ticks = [line for line in log_path.read_text().splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(12)]  # each line once, none lost


def test_a_job_the_head_does_not_know_or_cannot_be_asked_about_is_lost_not_running(ray_client, tmp_path):
    lost = RayChild.attach(ray_client, "vy-never-submitted", tmp_path, tmp_path / "out.log", 0)
    status = lost.wait(timeout=30)
    assert not status.known and "no longer knows" in status.describe()
    gone = RayChild.attach(RayJobsClient("http://127.0.0.1:9", timeout=1), "x", tmp_path, tmp_path / "o.log", 0,
                           lost_after=2)
    status = gone.wait(timeout=30)
    assert not status.known and "can't be reached" in status.describe()


def test_the_clusters_resources(ray_client):
    resources = ray_client.resources()
    assert resources.total["CPU"] == 2
    assert resources.free("GPU") == 0
