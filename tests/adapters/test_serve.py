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


#: ``python -m adapters.entrypoint``'s own argument parsing, with a fake adapter that has ``load_weights``
#: (its labels say what it was given) or, with ``--no-load-weights`` first, only ``load_checkpoint``.
ENTRYPOINT = textwrap.dedent("""
    import sys
    import adapters.entrypoint as entrypoint

    class Checkpoints:
        def load_checkpoint(self, path):
            self.loaded = f"checkpoint {path}"

        def predict(self, image, top_k=5, annotate=False):
            return [{"label": self.loaded, "score": 1.0, "index": 0}]

    class Models(Checkpoints):
        def load_weights(self, weights):
            self.loaded = f"weights {weights!r}"

    bare = sys.argv[1] == "--no-load-weights"
    entrypoint.build_adapter = lambda job, reporter: Checkpoints() if bare else Models()
    sys.exit(entrypoint.main(sys.argv[1 + bare:]))
""")


@pytest.mark.parametrize(("args", "loaded"), [(["--weights", "/abs/r50.pth"], "weights '/abs/r50.pth'"),
                                              (["--pretrained"], "weights None"),
                                              (["--checkpoint", "best.pt"], "checkpoint best.pt")])
def test_serve_without_a_job_hands_load_weights_its_weights_or_none_for_pretrained(tmp_path, args, loaded):
    spec = {"framework": "timm", "task": "image_classification", "model": "resnet50", "pretrained": True,
            "dataset": {"path": "", "format": "imagefolder"},
            "training": {"epochs": 1, "batch_size": 1, "learning_rate": 0.001}}
    (tmp_path / "job.json").write_text(json.dumps({"job_id": "model-x", "spec": spec}))
    command = [sys.executable, "-c", ENTRYPOINT, "--spec", str(tmp_path / "job.json"), "--serve"]
    with subprocess.Popen([*command, *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        assert json.loads(proc.stdout.readline())["ready"] is True
        answer = ask(proc, {"id": 1, "items": [{"image": image(tmp_path, "a.png")}]})
        proc.stdin.close()
        assert proc.wait(10) == 0
    assert answer["results"][0]["result"]["predictions"][0]["label"] == loaded

    if args[0] != "--checkpoint":  # an adapter without load_weights says so
        done = subprocess.run([*command[:3], "--no-load-weights", *command[3:], *args], cwd=ROOT,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert (done.returncode, done.stdout) == (1, "")
        what = "/abs/r50.pth" if args[0] == "--weights" else "its pretrained weights"
        assert (f"predict worker could not load {what}: NotImplementedError: timm predicts only with a job's "
                "checkpoint") in done.stderr


def test_serve_takes_exactly_one_of_checkpoint_weights_pretrained(tmp_path):
    (tmp_path / "job.json").write_text("{}")
    for args in ([], ["--weights", "w.pth", "--pretrained"], ["--checkpoint", "c.pt", "--weights", "w.pth"]):
        done = subprocess.run([sys.executable, "-c", ENTRYPOINT, "--spec", str(tmp_path / "job.json"), "--serve",
                               *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, args
        assert "--serve needs one of --checkpoint, --weights, --pretrained" in done.stderr
