"""Children run in their own process group, log to a file, and leave nothing behind."""

import os
import signal
import subprocess
import sys
import time

from runner.launcher import Child, LogTailer, child_environment, group_alive

SPAWNS_GRANDCHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


def test_output_goes_to_the_log_file(tmp_path):
    log = tmp_path / "out.log"
    child = Child([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                  tmp_path, child_environment({}), log)
    status = child.wait(30)
    assert status.code == 3 and status.describe() == "exited with code 3"
    assert log.read_text().split() == ["out", "err"]


def test_terminate_kills_the_whole_group(tmp_path):
    log = tmp_path / "out.log"
    child = Child([sys.executable, "-c", SPAWNS_GRANDCHILD], tmp_path, child_environment({}), log)
    deadline = time.time() + 20
    while "ready" not in log.read_text() and time.time() < deadline:
        time.sleep(0.05)
    assert os.getpgid(child.pid) == child.pid  # its own session and group
    child.terminate(grace=2)
    status = child.wait(10)
    assert status.signal == signal.SIGTERM and "SIGTERM" in status.describe()
    deadline = time.time() + 10  # the grandchild got SIGTERM too; on a busy box it takes a moment to exit
    while group_alive(child.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not group_alive(child.pid)


def test_sigkill_after_grace_when_sigterm_is_ignored(tmp_path):
    log = tmp_path / "out.log"
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(600)"
    child = Child([sys.executable, "-c", code], tmp_path, child_environment({}), log)
    while "ready" not in log.read_text():
        time.sleep(0.05)
    started = time.monotonic()
    child.terminate(grace=1)
    assert child.wait(10).signal == signal.SIGKILL
    assert 0.9 < time.monotonic() - started < 5


def test_distributed_variables_are_removed(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    env = child_environment({"X": "1"})
    assert "RANK" not in env and "WORLD_SIZE" not in env
    assert env["X"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_children_write_bytecode_into_the_shared_cache(tmp_path, monkeypatch):
    """A daemon run with PYTHONDONTWRITEBYTECODE still lets its children fill the home's cache."""
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert child_environment({})["PYTHONDONTWRITEBYTECODE"] == "1"  # no cache named: left as it is
    cache = tmp_path / "pycache"
    (tmp_path / "mod_in_cache.py").write_text("VALUE = 1\n")
    env = child_environment({"PYTHONPYCACHEPREFIX": str(cache), "PYTHONPATH": str(tmp_path)})
    assert "PYTHONDONTWRITEBYTECODE" not in env
    subprocess.run([sys.executable, "-c", "import mod_in_cache"], env=env, check=True, cwd=tmp_path)
    assert list(cache.rglob("mod_in_cache*.pyc"))


def test_tailer_splits_lines_and_carries_partials(tmp_path):
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    got = []
    tailer = LogTailer(log, got.extend, interval=0.01)
    with open(log, "ab") as f:
        f.write(b"one\ntw")
        f.flush()
        tailer.drain()
        f.write(b"o\rthree\r\nfour")
        f.flush()
        tailer.drain()
    tailer.drain(final=True)
    assert [(line.text, line.final) for line in got] == [("one", True), ("two", False), ("three", True),
                                                         ("four", True)]


def test_process_start_ticks_tell_a_pid_reuse_apart(tmp_path):
    from runner.launcher import process_start_ticks

    me = process_start_ticks(os.getpid())
    assert me is not None and me == process_start_ticks(os.getpid())
    child = Child([sys.executable, "-c", "pass"], tmp_path, child_environment({}), tmp_path / "x.log")
    started = process_start_ticks(child.pid)
    child.wait(30)
    assert process_start_ticks(child.pid) in (None, started)  # gone (or a zombie of the same process)
    assert process_start_ticks(2**22 + 12345) is None


def test_a_failing_sink_does_not_stop_the_tail(tmp_path):
    log = tmp_path / "out.log"
    log.write_text("bad\n")
    got = []

    def sink(lines):
        if any(line.text == "bad" for line in lines):
            raise ValueError("parser blew up")
        got.extend(line.text for line in lines)

    tailer = LogTailer(log, sink, interval=0.01)
    tailer.drain()
    with open(log, "a") as f:
        f.write("good\n")
    tailer.drain(final=True)
    assert got == ["good"]
