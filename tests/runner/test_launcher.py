"""Jobs run under a supervisor: output to a log file, nothing escapes a cancel, the outcome is
recorded for a daemon that wasn't there, and a log is tailed on from where the last daemon was."""

import json
import os
import signal
import subprocess
import sys
import time

from runner.launch.local import Child, LogTailer, child_environment, read_exit_record, replay_lines
from runner.auth import hash_token
from runner.payload.supervisor import alive, descendants

SPAWNS_GRANDCHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""

# A job whose processes try to escape: a setsid grandchild, and a double-forked daemon in a new session.
ESCAPES = """
import os, subprocess, sys, time
subprocess.Popen(["setsid", sys.executable, "-c", "import time; time.sleep(600)"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(600)
    os._exit(0)
time.sleep(0.5)
print("ready", flush=True)
time.sleep(600)
"""


def start(tmp_path, code, grace=10.0, token="t0ken"):
    log = tmp_path / "out.log"
    return Child.start([sys.executable, "-c", code], tmp_path, child_environment({}), log, tmp_path, token, grace)


def wait_for_text(path, text, timeout=20):
    deadline = time.time() + timeout
    while text not in path.read_text() and time.time() < deadline:
        time.sleep(0.05)
    assert text in path.read_text(), path.read_text()


def processes_of(supervisor_pid):
    return descendants(supervisor_pid)


def test_output_goes_to_the_log_file_and_the_exit_is_recorded(tmp_path):
    child = start(tmp_path, "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)")
    status = child.wait(30)
    assert status.code == 3 and status.describe() == "exited with code 3" and not status.cancelled
    assert (tmp_path / "out.log").read_text().split() == ["out", "err"]
    assert read_exit_record(tmp_path).code == 3
    record = json.loads((tmp_path / "supervisor.json").read_text())
    assert record["supervisor_pid"] == child.pid and record["child_pid"] != child.pid


def test_cancel_leaves_no_process_even_ones_that_called_setsid_or_double_forked(tmp_path):
    child = start(tmp_path, ESCAPES, grace=2)
    wait_for_text(tmp_path / "out.log", "ready")
    before = processes_of(child.pid)
    assert len(before) >= 3  # the command, the setsid grandchild, the double-forked daemon
    sessions = {os.getsid(pid) for pid in before if os.path.exists(f"/proc/{pid}")}
    assert len(sessions) >= 2  # they really left the command's session
    started = time.monotonic()
    child.terminate()
    status = child.wait(10)
    assert status.cancelled and status.signal == signal.SIGTERM
    assert time.monotonic() - started < 2 + 1
    assert not [pid for pid in before if alive(pid)]


def test_sigkill_after_grace_when_sigterm_is_ignored(tmp_path):
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(600)")
    child = start(tmp_path, code, grace=1)
    wait_for_text(tmp_path / "out.log", "ready")
    started = time.monotonic()
    child.terminate()
    assert child.wait(10).signal == signal.SIGKILL
    assert 0.9 < time.monotonic() - started < 5
    assert "SIGKILL" in (tmp_path / "out.log").read_text()  # the supervisor says what it did


def test_what_a_finished_command_leaves_behind_is_killed(tmp_path):
    code = "import subprocess, sys; subprocess.Popen(['setsid', sys.executable, '-c', 'import time; time.sleep(600)'])"
    child = start(tmp_path, code)
    assert child.wait(30).code == 0
    assert not processes_of(child.pid)


def test_a_second_daemon_attaches_to_a_running_job_by_pid_start_time_and_token(tmp_path):
    child = start(tmp_path, SPAWNS_GRANDCHILD, token="secret-1")
    wait_for_text(tmp_path / "out.log", "ready")
    mine = hash_token("secret-1")  # the store keeps the hash of the token the job got
    assert Child.attach(child.pid, child.start_ticks, tmp_path, hash_token("secret-2")) is None  # another job's
    assert Child.attach(child.pid, child.start_ticks + 1, tmp_path, mine) is None  # a reused pid
    adopted = Child.attach(child.pid, child.start_ticks, tmp_path, mine)
    assert adopted is not None and adopted.popen is None and adopted.alive()
    assert adopted.wait(timeout=0.3) is None  # still running
    adopted.terminate()
    status = adopted.wait(15)  # not our child: the outcome comes from the exit record
    assert status.cancelled and status.signal == signal.SIGTERM
    child.popen.wait(5)
    assert Child.attach(child.pid, child.start_ticks, tmp_path, mine) is None


def test_a_command_that_cannot_start_fails_with_a_message(tmp_path):
    child = Child.start([str(tmp_path / "no-such-program")], tmp_path, child_environment({}), tmp_path / "out.log",
                        tmp_path, "t")
    assert child.wait(30).code == 127
    assert "could not start" in (tmp_path / "out.log").read_text()


def test_the_supervisor_token_stays_out_of_the_command_environment(tmp_path):
    child = start(tmp_path, "import os; print(sorted(k for k in os.environ if 'SUPERVISOR' in k))", token="abc")
    child.wait(30)
    assert (tmp_path / "out.log").read_text().strip() == "[]"


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


def collect(got):
    return lambda lines, offset: got.extend(lines)


def test_tailer_splits_lines_and_carries_partials(tmp_path):
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    got = []
    tailer = LogTailer(log, collect(got), interval=0.01)
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


def test_a_tailer_resumed_at_the_stored_offset_hands_over_every_line_once(tmp_path):
    """Chunks cut anywhere (mid-line, mid-\\r\\n, mid-character); a daemon stopped after any chunk;
    the next one resumes at the offset stored with the lines: the lines are those of one reading."""
    text = "epoch 1 ✓\nbar 10%\rbar 50%\rbar 100%\r\nloss 0.5\n\nµ done\rlast".encode()
    log = tmp_path / "out.log"
    log.write_bytes(text)
    whole = []
    LogTailer(log, collect(whole)).drain(final=True)
    for cut in range(1, len(text)):
        for chunk in (1, 3, 7):
            got, stored = [], []

            def sink(lines, offset):
                got.extend(lines)
                stored.append(offset)

            first = LogTailer(log, sink, read_size=chunk)
            with open(log, "rb") as f:  # the first daemon saw only `cut` bytes
                partial = tmp_path / "partial.log"
                partial.write_bytes(f.read(cut))
            first.path = partial
            first.drain()
            offset = stored[-1] if stored else 0
            replayed = list(replay_lines(log, offset))
            assert replayed == got  # a parser rebuilt from the replay is where the first one was
            LogTailer(log, sink, read_size=chunk, offset=offset).drain(final=True)
            assert got == whole, (cut, chunk)


def test_process_start_ticks_tell_a_pid_reuse_apart(tmp_path):
    from runner.launch.local import process_start_ticks

    me = process_start_ticks(os.getpid())
    assert me is not None and me == process_start_ticks(os.getpid())
    child = start(tmp_path, "pass")
    started = process_start_ticks(child.pid)
    child.wait(30)
    assert process_start_ticks(child.pid) in (None, started)  # gone (or a zombie of the same process)
    assert process_start_ticks(2**22 + 12345) is None


def test_a_failing_sink_does_not_stop_the_tail(tmp_path):
    log = tmp_path / "out.log"
    log.write_text("bad\n")
    got = []

    def sink(lines, offset):
        if any(line.text == "bad" for line in lines):
            raise ValueError("parser blew up")
        got.extend(line.text for line in lines)

    tailer = LogTailer(log, sink, interval=0.01)
    tailer.drain()
    with open(log, "a") as f:
        f.write("good\n")
    tailer.drain(final=True)
    assert got == ["good"]


def test_the_daemon_and_the_supervisor_read_proc_alike():
    """The supervisor runs by path with the standard library only, so it keeps its own /proc
    reading; the daemon's must give the same answers (pid reuse is told apart by start time)."""
    from runner.launch import procs
    from runner.payload import supervisor

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        zombie = subprocess.Popen(["true"])
        zombie_deadline = time.monotonic() + 5
        while procs.alive(zombie.pid) and time.monotonic() < zombie_deadline:
            time.sleep(0.02)
        for pid in (os.getpid(), sleeper.pid, zombie.pid, 2**22 + 1):
            assert procs.start_ticks(pid) == supervisor.start_ticks(pid)
            assert procs.alive(pid) == supervisor.alive(pid)
        assert procs.alive(sleeper.pid) and not procs.alive(zombie.pid) and procs.start_ticks(2**22 + 1) is None
        zombie.wait()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert procs.SUPERVISOR.is_file() and procs.NODE_AGENT.is_file()


STARTER = """
import os, subprocess, sys, time
env = dict(os.environ, **({"VISIONYARD_SUPERVISOR_BOUND": "1"} if sys.argv[3] == "bound" else {}))
supervisor = subprocess.Popen([sys.executable, "-I", "-S", sys.argv[1], sys.argv[2], "2", "--", sys.executable, "-c",
                               "import time; print('ready', flush=True); time.sleep(600)"],
                              env=env, stdout=open(os.path.join(sys.argv[2], "out.log"), "w"), stderr=subprocess.STDOUT)
print(supervisor.pid, flush=True)
time.sleep(600)
"""


def started_under_a_parent(tmp_path, bound: bool) -> tuple[subprocess.Popen, int]:
    """A process (Ray's job supervisor, say) that starts the job's supervisor and stays its parent."""
    from runner.launch.procs import SUPERVISOR

    parent = subprocess.Popen([sys.executable, "-c", STARTER, str(SUPERVISOR), str(tmp_path),
                               "bound" if bound else "free"], stdout=subprocess.PIPE, text=True)
    supervisor_pid = int(parent.stdout.readline())
    wait_for_text(tmp_path / "out.log", "ready")
    return parent, supervisor_pid


def test_a_bound_supervisor_stops_its_job_when_its_parent_is_gone(tmp_path):
    parent, supervisor_pid = started_under_a_parent(tmp_path, bound=True)
    job = processes_of(supervisor_pid)
    assert job
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while (alive(supervisor_pid) or any(alive(pid) for pid in job)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(supervisor_pid) and not any(alive(pid) for pid in job), (tmp_path / "out.log").read_text()
    record = read_exit_record(tmp_path)  # not a cancel: the job was lost with its parent
    assert not record.cancelled and not record.known and record.signal == signal.SIGTERM
    assert record.describe().startswith("was lost: Ray ended the process that ran it")
    assert "is gone" in (tmp_path / "out.log").read_text()


def test_a_supervisor_outlives_its_parent_unless_bound(tmp_path):
    """A local daemon's jobs outlive the daemon: its supervisors are not bound."""
    parent, supervisor_pid = started_under_a_parent(tmp_path, bound=False)
    try:
        parent.kill()
        parent.wait()
        time.sleep(1.5)  # three of the supervisor's polls
        assert alive(supervisor_pid) and processes_of(supervisor_pid)
    finally:
        os.kill(supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.1)


def test_sighup_to_a_bound_supervisor_stops_its_job_as_lost_and_an_unbound_one_ignores_it(tmp_path):
    bound_dir, free_dir = tmp_path / "bound", tmp_path / "free"
    bound_dir.mkdir(), free_dir.mkdir()
    parents = [started_under_a_parent(bound_dir, bound=True), started_under_a_parent(free_dir, bound=False)]
    try:
        for _, supervisor_pid in parents:
            os.kill(supervisor_pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while read_exit_record(bound_dir) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        record = read_exit_record(bound_dir)
        assert record is not None and not record.cancelled and record.describe().startswith("was lost")
        assert alive(parents[1][1]) and read_exit_record(free_dir) is None  # the local daemon's jobs go on
    finally:
        for parent, supervisor_pid in parents:
            if alive(supervisor_pid):
                os.kill(supervisor_pid, signal.SIGTERM)
            parent.kill()
            parent.wait()


def test_a_tailer_looks_less_often_while_the_log_is_quiet_and_at_once_again_when_it_grows(tmp_path):
    """A quiet training process is not woken by ten reads a second; a line written after a quiet spell still
    arrives within the idle interval."""
    log = tmp_path / "out.log"
    log.write_bytes(b"")
    got, reads = [], []
    tailer = LogTailer(log, collect(got), interval=0.01, idle_interval=0.2)
    drain = tailer.drain
    tailer.drain = lambda final=False: (reads.append(time.monotonic()), drain(final))[1]
    tailer.start()
    try:
        time.sleep(1.0)
        assert len(reads) < 15  # 0.01 s every time would be ~100
        written = time.monotonic()
        with open(log, "ab") as f:
            f.write(b"late line\n")
        deadline = written + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [line.text for line in got] == ["late line"]
        assert time.monotonic() - written < 1.0
    finally:
        tailer.stop()


def test_a_wait_wakes_when_the_supervisor_exits_not_at_its_next_look(tmp_path, monkeypatch):
    """Waiting sleeps on the process itself (a pidfd), so an exit is seen at once, not at the waiter's next look
    (made 60 s here); an adopted supervisor, not the daemon's child, is waited for the same way."""
    from runner.launch import local

    monkeypatch.setattr(local, "WAIT_POLL_SECONDS", 60.0)
    child = start(tmp_path, "import time; time.sleep(0.5)", token="tok")
    adopted = Child.attach(child.pid, child.start_ticks, tmp_path, hash_token("tok"))
    begun = time.monotonic()
    assert adopted.wait(30).code == 0
    assert time.monotonic() - begun < 10
    child.popen.wait(5)
    again = start(tmp_path, "import time; time.sleep(0.5)")
    begun = time.monotonic()
    assert again.wait().code == 0
    assert time.monotonic() - begun < 10
