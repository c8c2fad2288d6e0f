"""`visionyard predict` over many images and `visionyard workers`, through `main(argv)` against the
real servicer with a stand-in worker (tests/runner/predict_child.py): folders, globs and files in
order, each image's error its own, predictions.jsonl and the annotated images in --out, and the
workers' table with nothing a user copies cut."""

from __future__ import annotations

import json

from tests.runner.predict_served import png


def folder_of_images(root):
    """root/a/01.png, root/a/02.png, root/b/notes.jpg (text), root/b/small.png (5×5: the worker's
    error), root/readme.txt (not an image suffix: not looked at)."""
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "01.png").write_bytes(png((8, 8)))
    (root / "a" / "02.png").write_bytes(png((8, 8)))
    (root / "b" / "notes.jpg").write_text("not an image")
    (root / "b" / "small.png").write_bytes(png((5, 5)))
    (root / "readme.txt").write_text("hello")
    return root


def test_a_folder_goes_in_order_into_predictions_jsonl_and_annotated_images(served, cli, tmp_path):
    s = served()
    images = folder_of_images(tmp_path / "images")
    code, out = cli("predict", s.job_id, str(images), "--out", str(tmp_path / "preds"), "--address", s.address)
    assert code == 1  # two images were not predicted
    lines = [json.loads(line) for line in (tmp_path / "preds" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["index"], r["file"]) for r in lines] == [
        (0, str(images / "a" / "01.png")), (1, str(images / "a" / "02.png")),
        (2, str(images / "b" / "notes.jpg")), (3, str(images / "b" / "small.png"))]
    assert lines[0]["predictions"][0]["label"] == "red" and lines[0]["annotated"] == "01.png"
    assert "not an image" in lines[2]["error"] and "cannot identify image file" in lines[3]["error"]
    assert (tmp_path / "preds" / "01.png").read_bytes() == png((8, 8))
    assert "2 of 4 image(s) predicted" in out
    assert f"not predicted: {images / 'b' / 'notes.jpg'}" in out


def test_files_and_a_glob_print_one_json_line_per_image(served, cli, tmp_path):
    s = served()
    images = folder_of_images(tmp_path / "images")
    code, out = cli("predict", s.job_id, str(images / "a" / "02.png"), str(images / "a" / "*.png"), "--json",
                    "--address", s.address)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in lines] == [str(images / "a" / n) for n in ("02.png", "01.png", "02.png")]
    assert all(r["predictions"][0]["label"] == "red" and "image_png" not in r for r in lines)


def test_plain_output_is_a_line_per_image(served, cli, tmp_path):
    s = served()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png((8, 8)))
    b.write_bytes(png((8, 8)))
    code, out = cli("predict", s.job_id, str(a), str(b), str(tmp_path / "gone.png"), "--address", s.address)
    assert code == 1
    assert f"{a}: 1 prediction(s); best red" in out and f"{b}: 1 prediction(s); best red" in out
    assert f"{tmp_path / 'gone.png'}: error: cannot read image" in out


def test_nothing_to_predict_is_a_clear_error(served, cli, tmp_path):
    s = served()
    (tmp_path / "empty").mkdir()
    code, out = cli("predict", s.job_id, str(tmp_path / "empty"), "--address", s.address)
    assert code == 2 and "no images in" in out and ".png" in out


def test_workers_lists_each_whole_at_80_columns_and_stops_them(served, cli, tmp_path):
    s = served()
    image = tmp_path / "a.png"
    image.write_bytes(png((8, 8)))
    assert cli("predict", s.job_id, str(image), "--address", s.address)[0] == 0
    code, out = cli("workers", "--address", s.address, columns=80)
    assert code == 0
    assert s.job_id in out and str(s.job_dir / "best.pt") in out and "ready" in out
    (worker,) = json.loads(cli("workers", s.job_id, "--json", "--address", s.address)[1])
    assert set(worker) == {"job_id", "checkpoint", "runtime", "pid", "state", "device", "rss_bytes", "served",
                           "started_at", "idle_seconds", "load_ms"}
    assert worker["served"] == 1 and isinstance(worker["rss_bytes"], int)
    assert json.loads(cli("workers", "--stop", "--json", "--address", s.address)[1]) == {"stopped": 1}
    assert "no predict workers" in cli("workers", "--address", s.address)[1]


def write_video(path, frames: int, size=(64, 48), fps: float = 10.0):
    """An MP4 whose frame i has a white square at x = i."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[10:20, i:i + 10] = 255
        writer.write(frame)
    writer.release()
    return path


def test_a_video_every_nth_frame_with_times_and_an_annotated_video(served, cli, tmp_path):
    import cv2

    s = served()
    video = write_video(tmp_path / "clip.mp4", frames=20)
    code, out = cli("predict", s.job_id, str(video), "--stride", "5", "--out", str(tmp_path / "preds"),
                    "--address", s.address)
    assert code == 0, out
    lines = [json.loads(line) for line in (tmp_path / "preds" / "predictions.jsonl").read_text().splitlines()]
    assert [(r["file"], r["frame"], r["time_s"]) for r in lines] == [
        (str(video), f, f / 10.0) for f in (0, 5, 10, 15)]
    assert all(r["annotated"] == "clip.annotated.mp4" and r["predictions"] for r in lines)
    annotated = cv2.VideoCapture(str(tmp_path / "preds" / "clip.annotated.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 4 and annotated.get(cv2.CAP_PROP_FPS) == 2.0
    assert (int(annotated.get(cv2.CAP_PROP_FRAME_WIDTH)), int(annotated.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (64, 48)
    assert "4 of 4 image(s) predicted" in out


def test_a_truncated_video_is_named_and_the_images_beside_it_go_on(served, cli, tmp_path):
    s = served()
    video = write_video(tmp_path / "clip.mp4", frames=20)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    image = tmp_path / "a.png"
    image.write_bytes(png((8, 8)))
    code, out = cli("predict", s.job_id, str(video), str(image), "--json", "--address", s.address)
    assert code == 1
    assert f"skipped cannot read video '{video}'" in out and "truncated" in out
    assert [json.loads(line)["file"] for line in out.splitlines() if line.startswith("{")] == [str(image)]


def test_format_coco_writes_results_pycocotools_loads(served, cli, tmp_path):
    from pycocotools.coco import COCO

    s = served()
    images = folder_of_images(tmp_path / "images")
    code, out = cli("predict", s.job_id, str(images / "a"), "--out", str(tmp_path / "preds"), "--format", "coco",
                    "--address", s.address)
    assert code == 0, out
    results = json.loads((tmp_path / "preds" / "results.coco.json").read_text())
    assert results == [{"image_id": i, "category_id": 0, "score": 0.9, "bbox": [1.0, 2.0, 4.0, 4.0]} for i in (0, 1)]
    truth = COCO()
    truth.dataset = {"images": [{"id": i, "width": 8, "height": 8} for i in (0, 1)],
                     "categories": [{"id": 0, "name": "red"}], "annotations": []}
    truth.createIndex()
    assert len(truth.loadRes(str(tmp_path / "preds" / "results.coco.json")).anns) == 2


def test_format_coco_needs_out(served, cli, tmp_path):
    s = served()
    code, out = cli("predict", s.job_id, str(folder_of_images(tmp_path / "images")), "--format", "coco",
                    "--address", s.address)
    assert code == 2 and "--format coco writes DIR/results.coco.json: give --out DIR" in out
