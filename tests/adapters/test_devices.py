"""Device resolution, the one rule of every adapter: ``training.device`` + what the process sees."""

from __future__ import annotations

import re

import pytest

from adapters.devices import ASSIGNED_DEVICE_RE, DEVICE_RE, CudaView, DeviceUnavailable, resolve_device

NONE_HIDDEN = CudaView(0, visible="")            # GPUs hidden, as the daemon runs a CPU job
NONE_UNSET = CudaView(0)                         # a machine without a GPU
CPU_TORCH = CudaView(0, built=False)             # torch wheel without CUDA
ONE = CudaView(1, visible="3")                   # the daemon handed the job physical GPU 3
TWO = CudaView(2, visible="0,1")


@pytest.mark.parametrize(("requested", "view", "expected"), [
    ("cpu", TWO, "cpu"),
    ("auto", NONE_HIDDEN, "cpu"),
    ("auto", CPU_TORCH, "cpu"),
    (None, NONE_UNSET, "cpu"),
    ("", TWO, "cuda:0"),
    ("auto", ONE, "cuda:0"),
    ("cuda", ONE, "cuda:0"),
    ("cuda:0", ONE, "cuda:0"),
    ("cuda:1", TWO, "cuda:1"),  # an index among the visible GPUs, as torch counts them
])
def test_resolves_to_cpu_or_a_visible_gpu(requested, view, expected):
    assert resolve_device(requested, view) == expected


@pytest.mark.parametrize(("requested", "view", "message"), [
    ("cuda", NONE_HIDDEN, "training.device is 'cuda' but this machine has no CUDA device "
                          "(torch sees none; CUDA_VISIBLE_DEVICES=''): use device: cpu or auto"),
    ("cuda:0", NONE_UNSET, "training.device is 'cuda:0' but this machine has no CUDA device "
                           "(torch sees none; CUDA_VISIBLE_DEVICES is unset): use device: cpu or auto"),
    ("cuda", CPU_TORCH, "training.device is 'cuda' but torch in this env is built without CUDA "
                        "(CUDA_VISIBLE_DEVICES is unset): use device: cpu or auto"),
    ("cuda:1", ONE, "training.device is 'cuda:1' but this process sees only cuda:0 "
                    "(CUDA_VISIBLE_DEVICES='3'): use cuda:0, cuda or auto"),
    ("cuda:2", TWO, "training.device is 'cuda:2' but this process sees only cuda:0, cuda:1 "
                    "(CUDA_VISIBLE_DEVICES='0,1'): use cuda:0 to cuda:1, cuda or auto"),
    ("gpu", TWO, "training.device is 'gpu': not a device; use auto, cpu, cuda or cuda:N"),
    ("cuda:x", TWO, "training.device is 'cuda:x': not a device; use auto, cpu, cuda or cuda:N"),
])
def test_an_unusable_device_says_what_the_machine_has_and_the_fix(requested, view, message):
    with pytest.raises(DeviceUnavailable) as raised:
        resolve_device(requested, view)
    assert str(raised.value) == message


def test_the_probe_runs_only_when_a_gpu_could_be_the_answer():
    calls = []

    def probe():
        calls.append(1)
        return ONE

    assert resolve_device("cpu", probe) == "cpu" and calls == []
    assert resolve_device("auto", probe) == "cuda:0" and calls == [1]


@pytest.mark.parametrize(("device", "in_spec", "assigned"), [
    ("auto", True, False), ("cpu", True, True), ("cuda", True, True), ("cuda:12", True, True),
    ("gpu", False, False), ("cuda:", False, False), ("CPU", False, False), (" cpu", False, False),
])
def test_one_grammar_for_the_spec_and_for_what_the_daemon_assigns(device, in_spec, assigned):
    assert bool(DEVICE_RE.match(device)) is in_spec and bool(ASSIGNED_DEVICE_RE.match(device)) is assigned


def test_the_spec_check_and_the_repo_translation_use_this_grammar():
    from custom_repos import translate
    from runner.spec import validate

    assert validate.DEVICE_RE is DEVICE_RE and translate.ASSIGNED_DEVICE_RE is ASSIGNED_DEVICE_RE
    assert not any(isinstance(value, re.Pattern) and "cuda" in value.pattern
                   for module in (validate, translate) for name, value in vars(module).items()
                   if name not in ("DEVICE_RE", "ASSIGNED_DEVICE_RE"))
