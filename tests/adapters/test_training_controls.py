"""The training controls in a loop visionyard owns (timm): gradient accumulation gives the gradients of the
larger batch, clipping bounds the step, bf16 trains on the CPU with an EMA, and fp16 on a CPU is refused
with the reason. The same controls through Ultralytics and Transformers are tested with those adapters."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.adapters.test_timm_child import read_checkpoint, run_entrypoint, write_job

pytestmark = pytest.mark.slow

STEPS = r"""
import copy, json, sys
import torch
from torch import nn
from adapters.job import TrainingSpec
from adapters.steps import OptimizerSteps

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
x, y = torch.randn(8, 6) * 5, torch.randint(0, 3, (8,))


def train(sizes, accumulate=1, clip=None, lr=0.1):
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    steps = OptimizerSteps(m, opt, torch.device("cpu"), TrainingSpec(1, 8, lr, gradient_accumulation=accumulate,
                                                                        gradient_clip=clip))
    chunks = list(zip(x.split(sizes), y.split(sizes)))
    stepped = []
    for i, (xi, yi) in enumerate(chunks, 1):
        with steps.autocast():
            loss = nn.functional.cross_entropy(m(xi), yi)
        stepped.append(steps.backward(loss, i, len(chunks)))
    return m, stepped, steps


def gap(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def moved(m):
    return torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(m.parameters(), model.parameters()))).item()


one, _, _ = train([8])
four, stepped4, _ = train([2, 2, 2, 2], accumulate=4)
six_two, _, _ = train([6, 2])
uneven, stepped3, _ = train([3, 3, 2], accumulate=2)  # groups [3, 3] and [2]: two steps
clipped, _, steps = train([8], clip=0.01, lr=1.0)
print(json.dumps({"accumulated_vs_one_batch": gap(one, four), "steps_of_four": stepped4,
                  "uneven_vs_two_batches": gap(six_two, uneven), "steps_of_three": stepped3,
                  "clipped_step": moved(clipped), "norm_before_clipping": steps.last_norm}))
"""


def test_accumulation_gives_the_larger_batchs_gradients_and_clipping_bounds_the_step(child_python, child_env):
    done = subprocess.run([child_python, "-c", STEPS], env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["accumulated_vs_one_batch"] < 1e-6 and found["steps_of_four"] == [False, False, False, True]
    # a short last group is the mean of its own batches: [3, 3] then [2] is batches of 6 and 2
    assert found["uneven_vs_two_batches"] < 1e-6 and found["steps_of_three"] == [False, True, True]
    # plain SGD at lr 1 moves the weights by the clipped gradient: its norm is the clip, not the gradient's
    assert found["norm_before_clipping"] > 0.1
    assert found["clipped_step"] == pytest.approx(0.01, rel=1e-3)


def test_bf16_on_the_cpu_trains_with_accumulation_clipping_warmup_and_an_ema(
    child_python, child_env, reporter_server, make_imagefolder, tmp_path
):
    dataset = make_imagefolder(tmp_path / "colours", per_class=6)
    job = write_job(tmp_path / "job", dataset, epochs=2)
    spec = json.loads(job.read_text())
    spec["spec"]["training"].update(mixed_precision="bf16", gradient_accumulation=2, gradient_clip=1.0,
                                    warmup_epochs=1, ema=True)
    job.write_text(json.dumps(spec))
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address), "--spec", job)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "precision bf16" in done.stderr
    lrs = [m.values["lr"] for m in server.of_kind("metrics")]
    assert lrs[0] == pytest.approx(0.003 / 2)  # the first of one warmup epoch: half the learning rate
    last = read_checkpoint(tmp_path / "job" / "checkpoints" / "last.pt")
    assert "train_model" in last and last["epoch"] == 2  # the EMA's weights are `model`; resuming takes these


def test_fp16_where_the_job_runs_on_the_cpu_fails_at_once_with_the_reason(
    child_python, child_env, reporter_server, make_imagefolder, tmp_path
):
    dataset = make_imagefolder(tmp_path / "colours", per_class=2)
    job = write_job(tmp_path / "job", dataset, epochs=1)
    spec = json.loads(job.read_text())
    spec["spec"]["training"].update(mixed_precision="fp16", device="auto")
    job.write_text(json.dumps(spec))
    with reporter_server() as server:
        done = run_entrypoint(child_python, child_env(server.address, CUDA_VISIBLE_DEVICES=""), "--spec", job)
    assert done.returncode == 1
    errors = server.of_kind("error")
    assert errors and "fp16, which needs a CUDA GPU" in errors[0].message and "use bf16" in errors[0].message
