"""EnvManager against the real uv and the real registry, with tiny requirements.

uv's cache is shared between tests (and with the machine), so each build takes well under a
second. Where a test needs a build to take a while (to overlap two builders, or to cancel one),
it uses a tiny ``uv`` wrapper script that sleeps before handing over to the real uv.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import filelock
import pytest

from envs import EnvBuildCancelled, EnvBuildError, EnvManager, EnvSpec
from envs.manager import MARKER
from envs.uvcli import find_uv, resolve_python_version

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REAL_UV = find_uv()
# tqdm brings a console script; python-dateutil depends on six, which the override pins.
TINY = EnvSpec(
    "tiny",
    requirements=("tqdm==4.67.1", "python-dateutil==2.9.0.post0"),
    overrides=("six==1.16.0",),
)
BAD_REQUIREMENT = "this-package-does-not-exist-visionyard==1.0"


def slow_uv(tmp_path: Path, seconds: float) -> str:
    """A ``uv`` that sleeps before ``uv pip install``, recording its pid (= process group)."""
    script = tmp_path / "slow-uv"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = pip ] && [ "$2" = install ]; then\n'
        f'  echo $$ > "{tmp_path}/slow-uv.pid"\n'
        f'  echo "slow-uv: sleeping {seconds}"\n'
        f"  sleep {seconds}\n"
        "fi\n"
        f'exec "{REAL_UV}" "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def builds_in(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.startswith("$ ") and " venv " in line)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name != ".locks")


def live_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (init may reap those lazily)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def run_in(env_python: Path, *args: str) -> str:
    return subprocess.run(
        [str(env_python), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_build_then_reuse(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    log = io.StringIO()
    env = EnvManager(root).ensure(TINY, log=log)
    assert not env.reused and env.build_seconds > 0
    assert env.path == root / f"tiny-{env.key}" and env.name == env.path.name
    assert env.python == env.path / "bin" / "python"
    assert builds_in(log.getvalue()) == 1 and "+ tqdm==4.67.1" in log.getvalue()
    marker = json.loads((env.path / MARKER).read_text())
    assert marker["key"] == env.key and marker["spec"]["name"] == "tiny"
    assert "six==1.16.0" in marker["installed"]
    assert leftovers(root) == [env.name]

    # Cache hit: a new manager (as in a new job), same process.
    manager = EnvManager(root)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        again = manager.ensure(TINY)
        timings.append(time.perf_counter() - started)
    assert again.reused and again.path == env.path and again.build_seconds == 0.0
    assert max(timings) < 0.3, timings
    touched = json.loads((env.path / MARKER).read_text())
    assert touched["last_used_at"] > marker["last_used_at"]
    assert touched["created_at"] == marker["created_at"]


def test_renamed_env_works_and_overrides_apply(tmp_path: Path) -> None:
    """Built in .tmp-*, renamed into place: prefix and console scripts follow the rename."""
    env = EnvManager(tmp_path / "envs").ensure(TINY)
    assert run_in(env.python, "-c", "import sys; print(sys.prefix)") == str(env.path)
    script = subprocess.run(
        [str(env.path / "bin" / "tqdm"), "--version"], capture_output=True, text=True, check=True
    )
    assert script.stdout.strip() == "4.67.1"
    # The override beat python-dateutil's own `six>=1.5` (which alone resolves to a newer six).
    assert run_in(env.python, "-c", "import six; print(six.__version__)") == "1.16.0"

    # And once more after moving the whole env somewhere else.
    moved = tmp_path / "elsewhere" / "moved-env"
    moved.parent.mkdir()
    os.rename(env.path, moved)
    assert run_in(moved / "bin" / "python", "-c", "import sys; print(sys.prefix)") == str(moved)
    out = subprocess.run([str(moved / "bin" / "tqdm"), "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "4.67.1"


def test_two_threads_build_once(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    manager = EnvManager(root, uv=slow_uv(tmp_path, 1.0))
    logs = [io.StringIO(), io.StringIO()]
    results: list = [None, None]

    def work(i: int) -> None:
        results[i] = manager.ensure(EnvSpec("thr", requirements=("six==1.16.0",)), log=logs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(r is not None for r in results)
    assert sorted(r.reused for r in results) == [False, True]
    assert results[0].path == results[1].path
    text = logs[0].getvalue() + logs[1].getvalue()
    assert builds_in(text) == 1
    assert "waiting for another build" in text
    assert leftovers(root) == [results[0].name]


def test_two_processes_build_once(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    uv = slow_uv(tmp_path, 1.0)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "ensure_child.py"),
                str(root),
                uv,
                str(go),
                str(tmp_path / f"out{i}"),
                "six==1.16.0",
            ],
            env=env,
        )
        for i in range(2)
    ]
    time.sleep(0.5)  # both import and start their managers, then race
    go.touch()
    assert [c.wait(timeout=60) for c in children] == [0, 0]
    outs = [json.loads((tmp_path / f"out{i}").read_text()) for i in range(2)]
    assert outs[0]["name"] == outs[1]["name"]
    assert sorted(o["reused"] for o in outs) == [False, True]
    logs = "".join((tmp_path / f"out{i}.log").read_text() for i in range(2))
    assert builds_in(logs) == 1
    assert leftovers(root) == [outs[0]["name"]]


def test_failing_requirement_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    manager = EnvManager(root)
    log = io.StringIO()
    spec = EnvSpec("bad", requirements=("six==1.16.0", BAD_REQUIREMENT))
    with pytest.raises(EnvBuildError) as err:
        manager.ensure(spec, log=log)
    message = str(err.value)
    assert "uv pip install" in message and "exit code" in message
    assert f"Failing requirement(s): {BAD_REQUIREMENT}" in message
    assert "not found in the package registry" in message  # uv's own words, from its tail
    assert err.value.failed_requirements == [BAD_REQUIREMENT]
    assert not isinstance(err.value, EnvBuildCancelled)
    assert "not found in the package registry" in log.getvalue()
    assert leftovers(root) == [] and manager.list() == []


def test_cancel_kills_uv_and_removes_temp_dir(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    manager = EnvManager(root, uv=slow_uv(tmp_path, 30))
    log = io.StringIO()
    cancel = threading.Event()

    def cancel_when_sleeping() -> None:
        while "slow-uv: sleeping" not in log.getvalue():
            time.sleep(0.01)
        cancel.set()

    threading.Thread(target=cancel_when_sleeping, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(EnvBuildCancelled, match="uv pip"):
        manager.ensure(EnvSpec("cancel", requirements=("six==1.16.0",)), log=log, cancel=cancel)
    assert time.monotonic() - started < 10  # SIGTERM ends it at once, not the 30 s sleep
    pgid = int((tmp_path / "slow-uv.pid").read_text())
    assert live_members(pgid) == []  # the whole group (the wrapper and its sleep) is gone
    assert leftovers(root) == []


def test_cancel_real_uv_at_once(tmp_path: Path) -> None:
    """Cancel as soon as the first uv command is announced: no env, no temp dir."""
    cancel = threading.Event()

    class CancellingLog(io.StringIO):
        def write(self, text: str) -> int:
            if text.startswith("$ "):
                cancel.set()
            return super().write(text)

    root = tmp_path / "envs"
    with pytest.raises(EnvBuildCancelled):
        EnvManager(root).ensure(TINY, log=CancellingLog(), cancel=cancel)
    assert leftovers(root) == []


def test_requirements_text_is_installed(tmp_path: Path) -> None:
    """A custom repo's requirements file content, comments and all, installs with the spec."""
    spec = EnvSpec("repo", requirements_text="# from requirements.txt\nidna==3.10\n")
    env = EnvManager(tmp_path / "envs").ensure(spec)
    assert run_in(env.python, "-c", "import idna; print(idna.__version__)") == "3.10"
    bare = EnvManager(tmp_path / "envs").ensure(EnvSpec("bare"))
    assert run_in(bare.python, "-c", "print('ok')") == "ok" and bare.key != env.key


def test_cancel_while_waiting_for_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    manager = EnvManager(root)
    spec = EnvSpec("wait", requirements=("six==1.16.0",))
    key = spec.key(resolve_python_version(manager.uv, spec.python, manager.root))
    holder = filelock.FileLock(str(root / ".locks" / f"wait-{key}.lock"))
    holder.acquire()
    try:
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(EnvBuildCancelled, match="waiting"):
            manager.ensure(spec, cancel=cancel)
        assert time.monotonic() - started < 2
    finally:
        holder.release()
    assert leftovers(root) == []


def test_list_and_remove(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    manager = EnvManager(root)
    a1 = manager.ensure(EnvSpec("alpha", requirements=("six==1.16.0",)))
    a2 = manager.ensure(EnvSpec("alpha", requirements=("idna==3.10",)))
    b = manager.ensure(EnvSpec("beta", requirements=("six==1.16.0",)))
    records = manager.list()
    assert [r.name for r in records] == sorted([a1.name, a2.name, b.name])
    by_name = {r.name: r for r in records}
    assert by_name[a1.name].spec_name == "alpha" and by_name[a1.name].key == a1.key
    assert by_name[a1.name].requirements == ("six==1.16.0",)
    assert "six==1.16.0" in by_name[a1.name].installed
    for record in records:
        assert record.size_bytes > 0 and 0 < record.unique_bytes
        assert record.created_at <= record.last_used_at <= time.time()
        assert time.time() - record.created_at < 120  # epoch seconds, as EnvInfo carries them
        assert record.python_version.startswith("3.11.")

    assert manager.remove(a1.name) == [a1.name]
    assert sorted(r.name for r in manager.list()) == sorted([a2.name, b.name])
    assert manager.remove("alpha") == [a2.name]
    assert manager.remove("alpha") == [] and manager.remove("nope") == []
    assert [r.name for r in manager.list()] == [b.name]
    assert leftovers(root) == [b.name]
    assert manager.ensure(EnvSpec("alpha", requirements=("six==1.16.0",))).reused is False


def test_gc_removes_only_stale_temp_dirs(tmp_path: Path) -> None:
    root = tmp_path / "envs"
    root.mkdir()
    stale = root / ".tmp-gone-0123456789ab-k3j2h1x_"
    (stale / "lib").mkdir(parents=True)
    (stale / "lib" / "junk.py").write_text("x = 1\n")
    busy = root / ".tmp-busy-abcdefabcdef-q1w2e3r4"
    busy.mkdir()
    foreign = root / ".tmp-not-ours"
    foreign.mkdir()
    unrelated = root / "notes"
    unrelated.mkdir()
    (root / ".locks").mkdir()
    holder = filelock.FileLock(str(root / ".locks" / "busy-abcdefabcdef.lock"))
    holder.acquire()
    try:
        manager = EnvManager(root)  # gc runs at start
        assert not stale.exists()
        assert busy.exists() and foreign.exists() and unrelated.exists()
    finally:
        holder.release()
    assert manager.gc_partial() == [busy.name]
    assert leftovers(root) == [".tmp-not-ours", "notes"]
