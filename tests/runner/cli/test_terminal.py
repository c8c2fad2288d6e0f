"""Colour and box drawing only in a colour terminal: `NO_COLOR` or a stdout that is no terminal
(a pipe, a file) gets plain text, the same ids and paths, no ANSI codes. The layout rules of
runner/cli/output.py on their own: which columns go first, what wraps, when rows become records."""

from __future__ import annotations

import io
import os

import pytest

from runner.cli.output import Column, Output, Styled, is_terminal

BOX = set("─│┃━┏┓┗┛╭╮╰╯")


@pytest.mark.parametrize("command", [["list"], ["models", "--framework", "timm"], ["repos", "list"]])
def test_no_color_and_a_pipe_get_plain_text_a_colour_terminal_gets_colour(jobs, cli, command):
    argv = [*command, "--address", jobs.address]
    _, coloured = cli(*argv, columns=120, raw=True)
    _, no_color = cli(*argv, columns=120, no_color=True, raw=True)
    _, piped = cli(*argv, raw=True)
    assert "\x1b[" in coloured and BOX & set(coloured)
    for plain in (no_color, piped):
        assert "\x1b" not in plain and not BOX & set(plain)
    _, shown = cli(*argv, columns=120)  # what the colour terminal shows, codes aside
    assert no_color.split() == [word for word in shown.split() if set(word) != {"─"}]


def test_status_in_a_pipe_is_plain_key_value_lines(jobs, cli):
    _, out = cli("status", jobs.done.id, "--address", jobs.address, raw=True)
    assert "\x1b" not in out
    assert f"best checkpoint: {jobs.done.best_checkpoint}" in out.splitlines()


def test_a_pipe_gets_every_column_however_long_its_lines(jobs, cli):
    _, out = cli("models", "--framework", "transformers", "--address", jobs.address)
    assert out.splitlines()[0].split() == ["framework", "model", "name", "params", "(M)", "input", "batch", "lr", "tags"]


def test_a_pty_is_a_terminal_and_rich_variables_override_it():
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            assert is_terminal(tty, {})
            assert not is_terminal(tty, {"TTY_COMPATIBLE": "0"})
            assert Output(tty, {"COLUMNS": "91"}).width == 91
            assert not Output(tty, {"NO_COLOR": "1"}).styled
    finally:
        os.close(leader)
        os.close(follower)
    assert not is_terminal(io.StringIO(), {})
    assert is_terminal(io.StringIO(), {"FORCE_COLOR": "1"})


def render(columns, rows, width: int | None, styled: bool = False) -> list[str]:
    stream = io.StringIO()
    environ = {} if width is None else {"TTY_COMPATIBLE": "1", "COLUMNS": str(width), "NO_COLOR": "" if styled else "1"}
    Output(stream, environ).table(columns, rows)
    return stream.getvalue().splitlines()


COLUMNS = (Column("id"), Column("note", drop=2, wrap=True), Column("size", drop=1, right=True), Column("path"))
ROWS = [["a1", "a note of several words", "12", "/data/a1"], ["b2", "short", "3", "/data/somewhere/else/b2"]]


def test_wrapping_columns_wrap_at_spaces_and_the_others_stay_whole():
    lines = render(COLUMNS, ROWS, width=48)
    assert lines == ["id  note           size  path",
                     "a1  a note of        12  /data/a1",
                     "    several words",
                     "b2  short             3  /data/somewhere/else/b2"]


def test_lesser_columns_go_highest_drop_first_then_rows_become_records():
    assert render(COLUMNS, ROWS, width=45)[0].split() == ["id", "size", "path"]
    assert render(COLUMNS, ROWS, width=30)[0].split() == ["id", "path"]
    assert render(COLUMNS, ROWS, width=22) == ["id:   a1", "note: a note of several words", "size: 12", "path: /data/a1", "",
                                               "id:   b2", "note: short", "size: 3", "path: /data/somewhere/else/b2"]


def test_a_pipe_has_no_width_and_wide_characters_count_twice():
    lines = render((Column("class"), Column("n", right=True)), [["猫", "1"], ["dog", "10"]], width=None)
    assert lines == ["class   n", "猫      1", "dog    10"]


def test_styles_show_only_in_a_colour_terminal():
    rows = [[Styled("FAILED", "red"), "x"]]
    assert "\x1b[31mFAILED\x1b[0m" in render((Column("state"), Column("x")), rows, width=40, styled=True)[2]
    assert render((Column("state"), Column("x")), rows, width=40) == ["state   x", "FAILED  x"]


def test_watch_follows_as_plain_lines_in_a_pipe_and_with_a_progress_bar_in_a_terminal(jobs, cli):
    code, out = cli("watch", jobs.done.id, "--address", jobs.address)
    lines = out.splitlines()
    assert code == 0 and "\x1b" not in out
    assert [line.split()[1] for line in lines[:3]] == ["QUEUED", "PREPARING", "RUNNING"]
    assert [line.split(None, 1)[1] for line in lines if " epoch " in line] == [
        "epoch 1/2  train/loss 1  val/accuracy 0.6", "epoch 2/2  train/loss 0.5  val/accuracy 0.7"]
    assert f"best checkpoint: {jobs.done.best_checkpoint}" in lines  # then the job, as `status` shows it
    code, out = cli("watch", jobs.done.id, "--address", jobs.address, columns=100)
    assert code == 0 and "2/2" in out and "SUCCEEDED" in out
    code, _ = cli("watch", jobs.crashed.id, "--address", jobs.address)
    assert code == 1


def test_a_daemons_refusal_is_one_error_line_and_exit_code_2(jobs, cli):
    code, out = cli("status", "no-such-job", "--address", jobs.address)
    assert code == 2 and out.startswith("error: ") and "no-such-job" in out


def test_a_followed_jobs_long_log_line_is_printed_whole_in_a_terminal():
    """A log line longer than the terminal is one line, as the repo printed it: never cut into pieces."""
    from protos import visionyard_pb2 as pb
    from runner.cli.progress import _bars

    line = "Epoch: [0][ 1/10]\tTime  0.101 ( 0.101)\t" + "Loss 7.0682e+00 (7.0682e+00)\t" * 6
    stream = io.StringIO()
    out = Output(stream, environ={"TTY_COMPATIBLE": "1", "COLUMNS": "80"})
    assert out.width == 80
    job = pb.Job(id="j", name="job", spec=pb.JobSpec(training=pb.TrainingSpec(epochs=1)))
    _bars([pb.JobEvent(log=pb.LogLine(text=line))], job, out)
    printed = stream.getvalue().expandtabs()
    assert line.expandtabs() in printed, printed
