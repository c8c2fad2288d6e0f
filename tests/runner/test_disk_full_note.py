"""A failed job's "(the disk holding … is full)" note: the OS's words, torch's own, and the free
space judged against what the failed write needed (the job's largest file)."""

from __future__ import annotations

import shutil
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest

import runner.core.jobs
from runner.core.jobs import disk_full_note, largest_file_size

MiB = 2**20
Usage = namedtuple("Usage", "total used free")

# Real texts: torch 2.15 (`inline_container.cc:671`, libstdc++'s ios failure) when a checkpoint's
# write found no room; the `file write failed` form is torch 2.0–2.4's for the same.
TORCH_WRITE_FAILED = [
    "RuntimeError: [enforce fail at inline_container.cc:671] . unexpected pos 19905664 vs 19905552",
    "RuntimeError: basic_ios::clear: iostream error",
    "RuntimeError: [enforce fail at inline_container.cc:588] . PytorchStreamWriter failed writing file data/12: "
    "file write failed",
    "RuntimeError: [enforce fail at inline_container.cc:764] . PytorchStreamWriter failed writing central "
    "directory for archive last: file write failed",
]
NOT_A_WRITE = [
    "RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory",
    "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB",
    "ValueError: num_classes must be positive",
]


@pytest.fixture
def job_dir(tmp_path):
    """A job dir whose largest file is a 45 MiB checkpoint (sparse: it takes no disk)."""
    folder = tmp_path / "job"
    (folder / "checkpoints").mkdir(parents=True)
    with open(folder / "checkpoints" / "best.pt", "wb") as f:
        f.truncate(45 * MiB)
    (folder / "output.log").write_text("epoch 1\n")
    return folder


@pytest.fixture
def free(monkeypatch):
    """Set the free space the note sees, in MiB."""
    real = shutil.disk_usage

    def set_free(mib: float):
        def disk_usage(path):
            real(path)  # a missing folder fails as it would
            return Usage(10**12, 10**12 - int(mib * MiB), int(mib * MiB))
        monkeypatch.setattr(runner.core.jobs.shutil, "disk_usage", disk_usage)
    return set_free


@pytest.mark.parametrize("text", TORCH_WRITE_FAILED)
def test_torchs_write_failure_with_less_free_than_the_checkpoint_is_a_full_disk(job_dir, free, text):
    free(40)  # above the 8 MiB that counts as full on its own, under what the write needed
    assert disk_full_note(job_dir, f"{text}\nlast log lines") == f" (the disk holding {job_dir} is full: 40 MiB free)"


@pytest.mark.parametrize("text", TORCH_WRITE_FAILED)
def test_torchs_write_failure_with_room_for_the_checkpoint_is_not(job_dir, free, text):
    free(60)  # 45 MiB checkpoint + 8 MiB: the write had room, something else failed it
    assert disk_full_note(job_dir, text) == ""


@pytest.mark.parametrize("text", NOT_A_WRITE)
def test_other_failures_are_judged_by_the_low_disk_threshold_alone(job_dir, free, text):
    free(20)
    assert disk_full_note(job_dir, text) == ""
    free(5)
    assert disk_full_note(job_dir, text) == f" (the disk holding {job_dir} is full: 5 MiB free)"


@pytest.mark.parametrize("text", [
    "OSError: [Errno 28] No space left on device: '/h/jobs/x/checkpoints/.last.pt.tmp'",
    "sqlite3.OperationalError: database or disk is full",
    "safetensors_rust.SafetensorError: Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
    "message: \"No space left on device\" })",
])
def test_the_os_saying_so_is_a_full_disk_whatever_is_free_now(job_dir, free, text):
    free(5000)  # the partial file was removed since: room again
    assert disk_full_note(job_dir, text) == f" (the disk holding {job_dir} is full: 5000 MiB free)"


def test_a_job_without_files_is_judged_by_the_threshold(tmp_path, free):
    free(20)
    assert disk_full_note(tmp_path, TORCH_WRITE_FAILED[0]) == ""
    free(7)
    assert disk_full_note(tmp_path, TORCH_WRITE_FAILED[0]) != ""


def test_largest_file_follows_no_link_and_stops_after_max_files(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 30)
    (tmp_path / "outside").mkdir()
    with open(tmp_path / "outside" / "huge", "wb") as f:
        f.truncate(10**9)
    job = tmp_path / "job"
    job.mkdir()
    (job / "a").write_bytes(b"x" * 10)
    (job / "sub").mkdir()
    (job / "sub" / "b").write_bytes(b"x" * 30)
    (job / "link").symlink_to(tmp_path / "outside", target_is_directory=True)
    (job / "file-link").symlink_to(tmp_path / "outside" / "huge")
    assert largest_file_size(job) == 30
    assert largest_file_size(job, max_files=1) <= 30
    assert largest_file_size(tmp_path / "missing") == 0


WRITE_UNTIL_LIMITS = """
import os, resource, signal, sys, torch
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails short, as on a full disk
for limit in map(int, sys.argv[2:]):  # the soft limit, lowered and raised again below the hard one
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        torch.save({"w": torch.zeros(2**20), "b": torch.ones(2**20)}, sys.argv[1])
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    if os.path.exists(sys.argv[1]):
        os.remove(sys.argv[1])
"""


def test_the_installed_torchs_own_words_for_a_failed_checkpoint_write(timm_env, tmp_path, free):
    """Whatever this torch says when a checkpoint's write stops short is judged a full disk."""
    python = str(Path(timm_env.path) / "bin" / "python")
    size = 8 * MiB + 4096  # about what the checkpoint below takes
    limits = (600, 4 * MiB, size - 5000, size - 600, size - 300)  # one torch import for all of them
    done = subprocess.run([python, "-c", WRITE_UNTIL_LIMITS, str(tmp_path / "c.pt"), *map(str, limits)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    messages = {line for line in done.stdout.splitlines() if line.strip()}
    assert messages, "torch wrote past every limit"
    job = tmp_path / "job"
    job.mkdir()
    with open(job / "best.pt", "wb") as f:
        f.truncate(size)
    free(10)  # over the low-disk threshold, under the checkpoint (+ that threshold)
    for message in messages:
        assert disk_full_note(job, message), message
