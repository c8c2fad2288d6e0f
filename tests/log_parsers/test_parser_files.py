"""The metric file readers (log_parsers/files.py) on hand-made files: each format, rows that arrive in
pieces, a CSV whose header is all there is, a trainer_state.json rewritten with more records."""

from __future__ import annotations

import json

import pytest

from log_parsers.base import MetricUpdate
from log_parsers.files import FileMetric, MetricFileFormat, MetricFileReader

CONVNEXT = MetricFileFormat("json_lines", "epoch", (FileMetric("test_acc1", "val/accuracy", 0.01),
                                                    FileMetric("train_loss", "train/loss")), first_epoch=0)
RESULTS_CSV = MetricFileFormat("csv", "epoch", (FileMetric("metrics/mAP50-95(B)", "val/mAP50-95"),
                                                FileMetric("train/box_loss", "train/box_loss")))
TRAINER_STATE = MetricFileFormat("trainer_state", "epoch", (FileMetric("loss", "train/loss"),
                                                            FileMetric("eval_accuracy", "val/accuracy")))

# ConvNeXt's log.txt as main.py writes it (json.dumps of a dict per epoch)
CONVNEXT_ROWS = [
    {"train_lr": 0.00075, "train_loss": 2.1947, "test_loss": 0.236, "test_acc1": 80.0, "test_acc5": 100.0,
     "epoch": 0, "n_parameters": 27823973},
    {"train_lr": 0.0003, "train_loss": 1.52, "test_loss": 0.2, "test_acc1": 86.66666, "test_acc5": 100.0,
     "epoch": 1, "n_parameters": 27823973},
]


def lines(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def test_json_lines_row_per_epoch_from_epoch_zero():
    reader = MetricFileReader(CONVNEXT)
    events, used = reader.feed(lines(CONVNEXT_ROWS))
    assert used == len(lines(CONVNEXT_ROWS))
    assert events == [MetricUpdate(1, {"val/accuracy": 0.8, "train/loss": 2.1947}),
                      MetricUpdate(2, {"val/accuracy": pytest.approx(0.8666666), "train/loss": 1.52})]
    assert reader.take_notices() == []


def test_a_partial_last_line_waits_until_it_is_complete():
    data = lines(CONVNEXT_ROWS)
    cut = len(lines(CONVNEXT_ROWS[:1])) + 30  # the second row half written
    reader = MetricFileReader(CONVNEXT)
    events, used = reader.feed(data[:cut])
    assert [e.step for e in events] == [1] and used == len(lines(CONVNEXT_ROWS[:1]))
    events, more = reader.feed(data[used:cut])  # nothing new: the same half line again
    assert (events, more) == ([], 0)
    events, more = reader.feed(data[used:])
    assert [e.step for e in events] == [2] and used + more == len(data)
    assert reader.take_notices() == []


def test_the_last_line_without_a_newline_counts_when_the_writer_is_done():
    data = lines(CONVNEXT_ROWS).rstrip(b"\n")
    reader = MetricFileReader(CONVNEXT)
    assert [e.step for e in reader.feed(data)[0]] == [1]
    rest = data[reader.feed(data)[1]:]
    events, used = MetricFileReader(CONVNEXT).feed(rest, final=True)
    assert [e.step for e in events] == [2] and used == len(rest)


def test_csv_with_a_header_as_ultralytics_writes_it():
    header = "                  epoch,         train/box_loss,   metrics/mAP50-95(B),  lr/pg0\n"
    rows = "1,1.5,0.012,0.01\n2,1.25,0.05,0.009\n"
    reader = MetricFileReader(RESULTS_CSV)
    events, used = reader.feed((header + rows).encode())
    assert used == len(header) + len(rows)
    assert events == [MetricUpdate(1, {"val/mAP50-95": 0.012, "train/box_loss": 1.5}),
                      MetricUpdate(2, {"val/mAP50-95": 0.05, "train/box_loss": 1.25})]


def test_csv_with_its_header_only_and_then_rows():
    reader = MetricFileReader(RESULTS_CSV)
    header = b"epoch,train/box_loss,metrics/mAP50-95(B)\n"
    assert reader.feed(header) == ([], len(header))
    assert reader.header == ["epoch", "train/box_loss", "metrics/mAP50-95(B)"]
    assert reader.feed(b"1,0.9,") == ([], 0)  # a row being written
    assert reader.feed(b"1,0.9,0.3\n") == ([MetricUpdate(1, {"val/mAP50-95": 0.3, "train/box_loss": 0.9})], 10)
    assert reader.take_notices() == []


def test_a_header_without_the_mapped_columns_is_noticed_once():
    reader = MetricFileReader(RESULTS_CSV)
    assert reader.feed(b"epoch,loss\n1,0.5\n2,0.4\n")[0] == []
    assert reader.take_notices() == ["no column 'metrics/mAP50-95(B)', 'train/box_loss' in the header (epoch, loss)"]
    assert reader.take_notices() == []


def test_rows_without_an_epoch_or_before_the_first_are_skipped_and_noticed():
    reader = MetricFileReader(CONVNEXT)
    events, _ = reader.feed(b'{"test_acc1": 50}\n{"epoch": -1, "test_acc1": 10}\nnot json\n{"epoch": 3}\n'
                            b'{"epoch": 2, "test_acc1": 50}\n')
    assert events == [MetricUpdate(3, {"val/accuracy": 0.5})]
    notices = reader.take_notices()
    assert len(notices) == 3 and "without a number in 'epoch'" in notices[0]
    assert "comes before first_epoch 0" in notices[1] and "not JSON" in notices[2]


def trainer_state(history) -> bytes:
    return json.dumps({"best_metric": None, "epoch": history[-1]["epoch"] if history else 0,
                       "log_history": history, "global_step": 10}, indent=2).encode()


def test_a_rewritten_trainer_state_yields_only_its_new_records():
    first = [{"epoch": 0.5, "loss": 2.0, "step": 5}, {"epoch": 1.0, "eval_accuracy": 0.25, "step": 10}]
    second = first + [{"epoch": 1.5, "loss": 1.5, "step": 15}, {"epoch": 2.0, "eval_accuracy": 0.5, "step": 20}]
    reader = MetricFileReader(TRAINER_STATE)
    events, taken = reader.document(trainer_state(first), 0)
    assert events == [MetricUpdate(1, {"train/loss": 2.0}), MetricUpdate(1, {"val/accuracy": 0.25})] and taken == 2
    assert reader.document(trainer_state(first), taken) == ([], 2)  # the same document again: nothing
    assert reader.document(trainer_state(second)[:40], taken) is None  # caught mid-write: read again later
    events, taken = reader.document(trainer_state(second), taken)
    assert events == [MetricUpdate(2, {"train/loss": 1.5}), MetricUpdate(2, {"val/accuracy": 0.5})] and taken == 4
    assert reader.document(trainer_state(first), taken) == ([], 4)  # fewer records: nothing taken twice


def test_a_json_document_with_its_records_under_a_dotted_key():
    spec = MetricFileFormat("json", "it", (FileMetric("acc", "val/accuracy"),), records="run.scalars")
    reader = MetricFileReader(spec)
    document = json.dumps({"run": {"scalars": [{"it": 1, "acc": 0.1}, {"it": 2, "acc": 0.2}]}}).encode()
    assert reader.document(document, 1) == ([MetricUpdate(2, {"val/accuracy": 0.2})], 2)
    assert reader.document(b'{"run": {}}', 0) == ([], 0)
    assert reader.take_notices() == ["'run.scalars' is not a list of records"]


def test_an_unknown_format_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown format 'xml'. Valid: csv, json_lines, json, trainer_state"):
        MetricFileFormat("xml", "epoch", ())
