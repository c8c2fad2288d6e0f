"""Videos for a video classification job, through `main(argv)` and the client against the real servicer
with a stand-in worker (tests/runner/predict_child.py): each video file goes whole to the worker (not
split into frames), a folder gives its videos only, and the daemon refuses an image for a video job, a
video for an image job, and bytes of neither, each saying what to send."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest

from runner.client import Client, ClientError
from tests.runner.cli.test_predict_many import write_video
from tests.runner.predict_served import png


def video_job(s) -> str:
    return s.add_job(task="video_classification")


def sent_whole(path) -> str:
    """What the stand-in worker answers (as text) for the whole file at `path`."""
    data = path.read_bytes()
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}"


def test_a_video_goes_whole_to_a_video_jobs_worker_and_shows_its_top_k(served, cli, tmp_path):
    s = served()
    job = video_job(s)
    video = write_video(tmp_path / "clip.mp4", frames=20)
    code, out = cli("predict", job, str(video), "--top-k", "2", "--address", s.address)
    assert code == 0, out
    assert "task video_classification, video 32x32, 2 prediction(s)" in out
    assert "1. left" in out and "2. still" in out and f"text: {sent_whole(video)}" in out
    (child,) = s.children(job).values()
    assert [images for images, _ in child["batches"]] == [1]  # one video, not its 20 frames
    code, out = cli("predict", job, str(video), "--json", "--address", s.address)
    assert code == 0 and json.loads(out)["predictions"][0]["label"] == "left"


def test_stride_is_refused_for_a_video_job_whose_model_takes_the_whole_video(served, cli, tmp_path):
    s = served()
    job = video_job(s)
    video = write_video(tmp_path / "clip.mp4", frames=6)
    for sources in ([str(video)], [str(tmp_path)]):
        code, out = cli("predict", job, *sources, "--stride", "5", "--address", s.address)
        assert code == 2 and "--stride 5 picks frames of a video" in out and "predict without --stride" in out
    assert not s.children(job)  # nothing was sent


def test_a_folder_of_a_video_job_sends_its_videos_whole_and_leaves_its_images(served, cli, tmp_path):
    s = served()
    job = video_job(s)
    folder = tmp_path / "clips"
    (folder / "b").mkdir(parents=True)
    first, second = write_video(folder / "a.mp4", frames=6), write_video(folder / "b" / "c.avi", frames=4)
    (folder / "b" / "thumb.png").write_bytes(png((8, 8)))
    code, out = cli("predict", job, str(folder), "--out", str(tmp_path / "preds"), "--address", s.address)
    assert code == 0, out
    lines = [json.loads(line) for line in (tmp_path / "preds" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["index"], r["file"], r["text"]) for r in lines] == [(0, str(first), sent_whole(first)),
                                                                    (1, str(second), sent_whole(second))]
    assert all(r["predictions"][0]["label"] == "left" and "frame" not in r for r in lines)
    assert "2 of 2 video(s) predicted" in out
    code, out = cli("predict", job, str(tmp_path / "preds"), "--address", s.address)  # no videos there
    assert code == 2 and "no videos in" in out and ".mp4" in out


def test_a_video_over_the_message_limit_is_named_and_not_read(served, cli, tmp_path, monkeypatch):
    import runner.cli.predict_many as predict_many

    s = served()
    job = video_job(s)
    small, large = write_video(tmp_path / "small.mp4", frames=2), write_video(tmp_path / "large.mp4", frames=30)
    monkeypatch.setattr(predict_many, "MAX_IMAGE_BYTES", small.stat().st_size)
    code, out = cli("predict", job, str(small), str(large), "--json", "--address", s.address)
    assert code == 1
    assert f"skipped video '{large}' is" in out and "trim or re-encode it first" in out
    assert [json.loads(line)["file"] for line in out.splitlines() if line.startswith("{")] == [str(small)]


def test_the_daemon_refuses_what_a_jobs_task_does_not_predict_from(served, tmp_path):
    s = served()
    job = video_job(s)
    video = write_video(tmp_path / "clip.mp4", frames=4).read_bytes()
    cases = [(job, png((8, 8)), "a video_classification model predicts from a video file, not an image"),
             (job, b"GIF89a but not really" + bytes(64), "are not a video file (no MP4/QuickTime, AVI or Matroska"),
             (s.job_id, video, "are a video file (mp4); a classification model predicts from images: send its frames")]
    with Client(s.address) as client:
        for job_id, data, message in cases:
            with pytest.raises(ClientError) as refused:
                client.predict(job_id, data)
            assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT and message in str(refused.value)
        answers = list(client.predict_many(job, [("clip.mp4", video), ("a.png", png((8, 8)))]))
    assert answers[0].result.text == f"{len(video)} bytes, sha256 {hashlib.sha256(video).hexdigest()}"
    assert "predicts from a video file, not an image" in answers[1].error
    assert not list(s.job_dir.parent.glob("*/predict-image-*"))  # nothing left in the job dirs
