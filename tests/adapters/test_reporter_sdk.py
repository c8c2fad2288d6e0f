"""The Reporter SDK against a real in-process gRPC server (host env: no torch needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from adapters.reporter import ENV_ADDRESS, ENV_JOB_ID, ENV_TOKEN, Reporter

FAST = {"backoff_initial": 0.05, "backoff_max": 0.2, "rpc_timeout": 2.0}


def make_reporter(address: str, **options) -> Reporter:
    env = {ENV_ADDRESS: address, ENV_JOB_ID: "job-7", ENV_TOKEN: "test-token"}
    return Reporter.from_env(env, **{**FAST, **options})


def test_items_arrive_in_order_in_increasing_batches(reporter_server):
    with reporter_server() as server:
        reporter = make_reporter(server.address, batch_max_items=3)
        for epoch in range(1, 11):
            reporter.metrics(epoch, {"train/loss": 1.0 / epoch, "val/accuracy": epoch / 10})
        reporter.checkpoint("/ck/last.pt", "last", 10)
        reporter.result({"val/accuracy": 1.0}, "/ck/best.pt", "/ck/last.pt")
        assert reporter.close(timeout=5)

    assert server.job_ids == {"job-7"}
    assert server.applied_seqs == list(range(1, len(server.applied_seqs) + 1))
    assert len(server.applied_seqs) >= 4  # 12 items, at most 3 a batch
    assert [m.step for m in server.of_kind("metrics")] == list(range(1, 11))
    assert server.of_kind("metrics")[1].values["train/loss"] == 0.5
    assert server.kinds()[-2:] == ["checkpoint", "result"]
    result = server.of_kind("result")[0]
    assert (result.best_checkpoint, result.last_checkpoint) == ("/ck/best.pt", "/ck/last.pt")
    assert dict(result.metrics) == {"val/accuracy": 1.0}


def test_failures_and_lost_acks_deliver_every_item_exactly_once(reporter_server):
    with reporter_server(fail_first=3, lose_acks=2) as server:
        reporter = make_reporter(server.address, batch_max_items=2)
        for step in range(1, 8):
            reporter.metrics(step, {"train/loss": float(step)})
            time.sleep(0.01)
        assert reporter.close(timeout=10)

    assert server.calls > len(server.applied_seqs)  # batches were resent
    assert server.applied_seqs == sorted(set(server.applied_seqs))
    assert [m.step for m in server.of_kind("metrics")] == list(range(1, 8))


def test_reporter_reconnects_when_the_daemon_comes_up_late(reporter_server, short_tmp):
    address = f"unix://{short_tmp}/late.sock"
    reporter = make_reporter(address)
    reporter.metrics(1, {"train/loss": 2.0})
    reporter.progress(1, 2, 5, 5)
    time.sleep(0.5)  # several failed attempts with no server listening
    with reporter_server(address=address) as server:
        reporter.metrics(2, {"train/loss": 1.0})
        assert reporter.close(timeout=10)
    assert [m.step for m in server.of_kind("metrics")] == [1, 2]
    assert server.kinds() == ["metrics", "progress", "metrics"]


def test_close_flushes_everything_queued(reporter_server):
    with reporter_server() as server:
        reporter = make_reporter(server.address, linger=0.5)
        for step in range(500):
            reporter.metrics(step, {"lr": 0.1})
        reporter.error("ValueError", "boom", "Traceback ...")
        assert reporter.close(timeout=10)
        assert len(server.of_kind("metrics")) == 500
        assert server.of_kind("error")[0].message == "boom"
        reporter.metrics(501, {"lr": 0.1})  # after close: ignored, no exception
        assert reporter.close() is True


def test_close_gives_up_after_its_timeout_when_the_daemon_is_gone(short_tmp):
    reporter = make_reporter(f"unix://{short_tmp}/nobody.sock")
    reporter.metrics(1, {"train/loss": 1.0})
    started = time.monotonic()
    assert reporter.close(timeout=1.0) is False
    assert time.monotonic() - started < 3.0


def test_refused_batches_are_dropped_not_retried_forever(reporter_server):
    with reporter_server(token="another-token") as server:
        reporter = make_reporter(server.address)
        reporter.metrics(1, {"train/loss": 1.0})
        assert reporter.close(timeout=5) is True
    assert server.calls == 1 and server.items == []


def test_progress_is_throttled_but_the_last_step_of_an_epoch_is_sent(reporter_server):
    now = [100.0]
    with reporter_server() as server:
        reporter = make_reporter(server.address, clock=lambda: now[0], progress_interval=0.5)
        for step in range(1, 101):  # one fast epoch: all at the same instant
            reporter.progress(1, 3, step, 100)
        now[0] += 0.3
        reporter.progress(2, 3, 1, 100)  # too soon
        now[0] += 0.3
        reporter.progress(2, 3, 2, 100)  # 0.6 s after the last one sent
        assert reporter.close(timeout=5)
    sent = [(p.epoch, p.step, p.total_steps, p.total_epochs) for p in server.of_kind("progress")]
    assert sent == [(1, 1, 100, 3), (1, 100, 100, 3), (2, 2, 100, 3)]


def test_bad_values_never_raise_into_training(reporter_server):
    with reporter_server() as server:
        reporter = make_reporter(server.address)
        reporter.metrics(1, {"train/loss": "not a number", "val/accuracy": 0.5, "lr": None})
        assert reporter.close(timeout=5)
    assert dict(server.of_kind("metrics")[0].values) == {"val/accuracy": 0.5}


def test_without_an_address_the_reporter_only_logs(caplog):
    caplog.set_level("INFO", logger="visionyard.reporter")
    reporter = Reporter.from_env({})
    assert not reporter.connected
    reporter.metrics(1, {"train/loss": 0.25})
    reporter.progress(1, 1, 1, 1)
    reporter.result({"val/accuracy": 1.0}, "", "/ck/last.pt")
    assert reporter.close() is True
    assert "train/loss=0.25" in caplog.text


def test_reporter_thread_does_not_keep_the_process_alive(tmp_path):
    script = textwrap.dedent(
        f"""
        from adapters.reporter import Reporter
        reporter = Reporter("unix://{tmp_path}/nobody.sock", "job", "token")
        reporter.metrics(1, {{"train/loss": 1.0}})
        print("exiting without close()")
        """
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10


def test_every_batch_is_journaled_before_it_is_sent_even_with_no_daemon(tmp_path, short_tmp):
    """With nobody listening, what was reported is in the journal when the child exits, in order,
    and the daemon's later reading of it matches what a live daemon would have received."""
    from adapters.reporter import ENV_JOURNAL, read_journal

    journal = tmp_path / "reports.journal"
    env = {ENV_ADDRESS: f"unix://{short_tmp}/nobody.sock", ENV_JOB_ID: "job-9", ENV_TOKEN: "t", ENV_JOURNAL: str(journal)}
    reporter = Reporter.from_env(env, **FAST, batch_max_items=2)
    for epoch in range(1, 6):
        reporter.metrics(epoch, {"val/accuracy": epoch / 10})
        time.sleep(0.02)
    reporter.result({"val/accuracy": 0.5}, "/ck/best.pt", "/ck/last.pt")
    started = time.monotonic()
    assert not reporter.close(timeout=10)  # nothing delivered...
    assert time.monotonic() - started < 3  # ...and no daemon to wait for: the journal has it all
    batches = read_journal(journal)  # ...but all of it kept
    assert [b.batch_seq for b in batches] == list(range(1, len(batches) + 1))
    assert {b.job_id for b in batches} == {"job-9"}
    items = [item for b in batches for item in b.items]
    assert [i.metrics.step for i in items if i.WhichOneof("kind") == "metrics"] == [1, 2, 3, 4, 5]
    assert items[-1].WhichOneof("kind") == "result"

    with open(journal, "ab") as f:  # a crash mid-write tears the last record: the rest still reads
        f.write((500).to_bytes(4, "big") + b"\x01\x02")
    assert len(read_journal(journal)) == len(batches)


def test_what_a_hung_daemon_never_took_is_in_the_journal_when_close_gives_up(tmp_path, short_tmp):
    """A daemon that accepts the connection but never answers holds the sender in its first RPC;
    everything reported after that is still journaled by the time close() returns (the process may
    exit right after, taking the sender thread with it)."""
    import socket

    from adapters.reporter import ENV_JOURNAL, read_journal

    path = f"{short_tmp}/hung.sock"
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(path)
    hung.listen(8)  # never accepted, never answered
    try:
        journal = tmp_path / "reports.journal"
        env = {ENV_ADDRESS: f"unix://{path}", ENV_JOB_ID: "job-3", ENV_TOKEN: "t", ENV_JOURNAL: str(journal)}
        reporter = Reporter.from_env(env, **{**FAST, "rpc_timeout": 30.0, "linger": 0.0})
        reporter.metrics(1, {"val/accuracy": 0.1})
        deadline = time.monotonic() + 10
        while not journal.exists() and time.monotonic() < deadline:  # the sender took batch 1 and is stuck
            time.sleep(0.01)
        for epoch in range(2, 6):
            reporter.metrics(epoch, {"val/accuracy": epoch / 10})
        reporter.result({"val/accuracy": 0.5}, "/ck/best.pt", "/ck/last.pt")
        started = time.monotonic()
        assert reporter.close(timeout=0.3) is False
        assert time.monotonic() - started < 3
        items = [item for batch in read_journal(journal) for item in batch.items]
        assert [i.metrics.step for i in items if i.WhichOneof("kind") == "metrics"] == [1, 2, 3, 4, 5]
        assert items[-1].WhichOneof("kind") == "result"
    finally:
        hung.close()


def test_journaled_batches_are_resent_with_the_same_numbers(reporter_server, tmp_path, short_tmp):
    from adapters.reporter import ENV_JOURNAL, read_journal

    journal = tmp_path / "reports.journal"
    address = f"unix://{short_tmp}/later.sock"
    env = {ENV_ADDRESS: address, ENV_JOB_ID: "job-7", ENV_TOKEN: "test-token", ENV_JOURNAL: str(journal)}
    reporter = Reporter.from_env(env, **FAST, batch_max_items=1)
    for step in range(1, 4):
        reporter.metrics(step, {"train/loss": float(step)})
    time.sleep(0.5)  # no daemon yet: batches wait (and are journaled)
    assert len(read_journal(journal)) == 3
    with reporter_server(address=address) as server:
        assert reporter.close(timeout=10)
    assert server.applied_seqs == [b.batch_seq for b in read_journal(journal)] == [1, 2, 3]


def test_a_progress_event_goes_at_once_while_metrics_wait_to_share_a_batch(reporter_server):
    """Progress alone is sent without lingering (one wake-up of the sender per event, the least a busy
    training loop can be disturbed); metrics still wait `linger` so a checkpoint after them rides along."""
    with reporter_server() as server:
        reporter = make_reporter(server.address, linger=3.0)
        started = time.monotonic()
        reporter.progress(1, 3, 5, 10)
        assert server.wait_for(lambda s: s.of_kind("progress"), timeout=10)
        assert time.monotonic() - started < 2.0
        reporter.metrics(1, {"train/loss": 0.5})
        reporter.checkpoint("/ck/last.pt", "last", 1)
        assert server.wait_for(lambda s: s.of_kind("checkpoint"), timeout=10)
        assert len(server.applied_seqs) == 2  # the metrics and the checkpoint in one batch
        assert reporter.close(timeout=10)
