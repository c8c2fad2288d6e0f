"""A repo spec's `metric_files`: the YAML's checks (each error names its field), and the tailer that reads
the files as the run writes them (runner/core/metric_files.py) and goes on from stored positions."""

from __future__ import annotations

import json
import os

import pytest

from custom_repos.registry import shipped_specs
from custom_repos.spec import RepoSpecError, parse_repo_spec
from runner.core.metric_files import MetricFilesTailer

CSV_ENTRY = {"path": "run*/results.csv", "format": "csv", "epoch": "epoch",
             "metrics": {"acc": "val/accuracy", "loss": {"name": "train/loss"}}}


def problems(spec_dict, entry) -> list[tuple[str, str]]:
    with pytest.raises(RepoSpecError) as info:
        parse_repo_spec(spec_dict(metric_files=[entry]), "myrepo.yaml")
    return info.value.problems


@pytest.mark.parametrize("change, path, words", [
    ({"format": "jsonl"}, "metric_files[0].format", ["unknown format 'jsonl'", "Did you mean 'json_lines'?",
                                                     "Valid: csv, json_lines, json, trainer_state"]),
    ({"metrics": {"acc": "val/acc"}}, "metric_files[0].metrics.acc",
     ["'val/acc' is not a visionyard metric name", "Did you mean 'val/accuracy'?", "val/mAP50-95", "train/<name>_loss"]),
    ({"metrics": {"acc": {"name": "accuracy", "scale": 0.01}}}, "metric_files[0].metrics.acc",
     ["'accuracy' is not a visionyard metric name"]),
    ({"metrics": {"acc": {"metric": "val/accuracy"}}}, "metric_files[0].metrics.acc.metric",
     ["unknown field", "Valid: name, scale"]),
    ({"metrics": {}}, "metric_files[0].metrics", ["at least 1 item"]),
    ({"metrics": {"a": "val/accuracy", "b": "val/accuracy"}}, "metric_files[0].metrics.b",
     ["'val/accuracy' is mapped by metric_files[0].metrics.a already"]),
    ({"epoch": None}, "metric_files[0].epoch", ["is required"]),
    ({"first_epoch": -1}, "metric_files[0].first_epoch", ["greater than or equal to 0"]),
    ({"path": "/abs/log.txt"}, "metric_files[0].path", ["must be a relative path"]),
    ({"path": "../log.txt"}, "metric_files[0].path", ["must be a relative path"]),
    ({"records": "log_history"}, "metric_files[0]", ["records: only a json or trainer_state document"]),
    ({"colums": {}}, "metric_files[0].colums", ["unknown field", "Valid: path, format, epoch"]),
])
def test_bad_metric_files_name_the_field(spec_dict, change, path, words):
    entry = {key: value for key, value in {**CSV_ENTRY, **change}.items() if value is not None}
    found = dict(problems(spec_dict, entry))
    assert path in found, found
    for word in words:
        assert word in found[path]


def test_metric_files_parse_with_their_defaults(spec_dict):
    spec = parse_repo_spec(spec_dict(metric_files=[CSV_ENTRY, {
        "path": "trainer_state.json", "format": "trainer_state", "epoch": "epoch",
        "metrics": {"eval_accuracy": "val/top5", "loss": "train/seg_loss"}}]), "myrepo.yaml")
    csv_format, state = (entry.file_format() for entry in spec.metric_files)
    assert (csv_format.format, csv_format.first_epoch, csv_format.records_key) == ("csv", 1, "")
    assert [(m.column, m.metric, m.scale) for m in csv_format.metrics] == [("acc", "val/accuracy", 1.0),
                                                                         ("loss", "train/loss", 1.0)]
    assert state.records_key == "log_history"


def test_the_shipped_convnext_spec_reads_its_log_txt():
    (entry,) = shipped_specs()["convnext"].metric_files
    assert (entry.path, entry.format, entry.epoch, entry.first_epoch) == ("log.txt", "json_lines", "epoch", 0)
    assert {column: (m.name, m.scale) for column, m in entry.metrics.items()}.items() >= {
        "test_acc1": ("val/accuracy", 0.01), "test_acc5": ("val/top5", 0.01), "train_loss": ("train/loss", 1.0)}.items()


class Sink:
    def __init__(self):
        self.calls = []

    def __call__(self, source, path, position, events, notices):
        self.calls.append((source, path.name, position, [(e.step, e.values) for e in events], notices))

    def steps(self):
        return [step for call in self.calls for step, _ in call[3]]


def tailer(spec_dict, output, sink, positions=None, entries=None):
    spec = parse_repo_spec(spec_dict(metric_files=entries or [
        {"path": "log.txt", "format": "json_lines", "epoch": "epoch", "first_epoch": 0,
         "metrics": {"acc": {"name": "val/accuracy", "scale": 0.01}}},
        {"path": "state/trainer_state.json", "format": "trainer_state", "epoch": "epoch",
         "metrics": {"loss": "train/loss"}}]), "myrepo.yaml")
    return MetricFilesTailer(spec.metric_files, output, None, positions or {}, sink)


def test_the_tailer_takes_complete_rows_once_and_goes_on_from_stored_positions(spec_dict, tmp_path):
    out = tmp_path / "output"
    out.mkdir()
    sink = Sink()
    first = tailer(spec_dict, out, sink)
    first.poll()
    assert sink.calls == []  # no file yet
    log = out / "log.txt"
    log.write_text('{"epoch": 0, "acc": 50}\n{"epoch": 1, "ac')
    first.poll()
    assert sink.calls == [(0, "log.txt", 24, [(1, {"val/accuracy": 0.5})], [])]
    first.poll()
    assert len(sink.calls) == 1  # nothing new: no call
    (out / "state").mkdir()
    (out / "state" / "trainer_state.json").write_text(json.dumps({"log_history": [{"epoch": 1.0, "loss": 2.0}]}))
    first.poll()
    assert sink.calls[-1] == (1, "trainer_state.json", 1, [(1, {"train/loss": 2.0})], [])

    # a restarted daemon: a fresh tailer from the stored positions replays, then reads only what is new
    with open(log, "a") as f:
        f.write('c": 75}\n')
    (out / "state" / "trainer_state.json").write_text(json.dumps(
        {"log_history": [{"epoch": 1.0, "loss": 2.0}, {"epoch": 2.0, "loss": 1.0}]}))
    positions = {source: (str(out / name), position) for source, name, position, _, _ in
                 [sink.calls[0], (1, "state/trainer_state.json", 1, [], [])]}
    again = Sink()
    second = tailer(spec_dict, out, again, positions)
    assert [(e.step, e.values) for e in second.replay()] == [(1, {"val/accuracy": 0.5}), (1, {"train/loss": 2.0})]
    second.poll()
    assert again.calls == [(0, "log.txt", len(log.read_bytes()), [(2, {"val/accuracy": 0.75})], []),
                           (1, "trainer_state.json", 2, [(2, {"train/loss": 1.0})], [])]
    second.poll()
    assert len(again.calls) == 2


def test_the_last_row_without_a_newline_counts_at_the_end(spec_dict, tmp_path):
    sink = Sink()
    (tmp_path / "log.txt").write_text('{"epoch": 0, "acc": 50}')
    reader = tailer(spec_dict, tmp_path, sink)
    reader.poll()
    assert sink.calls == []
    reader.stop()  # never started: read once, as at the end of a job
    assert sink.steps() == [1]


def test_a_glob_takes_the_newest_match_and_a_rewritten_file_is_read_from_its_start(spec_dict, tmp_path):
    sink = Sink()
    reader = tailer(spec_dict, tmp_path, sink, entries=[CSV_ENTRY])
    for run in ("run2", "run10"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "results.csv").write_text("epoch,acc,loss\n1,0.5,2.0\n")
    reader.poll()
    assert sink.calls == [(0, "results.csv", 25, [(1, {"val/accuracy": 0.5, "train/loss": 2.0})], [])]
    assert reader.sources[0].path == tmp_path / "run10" / "results.csv"  # natural order: 10 after 2
    (tmp_path / "run10" / "results.csv").write_text("epoch,acc\n1,0.25\n")  # shorter: written again
    reader.poll()
    (_, _, position, events, notices), = sink.calls[1:]
    assert position == 17 and events == [(1, {"val/accuracy": 0.25})]
    assert notices == [f"reading {tmp_path}/run10/results.csv from its start (read up to byte 25 of "
                       f"{tmp_path}/run10/results.csv before)", "no column 'loss' in the header (epoch, acc)"]


def test_a_document_caught_mid_write_is_read_again_later(spec_dict, tmp_path):
    sink = Sink()
    (tmp_path / "state").mkdir()
    state = tmp_path / "state" / "trainer_state.json"
    state.write_text('{"log_history": [{"epoch": 1.0, "lo')
    reader = tailer(spec_dict, tmp_path, sink)
    reader.poll()
    assert sink.calls == []
    state.write_text('{"log_history": [{"epoch": 1.0, "loss": 3.0}]}')
    os.utime(state, ns=(1, 1))  # a new mtime even on a coarse clock
    reader.poll()
    assert sink.steps() == [1]
