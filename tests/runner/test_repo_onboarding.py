"""Adding a repo visionyard has never seen, as a newcomer does it: PyTorch's `imagenet/main.py`, played by a local
stand-in that prints its padded lines and writes its checkpoints into its working directory.

Through the in-process daemon with no env built (the repo's `{python}` is this interpreter): a parser pattern that
never matches is a warning on the job (its status and its log), a validation line with no new epoch never
overwrites the last epoch's values, `status --json` has every epoch's metrics, the job runs in a working tree of its
own (the shared checkout stays as cloned) where its checkpoints are found, and an artifact glob that finds nothing
and a log with fewer epochs than asked for are said.
"""

from __future__ import annotations

import json
from pathlib import Path

from protos import visionyard_pb2 as pb
from tests.fixtures import make_imagefolder
from tests.repo_fixtures import make_git_repo
from tests.runner.test_repo_results import plain_python_env

# imagenet/main.py of pytorch/examples as far as its log and files go: a ProgressMeter line per batch with padded
# numbers, ` * Acc@1 ... Acc@5 ...` after each validation, checkpoint.pth.tar and model_best.pth.tar in its cwd.
MAIN = r'''
import argparse
p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("--epochs", type=int)
p.add_argument("--shown", type=int, default=0)
p.add_argument("--resume", default="")
a = p.parse_args()
start = int(open(a.resume).read().split()[1]) + 1 if a.resume else 0
if a.resume:
    print(f"=> loaded checkpoint '{a.resume}' (epoch {start})")
for epoch in range(start, a.shown or a.epochs):
    for batch in (1, 2):
        print(f"Epoch: [{epoch}][{batch:>2d}/ 2]\tTime  0.101 ( 0.101)\tLoss {7.0682 / (epoch + batch):.4e} "
              f"({7.0682 / (epoch + 1):.4e})\tAcc@1 {12.5 * epoch:6.2f} ({12.5 * epoch:6.2f})")
    print(f" * Acc@1 {12.5 * (epoch + 1):.3f} Acc@5 {54.0 - epoch:.3f}")
    open("checkpoint.pth.tar", "w").write(f"epoch {epoch}")
    open("model_best.pth.tar", "w").write(f"epoch {epoch}")
'''

FIXED_TRAIN = (r"Epoch: \[(?P<epoch>\d+)\]\[\s*(?P<step>\d+)/\s*(?P<steps>\d+)\].*Loss\s+\S+\s+\(\s*(?P<loss>[\d.eE+-]+)\)"
               r".*Acc@1\s+\S+\s+\(\s*(?P<acc1>[\d.]+)\)")
#: The first try: no room for the padding in `Acc@1   0.00 (  0.00)`, so it never matches.
BROKEN_TRAIN = (r"Epoch: \[(?P<epoch>\d+)\]\[(?P<step>\d+)/(?P<steps>\d+)\].*Loss \S+ \((?P<loss>[\d.eE+-]+)\)"
                r".*Acc@1 (?P<acc1>[\d.]+) \(")
VAL = r"^\s*\*\s+Acc@1\s+(?P<acc1>[\d.]+)\s+Acc@5\s+(?P<acc5>[\d.]+)"


def spec(url: str, sha: str, train: str, artifacts: str = "{best: model_best.pth.tar, last: checkpoint.pth.tar}",
         extra: str = "") -> str:
    return f"""
resume: {{args: [--resume, "{{resume}}"]}}
name: pytorch-imagenet
url: {url}
commit: {sha}
tasks: [image_classification]
dataset_format: imagefolder
command: ["{{python}}", imagenet/main.py, "{{dataset_dir}}", --epochs, "{{epochs}}"{extra}]
artifacts: {artifacts}
parser:
  patterns:
    - regex: '{train}'
      metrics: {{loss: train/loss, acc1: train/accuracy}}
      scale: {{acc1: 0.01}}
      epoch_group: epoch
      epoch_base: 0
      step_group: step
      total_steps_group: steps
    - regex: '{VAL}'
      metrics: {{acc1: val/accuracy, acc5: val/top5}}
      scale: {{acc1: 0.01, acc5: 0.01}}
"""


def submit(daemon, tmp_path: Path, text: str, epochs: int = 2, **more):
    if text:
        (tmp_path / "spec.yaml").write_text(text)
        daemon.client.add_repo(tmp_path / "spec.yaml")
    data = tmp_path / "data" if (tmp_path / "data").is_dir() else make_imagefolder(tmp_path / "data", per_class=2,
                                                                                    val_per_class=1)
    job = daemon.client.submit({"name": "imagenet", "framework": "custom", "repo": "pytorch-imagenet",
                                "model": "resnet18", "task": "image_classification",
                                "dataset": {"path": str(data), "format": "imagefolder"},
                                "training": {"epochs": epochs, "batch_size": 2, "device": "cpu"}, **more})
    return daemon.wait_final(job.id, timeout=30), list(daemon.client.watch(job.id, include_logs=True))


def stand_in(tmp_path: Path) -> tuple[str, str, Path]:
    url, sha = make_git_repo(tmp_path / "examples", {"imagenet/main.py": MAIN, "imagenet/requirements.txt": "\n"})
    return str(url), sha, Path(url)


def test_a_pattern_that_never_matches_is_a_warning_and_no_epoch_overwrites_another(serve, tmp_path, capsys):
    from runner.cli import main

    daemon = serve()
    daemon.launcher.env = plain_python_env(tmp_path / "python-env")
    url, sha, _ = stand_in(tmp_path)
    final, events = submit(daemon, tmp_path, spec(url, sha, BROKEN_TRAIN))
    assert final.state == pb.SUCCEEDED, final.error
    job = daemon.client.get(final.id)
    assert any(w.startswith("log parser: pattern 1 (Epoch:") and "matched no line in epoch 1" in w
               for w in job.warnings), job.warnings
    assert any("pattern 2" in w and "matched again with no new epoch" in w for w in job.warnings), job.warnings
    logs = [e.log.text for e in events if e.WhichOneof("kind") == "log"]
    assert any(line.startswith("[visionyard] warning: log parser: pattern 1") for line in logs)
    # each validation line kept its own epoch: epoch 1's top-5 was not replaced by epoch 2's
    history = {h.epoch: dict(h.metrics) for h in job.history}
    assert history[1]["val/top5"] == 0.54 and history[2]["val/top5"] == 0.53
    assert "train/loss" not in history[1]

    assert main(["status", final.id, "--json", "--address", f"unix://{daemon.daemon.paths.socket}"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in shown["history"]] == [1, 2] and shown["history"][0]["metrics"]["val/accuracy"] == 0.125
    assert len(shown["warnings"]) == 2
    assert main(["status", final.id, "--address", f"unix://{daemon.daemon.paths.socket}"]) == 0
    assert "warning: log parser: pattern 1" in capsys.readouterr().out
    # the fixed spec added under the same name says it replaces the first
    (tmp_path / "spec.yaml").write_text(spec(url, sha, FIXED_TRAIN))
    assert main(["repos", "add", str(tmp_path / "spec.yaml"), "--address", f"unix://{daemon.daemon.paths.socket}"]) == 0
    assert capsys.readouterr().out.startswith("replaced the spec of repo pytorch-imagenet (")


def test_the_fixed_spec_runs_in_a_tree_of_its_own_and_finds_what_it_wrote_there(serve, tmp_path):
    daemon = serve()
    daemon.launcher.env = plain_python_env(tmp_path / "python-env")
    url, sha, _ = stand_in(tmp_path)
    final, events = submit(daemon, tmp_path, spec(url, sha, FIXED_TRAIN))
    assert final.state == pb.SUCCEEDED, final.error
    job = daemon.client.get(final.id)
    assert list(job.warnings) == [] and events[-1].status.message == "finished"
    history = {h.epoch: dict(h.metrics) for h in job.history}
    assert history[1]["train/loss"] == 7.0682 and history[2]["train/accuracy"] == 0.125  # the epoch's running means
    job_dir = daemon.job_dir(final.id)
    tree = job_dir / "repo"
    assert job.best_checkpoint == str(tree / "model_best.pth.tar") and Path(job.best_checkpoint).read_text() == "epoch 1"
    checkouts = list((daemon.home / "repos" / "checkouts").iterdir())
    assert checkouts and not any(any(c.rglob("*.pth.tar")) for c in checkouts)  # the shared checkout stays clean
    assert (tree / "imagenet" / "main.py").samefile(checkouts[0] / "imagenet" / "main.py")  # linked, not copied
    # MLflow: one summary per epoch at its step, not a value per batch line
    assert [step for step, values in daemon.tracker.metrics[final.id] if "train/loss" in values] == [1, 2]
    # resume: the repo's own flag with the earlier job's checkpoint; it goes on at epoch 3
    resumed, events = submit(daemon, tmp_path, "", epochs=3, resume=job.last_checkpoint)
    assert resumed.state == pb.SUCCEEDED, resumed.error
    logs = [e.log.text for e in events if e.WhichOneof("kind") == "log"]
    assert f"=> loaded checkpoint '{job.last_checkpoint}' (epoch 2)" in logs
    assert [h.epoch for h in daemon.client.get(resumed.id).history] == [3]


def test_an_empty_artifact_glob_and_fewer_epochs_than_asked_are_said(serve, tmp_path):
    daemon = serve()
    daemon.launcher.env = plain_python_env(tmp_path / "python-env")
    url, sha, _ = stand_in(tmp_path)
    final, events = submit(daemon, tmp_path, spec(url, sha, FIXED_TRAIN, artifacts="{best: best.pt, files: [logs/*.txt]}",
                                                  extra=', --shown, "1"'), epochs=3)
    assert final.state == pb.SUCCEEDED, final.error
    warnings = list(daemon.client.get(final.id).warnings)
    assert any("artifact glob 'best.pt' matched nothing" in w for w in warnings), warnings
    assert any("artifact glob 'logs/*.txt' matched nothing" in w for w in warnings), warnings
    assert events[-1].status.message.startswith("finished, but its log showed 1 of the 3 epochs asked for")
