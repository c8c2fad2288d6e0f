"""The warm predict worker's loop (adapters/serve.py) as the daemon drives it: a real child process
speaking JSON lines, with a fake adapter in place of a framework's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent("""
    import sys
    import adapters.entrypoint as entrypoint

    class Fake:
        def load_checkpoint(self, path):
            if path == "missing.pt":
                raise FileNotFoundError(path)
            print("a framework's chatter on stdout")

        def predict(self, image, top_k=5, annotate=False):
            print("predicting", image)
            return [{"label": "one", "score": 0.9, "index": 1}][:top_k]

        def predict_batch(self, images, top_k, annotate):
            print("a batch of", len(images))
            if any("poison" in i for i in images):
                raise RuntimeError("the batch fails")
            return [{"task": "image_classification", "predictions": [{"label": f"b{n}", "score": 1.0, "index": n}],
                     "timings_ms": {"inference": 2.0}} for n in range(len(images))]

    entrypoint.build_adapter = lambda job, reporter: Fake()
    from adapters.serve import serve
    sys.exit(serve(sys.argv[1], sys.argv[2], 1_000_000))
""")


@pytest.fixture
def worker(tmp_path):
    spec = {"framework": "timm", "task": "image_classification", "model": "resnet18",
            "dataset": {"path": str(tmp_path), "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 2, "learning_rate": 0.01}}
    (tmp_path / "job.json").write_text(json.dumps({"job_id": "j", "spec": spec}))
    started = []

    def start(checkpoint: str = "ckpt.pt") -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "job.json"), checkpoint], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def image(tmp_path: Path, name: str, size=(20, 10)) -> str:
    path = tmp_path / name
    Image.new("RGB", size).save(path, "PNG")
    return str(path)


def ask(proc, request: dict) -> dict:
    proc.stdin.write(json.dumps(request) + "\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_the_worker_loads_once_then_answers_batches_and_only_answers_reach_its_stdout(worker, tmp_path):
    proc = worker()
    ready = json.loads(proc.stdout.readline())
    assert ready["ready"] is True and ready["pid"] == proc.pid and ready["load_ms"] >= 0
    one = ask(proc, {"id": 1, "items": [{"image": image(tmp_path, "a.png"), "top_k": 1}]})
    assert one["id"] == 1
    (result,) = one["results"]
    assert result["result"]["predictions"] == [{"label": "one", "score": 0.9, "index": 1}]
    assert (result["result"]["width"], result["result"]["height"]) == (20, 10)
    assert {"load", "total"} <= set(result["result"]["timings_ms"])
    both = ask(proc, {"id": 2, "items": [{"image": image(tmp_path, "b.png")}, {"image": image(tmp_path, "c.png")}]})
    assert [r["result"]["predictions"][0]["label"] for r in both["results"]] == ["b0", "b1"]  # one predict_batch call
    proc.stdin.close()
    assert proc.wait(10) == 0  # the end of stdin (its daemon gone) ends it
    err = proc.stderr.read()
    assert "a framework's chatter on stdout" in err and "a batch of 2" in err  # into the log, not the answers


def test_a_bad_image_is_its_items_error_and_a_failed_batch_is_retried_one_by_one(worker, tmp_path):
    proc = worker()
    proc.stdout.readline()
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    answer = ask(proc, {"id": 7, "items": [{"image": image(tmp_path, "ok.png")}, {"image": str(text)},
                                           {"image": str(tmp_path / "gone.png")},
                                           {"image": image(tmp_path, "poison.png")}]})
    ok, bad, gone, poison = answer["results"]
    assert ok["result"]["predictions"][0]["label"] == "one"  # the batch failed: each image went alone
    assert poison["result"]["predictions"][0]["label"] == "one"
    assert bad == {"error": "ValueError: notes.jpg is not an image (no image format reads its header)"}
    assert "error" in gone and "gone.png" in gone["error"]


def test_a_checkpoint_that_does_not_load_ends_the_worker_with_the_reason(worker):
    proc = worker("missing.pt")
    assert proc.stdout.readline() == ""
    assert proc.wait(10) == 1
    assert "could not load missing.pt: FileNotFoundError" in proc.stderr.read()
