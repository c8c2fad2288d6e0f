"""`--json` on every command that prints data, each with a pinned shape: its keys and their types
(README.md, "JSON output", documents them). Messages keep the proto's field names, print every
field (defaults too), and give 64-bit integers as numbers. `watch --json` is one object per line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

import runner.cli.commands
from protos import visionyard_pb2 as pb
from runner.cli.app import build_parser
from runner.cli.completion import walk
from tests.inprocess_daemon import SLOW_ENV, fake_job

ROOT = Path(__file__).resolve().parents[3]
NUMBER = (int, float)

JOB = {"id": str, "name": str, "state": str, "spec": dict, "created_at": NUMBER, "started_at": NUMBER,
       "finished_at": NUMBER, "error": str, "metrics": dict, "epoch": int, "total_epochs": int,
       "best_checkpoint": str, "last_checkpoint": str, "job_dir": str, "env_name": str, "mlflow_run_id": str,
       "device": str, "placement": str, "cause": str}
JOB_OPTIONAL = {"exit_code": int, "warnings": list, "history": list}  # history: status (GetJob) only
MODEL = {"framework": str, "name": str, "display_name": str, "tasks": list, "params_millions": NUMBER,
         "input_size": int, "recommended_batch_size": int, "recommended_learning_rate": NUMBER, "tags": list}
SCHEMA = {"framework": str, "tasks": list, "fields": list, "presets": list, "dataset_formats": list,
          "controls": list}
FIELD = {"path": str, "type": str, "default_json": str, "description": str, "choices": list}
FIELD_OPTIONAL = {"minimum": NUMBER, "maximum": NUMBER, "replaced_by": str}
CONTROL = {"name": str, "supported": bool, "how": str, "default": str}
PRESET = {"name": str, "description": str, "values": dict}
ENV = {"name": str, "spec_name": str, "key": str, "path": str, "size_bytes": int, "created_at": NUMBER,
       "last_used_at": NUMBER, "requirements": list}
REPO = {"name": str, "url": str, "commit": str, "description": str, "tasks": list, "models": list,
        "dataset_format": str, "source": str, "spec_yaml": str, "replaced": bool}
GC = {"removed": list, "freed_bytes": int, "dry_run": bool}
REMOVAL = {"kind": str, "name": str, "path": str, "bytes": int, "reason": str}
EVENT = {"kind": str, "job_id": str, "seq": int, "time": NUMBER}
EVENT_PARTS = {"status": {"state": str, "message": str}, "metrics": {"step": int, "values": dict},
               "log": {"text": str}, "checkpoint": {"path": str, "kind": str, "epoch": int},
               "progress": {"epoch": int, "total_epochs": int, "step": int, "total_steps": int}}
EXPORT = {"job_id": str, "format": str, "path": str, "size_bytes": int, "opset": int, "dynamic": bool, "half": bool,
          "checkpoint": str, "exporter": str, "inputs": list, "outputs": list, "validation": dict, "seconds": float,
          "report": str}
VALIDATION = {"images": int, "max_abs_diff": float, "tolerance": float, "worst_output": str, "agreement_kind": str,
              "agreement": float, "min_agreement": float, "passed": bool, "pytorch_images_per_s": float,
              "onnx_images_per_s": float}
PREDICTION = {"predictions": list, "task": str, "width": int, "height": int, "text": str, "timings_ms": dict}
CONVERTED = {"path": str, "format": str, "task": str, "images": dict, "annotations": dict, "warnings": list}
CHECKED = {"ok": bool, "errors": list, "warnings": list, "more_errors": int, "more_warnings": int, "root": str,
           "format": str, "task": str, "images": dict, "val_source": str, "counted": str, "classes": list,
           "annotations": dict, "image_sizes": dict}


def check(data: dict, shape: dict, optional: dict | None = None) -> None:
    """`data` has exactly the keys of `shape` (and maybe some of `optional`), each of its type."""
    optional = optional or {}
    assert set(shape) <= set(data) <= set(shape) | set(optional), sorted(set(data) ^ set(shape))
    for key, value in data.items():
        kind = {**shape, **optional}[key]
        assert isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool), (key, value)


def run(cli, *argv) -> object:
    code, out = cli(*argv)
    assert code == 0, out
    return json.loads(out)


def test_status_list_and_cancel_print_jobs(jobs, cli):
    status = run(cli, "status", jobs.done.id, "--json", "--address", jobs.address)
    check(status, JOB, JOB_OPTIONAL)
    assert status["state"] == "SUCCEEDED" and status["exit_code"] == 0 and status["cause"] == "CAUSE_UNSPECIFIED"
    assert status["metrics"] == {"train/loss": 0.5, "val/accuracy": 0.7}
    listed = run(cli, "list", "--json", "--address", jobs.address)
    assert [j["id"] for j in listed] == [jobs.crashed.id, jobs.done.id]
    for job in listed:
        check(job, JOB, JOB_OPTIONAL)
    held = jobs.daemon.client.submit(fake_job(Path(jobs.done.spec.dataset.path), f"train {SLOW_ENV}")).id
    cancelled = run(cli, "cancel", held, "--wait", "--json", "--address", jobs.address)
    check(cancelled, JOB, JOB_OPTIONAL)
    assert cancelled["state"] == "CANCELLED" and cancelled["cause"] == "CAUSE_CANCELLED"
    assert cancelled["epoch"] == 0 and cancelled["metrics"] == {} and cancelled["best_checkpoint"] == ""  # defaults too


def test_submit_prints_the_job_it_stored(jobs, cli, tmp_path):
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(fake_job(Path(jobs.done.spec.dataset.path), "train", epochs=1)))
    submitted = run(cli, "submit", str(spec), "--json", "--address", jobs.address)
    check(submitted, JOB, JOB_OPTIONAL)
    assert jobs.daemon.wait_final(submitted["id"]).state == pb.SUCCEEDED


def test_watch_prints_one_event_per_line(jobs, cli):
    code, out = cli("watch", jobs.done.id, "--json", "--logs", "--address", jobs.address)
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(events) > 5
    for event in events:
        check(event, {**EVENT, event["kind"]: dict})
        check(event[event["kind"]], EVENT_PARTS[event["kind"]])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["kind"] for e in events} == set(EVENT_PARTS)
    assert events[-1]["status"]["state"] == "SUCCEEDED"
    code, _ = cli("watch", jobs.crashed.id, "--json", "--address", jobs.address)
    assert code == 1  # as without --json: 0 only on success


def test_catalog_and_repos(jobs, cli):
    models = run(cli, "models", "--framework", "timm", "--json", "--address", jobs.address)
    for model in models:
        check(model, MODEL)
    schema = run(cli, "schema", "timm", "--json", "--address", jobs.address)
    check(schema, SCHEMA)
    for field in schema["fields"]:
        check(field, FIELD, FIELD_OPTIONAL)
    for preset in schema["presets"]:
        check(preset, PRESET)
    for control in schema["controls"]:
        check(control, CONTROL)
    assert [c["name"] for c in schema["controls"]] == ["mixed_precision", "gradient_accumulation", "gradient_clip",
                                                       "early_stopping", "warmup_epochs", "ema"]
    replaced = {f["path"]: f["replaced_by"] for f in schema["fields"] if f.get("replaced_by")}
    assert replaced == {"scheduler.warmup_epochs": "training.warmup_epochs",
                        "early_stopping.patience": "training.early_stopping"}
    for repo in run(cli, "repos", "list", "--json", "--address", jobs.address):
        check(repo, REPO)
    shown = run(cli, "repos", "show", "yolov7", "--json", "--address", jobs.address)
    check(shown, REPO)
    assert shown["commit"] == "a207844b1ce82d204ab36d87d496728d3d2348e7"


def test_gc(jobs, cli):
    reply = run(cli, "gc", "--dry-run", "--job-days", "0.000001", "--json", "--address", jobs.address)
    check(reply, GC)
    assert reply["dry_run"] is True and len(reply["removed"]) >= 2
    for removal in reply["removed"]:
        check(removal, REMOVAL)
    assert reply["freed_bytes"] == sum(r["bytes"] for r in reply["removed"]) > 0


class StandIn:
    """Stands in for runner.client.Client in the commands whose answers need a built env."""

    env = pb.EnvInfo(name="timm-3f9a0c1d2b4e", spec_name="timm", key="3f9a0c1d2b4e", path="/h/envs/timm-3f9a0c1d2b4e",
                     size_bytes=5 << 30, created_at=1.7e9, requirements=["timm==1.0.31"])

    def __init__(self, **options):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def envs(self):
        return [self.env]

    def prepare_env(self, name):
        return self.env

    def remove_env(self, name):
        return [self.env.name]

    def prepare_repo(self, name):
        return pb.PrepareRepoResponse(repo=pb.RepoInfo(name=name, url="https://github.com/WongKinYiu/yolov7"),
                                      checkout="/h/repos/yolov7/checkout", env=self.env)

    def predict(self, job_id, image, top_k=5, checkpoint="best", annotate=False, runtime="pytorch", device="",
                labels=None, question="", boxes=None):
        response = pb.PredictResponse(task="image_classification", width=8, height=8, timings_ms={"total": 1.5})
        response.predictions.add(label="red", score=0.9, index=0)
        return response

    def export(self, job_id, **options):
        StandIn.exported = options
        return pb.ExportResponse(
            job_id=job_id, format="onnx", path="/h/jobs/j/exports/onnx-best/model.onnx", size_bytes=3 << 30, opset=17,
            exporter="torch.onnx 2.15.0", inputs=["pixel_values"], outputs=["logits"], seconds=4.5,
            report="/h/jobs/j/exports/onnx-best/export.json",
            validation=pb.ExportValidation(images=8, max_abs_diff=2e-6, tolerance=5e-3, worst_output="logits",
                                           agreement_kind="top-1", agreement=1.0, min_agreement=0.9, passed=True,
                                           pytorch_images_per_s=200.0, onnx_images_per_s=400.0))


def test_envs_repos_prepare_and_predict(monkeypatch, cli):
    monkeypatch.setattr(runner.cli.commands, "Client", StandIn)
    [env] = run(cli, "envs", "list", "--json")
    check(env, ENV)
    assert env["size_bytes"] == 5 << 30 and env["last_used_at"] == 0  # a number, not proto JSON's string
    check(run(cli, "envs", "prepare", "timm", "--json"), ENV)
    assert run(cli, "envs", "rm", "timm", "--json") == {"removed": ["timm-3f9a0c1d2b4e"]}
    prepared = run(cli, "repos", "prepare", "yolov7", "--json")
    assert set(prepared) == {"repo", "checkout", "env"}
    check(prepared["repo"], REPO)
    check(prepared["env"], ENV)
    prediction = run(cli, "predict", "job1", "in.png", "--json")
    check(prediction, PREDICTION)
    assert prediction["predictions"][0] == {"label": "red", "score": 0.9, "index": 0, "polygon": [], "keypoints": []}
    exported = run(cli, "export", "job1", "--dynamic", "--opset", "18", "--json")
    check(exported, EXPORT)
    check(exported["validation"], VALIDATION)
    assert exported["size_bytes"] == 3 << 30 and exported["validation"]["passed"] is True
    assert StandIn.exported == {"format": "onnx", "checkpoint": "best", "dynamic": True, "half": False, "opset": 18,
                                "images": [], "count": 8, "device": "cpu"}


def test_export_without_json_says_where_the_model_is_and_how_it_compares(monkeypatch, cli):
    monkeypatch.setattr(runner.cli.commands, "Client", StandIn)
    code, out = cli("export", "job1", "--half", "--images", "val/", "--count", "4")
    assert code == 0, out
    assert out.splitlines()[0] == "exported /h/jobs/j/exports/onnx-best/model.onnx"
    assert "validated on 8 image(s): max |PyTorch - ONNX| 2e-06 (tolerance 0.005, logits); top-1 class agree 100%" in out
    assert "PyTorch 200.0 images/s, ONNX 400.0 images/s" in out
    assert "visionyard predict job1 IMAGE --runtime onnx" in out
    assert StandIn.exported["half"] is True and StandIn.exported["count"] == 4
    assert StandIn.exported["images"] == [str(Path("val/").absolute())]  # as the daemon finds it


def test_datasets_check_and_convert(cli, data, tmp_path):
    checked = run(cli, "datasets", "check", str(data), "--format", "imagefolder", "--task", "image_classification",
                  "--json")
    check(checked, CHECKED)
    converted = run(cli, "datasets", "convert", str(data), "--from", "imagefolder", "--to", "imagefolder", "--task",
                    "image_classification", "-o", str(tmp_path / "copy"), "--json")
    check(converted, CONVERTED)
    assert converted["path"] == str(tmp_path / "copy") and converted["images"] == checked["images"]


def test_every_command_with_json_is_in_the_readmes_json_section():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### JSON output", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    documented = set(re.findall(r"`visionyard ([a-z ]+?)(?: [A-Z]|`)", section))
    nodes = walk(build_parser())
    with_json = {node.path.removeprefix("visionyard ") for node in nodes if "--json" in node.options}
    assert with_json <= documented, sorted(with_json - documented)
    # The rest print no data (or, `logs`, a log as it is): a new command that prints data takes --json.
    without = {node.path for node in nodes if "--json" not in node.options and not node.commands}
    assert without == {f"visionyard {name}" for name in ("completion", "logs", "serve", "ui")}


@pytest.mark.parametrize("argv", [["submit", "job.yaml", "--json", "--follow"]])
def test_submit_json_does_not_follow(cli, argv):
    with pytest.raises(SystemExit) as info:
        cli(*argv)
    assert "watch" in str(info.value)
