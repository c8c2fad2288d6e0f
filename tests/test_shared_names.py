"""Knowledge with one home, and the copies that must remain held equal to it.

The job dir's names live in runner/launch/jobdir.py and the child's environment in
adapters/child_env.py; what can't import them (the supervisor and the node agent, standard library
only; adapters/ and custom_repos/, which import nothing of runner/) keeps a copy checked here.
Metric names live in adapters/metrics.py; log_parsers/ and the CLI (which loads no adapters) name
them from that vocabulary, and the CLI keeps a copy of each task's primary metric.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from adapters import child_env, metrics
from adapters.job import TRAINING_DEFAULTS, Job
from custom_repos import translate
from log_parsers import build_parser
from log_parsers import generic, yolov7
from log_parsers.base import MetricUpdate
from protos import visionyard_pb2 as pb
from runner.cli import names as cli_names
from runner.core.store import ALLOWED, TERMINAL, TERMINAL_PROTO, JobState
from runner.launch import jobdir, local
from runner.launch.adapter_child import adapter_command
from runner.launch.ray import node_files
from runner.payload import node_agent, supervisor
from runner.settings import Paths
from runner.spec.validate import TrainingSpec
from runner.spec.wire import TERMINAL_STATES

ROOT = Path(__file__).resolve().parent.parent
LOGS = Path(__file__).resolve().parent / "log_parsers" / "data"


# ------------------------------------------------------------------ the job dir and the child's environment


def test_the_supervisor_names_what_the_daemon_reads():
    assert (supervisor.SUPERVISOR_RECORD, supervisor.EXIT_RECORD) == (jobdir.SUPERVISOR_RECORD, jobdir.EXIT_RECORD)
    assert supervisor.TOKEN_ENV == local.TOKEN_ENV
    assert supervisor.BOUND_ENV == local.BOUND_ENV == node_agent.ENV_SUPERVISOR_BOUND


def test_the_node_agent_names_what_the_daemon_reads_and_sets():
    assert (node_agent.JOURNAL, node_agent.EXIT_RECORD, node_agent.ENV_LINK) == \
        (jobdir.JOURNAL, jobdir.EXIT_RECORD, jobdir.ENV_LINK)
    assert node_agent.UPLOAD_ORDER_LAST == node_files.RESULT_RECORDS
    assert (node_agent.ENV_ADDRESS, node_agent.ENV_JOB_ID, node_agent.ENV_TOKEN, node_agent.ENV_TLS_ROOTS) == \
        (child_env.ENV_ADDRESS, child_env.ENV_JOB_ID, child_env.ENV_TOKEN, child_env.ENV_TLS_ROOTS)
    assert node_agent.ENV_NODE_HOME == node_files.ENV_NODE_HOME


def test_the_adapter_child_and_the_repo_translator_name_the_folders_the_daemon_sends_back(tmp_path):
    spec = {"framework": "timm", "task": "image_classification", "model": "m",
            "dataset": {"path": "/d", "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 2, "learning_rate": 0.1}}
    job = Job.from_dict({"spec": spec, "job_dir": str(tmp_path)})  # no checkpoint_dir: the child's default
    assert job.checkpoint_dir == tmp_path / jobdir.CHECKPOINTS
    assert translate.OUTPUT_DIR == jobdir.OUTPUT
    assert translate.WORK_TREE == jobdir.WORK_TREE
    assert set(node_files.RESULT_FOLDERS) == {jobdir.CHECKPOINTS, jobdir.OUTPUT, jobdir.WORK_TREE}


# The names a copy may spell out, and the files that hold those copies.
SPELLED = {getattr(jobdir, n) for n in ("LOG", "JOB_FILE", "LAUNCH_RECORD", "SUPERVISOR_RECORD", "EXIT_RECORD",
                                         "JOURNAL", "NODE_PLANS")} | \
    {child_env.ENV_ADDRESS, child_env.ENV_JOB_ID, child_env.ENV_TOKEN, child_env.ENV_JOURNAL,
     child_env.ENV_TLS_ROOTS, local.TOKEN_ENV, node_files.ENV_NODE_HOME}
HOMES_AND_COPIES = {"runner/launch/jobdir.py", "adapters/child_env.py", "runner/launch/local.py",
                    "runner/launch/ray/node_files.py", "runner/payload/supervisor.py", "runner/payload/node_agent.py"}


def test_no_other_module_spells_out_a_job_dir_name_or_a_child_variable():
    found = []
    for package in ("runner", "adapters", "custom_repos", "envs", "log_parsers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in HOMES_AND_COPIES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in SPELLED:
                    found.append(f"{rel}:{node.lineno}: {node.value!r}")
    assert found == []


def test_one_adapter_command_for_training_and_predict(tmp_path):
    paths = Paths(tmp_path / "home")
    job_dir = paths.job_dir("j1")
    command = adapter_command("/env/bin/python", job_dir, paths, "--predict", "x.png", env={"A": "1"})
    assert command.argv == ["/env/bin/python", "-m", "adapters.entrypoint", "--spec", str(job_dir / jobdir.JOB_FILE),
                            "--predict", "x.png"]
    assert command.cwd == job_dir and command.pythonpath == [str(paths.child_path)]
    assert command.env == {"A": "1", "PYTHONPYCACHEPREFIX": str(paths.pycache)}


def test_no_job_command_inherits_a_distributed_variable(monkeypatch):
    for name in child_env.DISTRIBUTED_VARS:
        monkeypatch.setenv(name, "1")
    assert not set(local.child_environment({})) & set(child_env.DISTRIBUTED_VARS)
    assert translate.Launch([], {}, Path(), Path(), []).unset_env == list(child_env.DISTRIBUTED_VARS)


# ------------------------------------------------------------------ job states and training defaults


def test_terminal_states_are_the_wires_and_the_ones_no_transition_leaves():
    assert TERMINAL_PROTO == TERMINAL_STATES == {state.to_proto() for state in TERMINAL}
    assert TERMINAL == {state for state in JobState if not ALLOWED.get(state)}
    assert {pb.JobState.Name(s) for s in TERMINAL_STATES} == {"SUCCEEDED", "FAILED", "CANCELLED"}


def test_a_spec_without_training_settings_gets_the_shared_defaults():
    assert TrainingSpec().model_dump() == TRAINING_DEFAULTS


# ------------------------------------------------------------------ metric names


def _extra(name: str) -> bool:
    """A framework's own metric: a loss part under train/, or a generic log's unknown key."""
    return (name.startswith("train/") and name.endswith("_loss")) or name.startswith("custom/")


@pytest.mark.parametrize("parser,log", [("yolov7", "yolov7_tiny_2epochs.log"),
                                        ("convnext", "convnext_tiny_2epochs.log"),
                                        ("ppyoloe", "ppyoloe_crn_s_5epochs.log")])
def test_what_a_parser_emits_is_in_the_vocabulary(parser, log):
    events = build_parser(parser).parse_text((LOGS / log).read_text())
    names = {name for e in events if isinstance(e, MetricUpdate) for name in e.values}
    assert names
    assert {n for n in names if not _extra(n)} <= metrics.VOCABULARY


def test_the_parsers_tables_name_metrics_of_the_vocabulary():
    assert set(generic.KNOWN_KEYS.values()) <= metrics.VOCABULARY
    assert {n for n in (*yolov7._TRAIN_KEYS, *yolov7._VAL_KEYS) if not _extra(n)} <= metrics.VOCABULARY


def test_the_progress_line_shows_metrics_of_the_vocabulary():
    assert set(cli_names.SHOWN_METRICS) <= metrics.VOCABULARY


def test_the_cli_names_each_tasks_primary_metric_as_the_adapters_do():
    assert cli_names.PRIMARY_METRICS == {task: (m.name, m.higher_is_better)
                                         for task, m in metrics.PRIMARY_METRICS.items()}
    fallback = metrics.primary_metric("a task of no one's")
    assert cli_names.FALLBACK_METRIC == (fallback.name, fallback.higher_is_better)
