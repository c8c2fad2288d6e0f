"""Why a job ended without succeeding, as data: a cause on its record, on the wire (``FailureCause``),
in `status`, in `list --cause` and in MLflow's ``visionyard.failure_cause`` tag. The job's error
keeps the words; the cause is what a script or a filter reads."""

from __future__ import annotations

from enum import Enum

from protos import visionyard_pb2 as pb

#: What runs out of memory says (torch's CUDA and CPU allocators, Python, the C++ runtime, the OS).
OUT_OF_MEMORY_TYPES = frozenset({"OutOfMemoryError", "MemoryError"})
OUT_OF_MEMORY_TEXTS = ("CUDA out of memory", "CUDA error: out of memory", "MemoryError", "std::bad_alloc",
                       "Cannot allocate memory", "DefaultCPUAllocator: can't allocate memory")
DATASET_TYPES = frozenset({"DatasetError"})
DIVERGED_TYPES = frozenset({"FloatingPointError"})


class Cause(str, Enum):
    DATASET = "dataset"              # its dataset could not be read as the spec says
    ENV_BUILD = "env_build"          # its env could not be built
    REPO = "repo"                    # its repo could not be checked out, or the job translated for it
    OUT_OF_MEMORY = "out_of_memory"  # host or GPU memory ran out
    DISK_FULL = "disk_full"          # the disk holding the job dir filled up
    DIVERGED = "diverged"            # the loss became NaN or infinite
    TRAINING = "training"            # the training code raised, or the repo's command failed
    KILLED = "killed"                # a signal from outside the runner ended it
    LOST = "lost"                    # it ended unwatched with no exit record, or its cluster lost it
    CANCELLED = "cancelled"          # it was cancelled (by a user, or by the daemon's stop)
    RUNNER = "runner"                # an error inside the runner
    DEVICE = "device"                # the device it asks for is not there (any more)
    PRUNED = "pruned"                # a sweep's pruner stopped it early (runner/core/sweeps)

    def to_proto(self) -> int:
        return pb.FailureCause.Value(f"CAUSE_{self.name}")

    @classmethod
    def from_proto(cls, number: int) -> "Cause":
        return cls[pb.FailureCause.Name(number).removeprefix("CAUSE_")]


def cause_to_proto(value: str) -> int:
    """A record's cause (empty: none) as the wire's number."""
    return Cause(value).to_proto() if value else pb.CAUSE_UNSPECIFIED


def of_exit(*, known: bool, signal: int | None, error_report: str, log_tail: str, disk_full: bool) -> Cause:
    """Why a command that ran ended without success: from how it ended, what its adapter reported
    (``Type: message``) and the end of its log."""
    error_type = error_report.split(":", 1)[0].strip() if error_report else ""
    text = f"{error_report}\n{log_tail}"
    if disk_full:
        return Cause.DISK_FULL
    if error_type in OUT_OF_MEMORY_TYPES or any(t in text for t in OUT_OF_MEMORY_TEXTS):
        return Cause.OUT_OF_MEMORY
    if error_type in DATASET_TYPES:
        return Cause.DATASET
    if error_type in DIVERGED_TYPES or "training diverged" in text:
        return Cause.DIVERGED
    if not known:
        return Cause.LOST
    if signal is not None:
        return Cause.KILLED
    return Cause.TRAINING
