"""The job store: one guarded door for status changes, gapless per-job event sequences."""

import threading

import pytest

from protos import visionyard_pb2 as pb
from runner.core.store import JobNotFound, JobState, JobStore


@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path / "state.db")
    yield s
    s.close()


def new_job(store, name="j"):
    return store.create_job({"framework": "timm", "training": {"epochs": 2}}, name, total_epochs=2)


def test_lifecycle_and_times(store):
    job = new_job(store)
    assert job.state is JobState.QUEUED and job.started_at is None
    assert store.transition(job.id, JobState.PREPARING)
    assert store.transition(job.id, JobState.RUNNING, pid=123)
    assert store.transition(job.id, JobState.SUCCEEDED, exit_code=0)
    done = store.get(job.id)
    assert done.state is JobState.SUCCEEDED and done.exit_code == 0 and done.pid == 123
    assert done.started_at <= done.finished_at
    states = [pb.JobState.Name(e.status.state) for e in store.events(job.id) if e.HasField("status")]
    assert states == ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED"]


def test_terminal_states_are_final(store):
    job = new_job(store)
    assert store.transition(job.id, JobState.CANCELLED)
    for state in JobState:
        assert not store.transition(job.id, state)
    assert store.get(job.id).state is JobState.CANCELLED


def test_no_skipping_states(store):
    job = new_job(store)
    assert not store.transition(job.id, JobState.RUNNING)
    assert not store.transition(job.id, JobState.SUCCEEDED)
    assert store.get(job.id).state is JobState.QUEUED


def test_events_have_gapless_sequence_per_job_under_concurrency(store):
    a, b = new_job(store, "a"), new_job(store, "b")

    def write(job_id):
        for i in range(50):
            store.add_metrics(job_id, i + 1, {"train/loss": 1.0 / (i + 1)})
            store.add_logs(job_id, [f"line {i}"])

    threads = [threading.Thread(target=write, args=(j.id,)) for j in (a, b, a)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [e.seq for e in store.events(a.id, limit=10_000)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 1 + 2 * 2 * 50
    assert [e.seq for e in store.events(a.id, after_seq=150, limit=10_000)] == list(range(151, 202))


def test_metrics_latest_values_and_history(store):
    job = new_job(store)
    store.add_metrics(job.id, 1, {"val/accuracy": 0.5, "lr": 0.1})
    store.add_metrics(job.id, 2, {"val/accuracy": 0.75})
    record = store.get(job.id)
    assert record.metrics == {"val/accuracy": 0.75, "lr": 0.1}
    assert record.epoch == 2
    assert store.metrics(job.id, "val/accuracy") == [("val/accuracy", 1, 0.5), ("val/accuracy", 2, 0.75)]


def test_fifo_order_and_prefix_lookup(store):
    first, second = new_job(store, "first"), new_job(store, "second")
    assert store.next_queued().id == first.id
    store.transition(first.id, JobState.CANCELLED)
    assert store.next_queued().id == second.id
    assert store.get(second.id[:8]).id == second.id
    assert [j.name for j in store.list()] == ["second", "first"]
    assert [j.name for j in store.list([JobState.CANCELLED])] == ["first"]
    with pytest.raises(JobNotFound):
        store.get("nope")


def test_jobs_survive_reopening(tmp_path):
    store = JobStore(tmp_path / "state.db")
    job = new_job(store)
    store.add_logs(job.id, ["hello"])
    store.close()
    again = JobStore(tmp_path / "state.db")
    assert again.get(job.id).name == "j"
    assert again.events(job.id)[-1].log.text == "hello"
    again.close()


def test_listeners_hear_which_jobs_got_events_and_watchers_read_them_serialized(store):
    one, other = new_job(store), new_job(store)
    heard: list[set[str]] = []
    store.add_listener(heard.append)
    store.add_logs(one.id, ["a", "b"])
    store.transition(one.id, JobState.PREPARING)
    store.update(other.id, epoch=1)  # no event: nobody is told
    assert heard == [{one.id}, {one.id}]
    wire = store.recent_wire(one.id, after_seq=1)
    assert [w.kind for w in wire] == ["log", "log", "status"]
    assert [pb.JobEvent.FromString(w.data).log.text for w in wire[:2]] == ["a", "b"]
    assert [w.seq for w in wire] == [e.seq for e in store.events(one.id, 1)]
    assert store.recent_wire(one.id, after_seq=1, include_logs=False)[0].kind == "status"
    store.transition(one.id, JobState.CANCELLED, "stop")
    assert store.recent_wire(one.id, after_seq=wire[-1].seq)[0].final  # the run's last word


def test_watchers_read_older_events_from_the_database(tmp_path):
    store = JobStore(tmp_path / "state.db")
    job = new_job(store)
    store.add_logs(job.id, [f"line {i}" for i in range(5)])
    store.close()
    again = JobStore(tmp_path / "state.db")  # a restarted daemon: nothing in memory yet
    assert again.recent_wire(job.id, after_seq=0) is None
    wire = again.wire_events(job.id, after_seq=0)
    assert [w.kind for w in wire] == ["status", *["log"] * 5]
    assert pb.JobEvent.FromString(wire[-1].data).log.text == "line 4"
    again.close()


def test_report_batches_are_claimed_once(store):
    job = new_job(store)
    assert store.claim_batch(job.id, 1)
    assert not store.claim_batch(job.id, 1)       # a resend
    assert store.claim_batch(job.id, 2)
    assert not store.claim_batch(job.id, 1)       # never moves backwards
    assert store.get(job.id).last_batch_seq == 2


def test_prefix_lookup_treats_wildcards_literally(store):
    new_job(store)
    with pytest.raises(JobNotFound):
        store.get("_")
    with pytest.raises(JobNotFound):
        store.get("%")


def test_atomic_blocks_commit_all_or_nothing(tmp_path):
    """A report batch (claim + items) or a log chunk (lines + metrics + offset) is one transaction."""
    store = JobStore(tmp_path / "state.db")
    job = store.create_job({"framework": "timm"}, "j", 2)
    with pytest.raises(RuntimeError):
        with store.atomic():
            assert store.claim_batch(job.id, 1)
            store.add_metrics(job.id, 1, {"val/accuracy": 0.5})
            store.update(job.id, log_offset=120)
            raise RuntimeError("the daemon dies half-way")
    record = store.get(job.id)
    assert record.last_batch_seq == 0 and record.log_offset == 0 and not store.metrics(job.id)
    with store.atomic():
        assert store.claim_batch(job.id, 1)
        store.add_metrics(job.id, 1, {"val/accuracy": 0.5})
        store.update(job.id, log_offset=120)
    assert not store.claim_batch(job.id, 1)  # applied once: a resend is refused
    record = store.get(job.id)
    assert record.last_batch_seq == 1 and record.log_offset == 120 and store.metrics(job.id)
    assert store.metric_points(job.id)[0][:3] == ("val/accuracy", 1, 0.5)


def test_a_preparing_job_can_be_queued_again_but_a_final_one_stays_final(tmp_path):
    store = JobStore(tmp_path / "state.db")
    job = store.create_job({"framework": "timm"}, "j", 2)
    assert store.transition(job.id, JobState.PREPARING)
    assert store.transition(job.id, JobState.QUEUED, "the daemon restarted")
    assert store.next_queued().id == job.id
    assert store.transition(job.id, JobState.FAILED)
    assert not store.transition(job.id, JobState.QUEUED)


def test_a_batch_past_the_next_is_refused_and_changes_nothing(store):
    """A forged batch_seq=10**15 must not make every real batch after it look like a resend."""
    from runner.core.store import BatchOutOfOrder

    job = new_job(store)
    assert store.claim_batch(job.id, 1)
    with pytest.raises(BatchOutOfOrder, match="expected 2"):
        store.claim_batch(job.id, 10**15)
    assert store.get(job.id).last_batch_seq == 1
    assert store.claim_batch(job.id, 2)  # the real next one still counts


def test_recent_events_come_from_memory_and_match_the_database(store):
    """Watchers of a busy job read its latest events without a query; what they get is exactly what
    a read from the database gives, logs filtered the same way."""
    job = new_job(store)
    for i in range(30):
        store.add_logs(job.id, [f"line {i}"])
        if i % 5 == 0:
            store.add_metrics(job.id, i // 5 + 1, {"train/loss": 1.0 / (i + 1)})
    fresh = JobStore(store.path)  # a second store on the same file: nothing in memory yet
    try:
        for after in (0, 1, 7, 30, 35, 100):
            for logs in (True, False):
                cached = store.events(job.id, after, include_logs=logs, limit=10)
                from_db = fresh.events(job.id, after, include_logs=logs, limit=10)
                assert [e.SerializeToString() for e in cached] == [e.SerializeToString() for e in from_db]
        with pytest.raises(RuntimeError):  # a rolled-back write leaves memory as it was
            with store.atomic():
                store.add_logs(job.id, ["never"])
                raise RuntimeError
        assert "never" not in [e.log.text for e in store.events(job.id, 0)]
    finally:
        fresh.close()
