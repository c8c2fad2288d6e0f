"""Transformers image captioning in the real env: a tiny GIT and a tiny BLIP (32 px, a word-piece vocabulary written
in code) trained on drawn shapes with three captions each, scored by generation (CIDEr-D, BLEU-4), resumed, predicted
with, reloaded by plain transformers. The scores on a fixed example against pycocoevalcap's are host tests
(``tests/adapters/evaluation/test_eval_captions.py``).

GIT and BLIP train in two children of their own at once (one per core); the short runs (the checkpoint in plain
transformers, a model without a job, resume, a hub id offline) share one child (``one_process``) while the real
predict command line runs beside it."""

from __future__ import annotations

import json
import subprocess

import pytest

from adapters.evaluation.captions import caption_metrics
from adapters.metrics import VAL_CIDER, PrimaryMetric, primary_metric
from adapters.transformers.catalog import ARCHITECTURES, CAPTION, MODELS, check_model
from tests.dataset_fixtures import CAPTION_VAL, caption_references, make_captions_dataset

TRAIN_METRICS = {"train/loss", "val/loss", "val/cider", "val/bleu4", "lr"}
TRAINING = {"batch_size": 4, "learning_rate": 3e-3, "device": "cpu", "num_workers": 0, "seed": 0}


@pytest.fixture(scope="module")
def trained(hf_python, hf_script, hf_job, child_env, reporter_server, tmp_path_factory):
    """Tiny GIT and BLIP (``tests.hf_models.TINY_CAPTIONERS``) trained 2 epochs each, at once, on 8 images."""
    from tests.hf_models import TINY_CAPTIONERS

    root = tmp_path_factory.mktemp("hfcap")
    hf_script(TINY_CAPTIONERS, root / "models")
    dataset = make_captions_dataset(root / "data")
    jobs = {name: hf_job.write(root / name, "image_captioning", root / "models" / name, dataset, "captions",
                               training={**TRAINING, "epochs": 2}, advanced={"label_smoothing": smoothing})
            for name, smoothing in (("git", 0.0), ("blip", 0.1))}
    with reporter_server() as git, reporter_server() as blip, open(root / "blip.log", "w+") as log:
        other = subprocess.Popen([hf_python, "-m", "adapters.entrypoint", "--spec", str(jobs["blip"])],
                                 env=child_env(blip.address), stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            done = hf_job.run(hf_python, child_env(git.address), "--spec", jobs["git"])
        finally:
            blip_code = other.wait(timeout=300)
        log.seek(0)
        blip_log = log.read()
    return {"done": done, "server": git, "blip": (blip_code, blip_log, blip), "root": root, "dataset": dataset,
            "jobs": jobs}


#: ``PLAIN_LOAD JOB CHECKPOINT IMAGE IMAGE2``: the checkpoint in plain transformers (its classes, special ids, the
#: caption it generates for IMAGE) next to what the adapter predicts with it, alone and in a batch, and as a model
#: without a job (``load_weights``).
PLAIN_LOAD = """
import json, sys
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor, GitForCausalLM
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
job, checkpoint, image, image2 = sys.argv[1:5]
model = AutoModelForCausalLM.from_pretrained(checkpoint)
processor = AutoProcessor.from_pretrained(checkpoint)
pixels = processor(images=Image.open(image).convert("RGB"), return_tensors="pt").pixel_values
ids = model.generate(pixel_values=pixels)
adapter = build_adapter(Job.from_file(job), Reporter(None))
adapter.load_checkpoint(checkpoint)
alone = [adapter.predict(path)["text"] for path in (image, image2)]
batch = [out["text"] for out in adapter.predict_batch([image, image2])]
fresh = build_adapter(Job.from_file(job), Reporter(None))
fresh.load_weights(checkpoint)
print(json.dumps({"model": type(model).__name__, "is_git": isinstance(model, GitForCausalLM),
                  "processor": [type(processor).__name__, type(processor.tokenizer).__name__],
                  "ids": [model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id],
                  "max_length": model.generation_config.max_length, "generated": ids.shape[-1],
                  "text": processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip(),
                  "predicted": adapter.predict(image), "alone": alone, "batch": batch,
                  "without a job": fresh.predict(image)["text"]}))
"""


def reporter_variables(child_env, address: str) -> dict[str, str]:
    """What the daemon puts in a child's environment to report to ``address``."""
    return {k: v for k, v in child_env(address).items() if k.startswith("VISIONYARD_")}


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process):
    """The short runs, in one child process (``in_one_process``): the checkpoint in plain transformers, resume from
    epoch 1 to 3 (``adapters.entrypoint.main``, as its command line), a hub id offline. Meanwhile (a second core),
    ``cli``: the real command line the daemon runs, ``python -m adapters.entrypoint --predict``, on val image 1."""
    root, jobs = trained["root"], trained["jobs"]
    checkpoints = [c for c in trained["server"].of_kind("checkpoint") if c.kind == "last"]
    first = checkpoints[0].path if checkpoints else str(root / "no-checkpoint")  # each test says what failed
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")
    images = [str(trained["dataset"] / "val" / "images" / f"{i}.png") for i in (0, 1)]
    resumed = hf_job.write(root / "resumed", "image_captioning", root / "models" / "git", trained["dataset"],
                           "captions", training={**TRAINING, "epochs": 3}, resume=first)
    hub = hf_job.write(root / "hub", "image_captioning", "microsoft/git-base", trained["dataset"], "captions")
    with reporter_server() as resume_server, reporter_server() as hub_server:
        reporting = {"resume": reporter_variables(child_env, resume_server.address),
                     "hub": {**reporter_variables(child_env, hub_server.address), "HF_HUB_OFFLINE": "1"}}
        steps = {"plain transformers": {"script": PLAIN_LOAD, "argv": [str(jobs["git"]), last, *images]},
                 "resume": {"argv": ["--spec", str(resumed)], "env": reporting["resume"]},
                 "hub id offline": {"argv": ["--spec", str(hub)], "env": reporting["hub"]}}
        with in_one_process.start(hf_python, child_env(HF_HOME=str(root / "empty-hf-home")), steps) as running:
            cli = hf_job.run(hf_python, child_env(), "--spec", jobs["git"], "--predict", images[1], "--checkpoint",
                             last)
            out = running.result()
    return {"out": out, "cli": cli, "resume": resume_server, "hub": hub_server}


def finished(step: dict) -> dict:
    """A step of ``one_process`` that ran to its end, exit code 0."""
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_git_trains_reports_cider_and_bleu4_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert TRAIN_METRICS <= set(m.values)
        assert m.values["val/cider"] >= 0 and 0 <= m.values["val/bleu4"] <= 1
    ciders = [m.values["val/cider"] for m in metrics]  # best = the highest CIDEr-D (the first of equals)
    best = [c for c in server.of_kind("checkpoint") if c.kind == "best"]
    assert best and best[-1].epoch == ciders.index(max(ciders)) + 1
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-4")  # 8 images / 4 a batch, 2 epochs
    folder = trained["root"] / "git" / "checkpoints" / "checkpoint-4"
    for name in ("config.json", "generation_config.json", "processor_config.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    assert "\r" not in done.stdout + done.stderr


def test_blip_trains_too(trained):
    code, log, server = trained["blip"]
    assert code == 0, log[-4000:]
    assert [m.step for m in server.of_kind("metrics")] == [1, 2]
    assert all(TRAIN_METRICS <= set(m.values) for m in server.of_kind("metrics"))
    # the model's own loss (BLIP's label smoothing is built in): the Trainer's smoother would misalign GIT's logits
    assert "advanced.label_smoothing is not used for image captioning" in log


def test_each_evaluation_records_every_sample_lowest_cider_first(trained):
    """``results/val/``: a record per epoch with each val image's caption, its references and its CIDEr-D and
    BLEU-4, the lowest CIDEr-D first; its metrics are what the epoch reported, and scoring its captions again
    gives them (the set's CIDEr-D is the mean of the samples')."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    reported = {m.step: dict(m.values) for m in trained["server"].of_kind("metrics")}
    results = trained["root"] / "git" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, 2, "epoch-0001.json"), (2, 4, "epoch-0002.json")]
    references = {f"val/images/{i}.png": caption_references(*shape) for i, shape in enumerate(CAPTION_VAL)}
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"]) == ("image_captioning",
                                                                            "visionyard.captions", [])
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        rows = record["per_image"]
        assert sorted(row["image"] for row in rows) == sorted(references)
        assert [row["cider"] for row in rows] == sorted(row["cider"] for row in rows)
        assert all(row["references"] == references[row["image"]] for row in rows)
        again = caption_metrics([row["prediction"] for row in rows], [row["references"] for row in rows])
        assert again == {"cider": pytest.approx(record["metrics"]["val/cider"]),
                         "bleu4": pytest.approx(record["metrics"]["val/bleu4"])}
        assert record["metrics"]["val/cider"] == pytest.approx(sum(row["cider"] for row in rows) / len(rows))


def test_the_checkpoint_loads_in_plain_transformers_and_predict_gives_its_caption(one_process):
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded["model"] == "GitForCausalLM" and loaded["is_git"]
    assert loaded["processor"] == ["GitProcessor", "BertTokenizer"]
    assert loaded["ids"] == [2, 3, 0]  # [CLS], [SEP], [PAD] of the vocabulary written in the test
    assert loaded["max_length"] == 32 and loaded["generated"] <= 32  # the text model's 32 positions cap the 64 asked
    predicted = loaded["predicted"]
    assert predicted["task"] == "image_captioning" and predicted["predictions"] == []
    assert predicted["text"] == loaded["text"] == loaded["alone"][0]  # what plain generate() decodes to
    assert loaded["batch"] == loaded["alone"]  # a batch captions each image as it is captioned alone
    assert loaded["without a job"] == loaded["text"]


def test_predict_in_the_child_prints_the_caption(one_process):
    done = one_process["cli"]  # the real command line
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "image_captioning" and (response["width"], response["height"]) == (48, 40)
    assert response["predictions"] == [] and isinstance(response.get("text", ""), str)


def test_resume_continues_at_the_next_epoch(one_process, trained):
    finished(one_process["out"]["resume"])
    server = one_process["resume"]
    assert [m.step for m in server.of_kind("metrics")] == [2, 3]  # resumed after epoch 1, on to the 3 asked
    assert all(TRAIN_METRICS <= set(m.values) for m in server.of_kind("metrics"))
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-6")
    index = json.loads((trained["root"] / "resumed" / "results" / "val" / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(2, 4), (3, 6)]


def test_an_uncached_hub_id_offline_fails_fast_with_what_to_do(one_process):
    done, server = one_process["out"]["hub id offline"], one_process["hub"]
    assert done["code"] == 1, done["error"]
    [error] = server.of_kind("error")
    assert "'microsoft/git-base' is not in the local Hugging Face cache" in error.message
    assert "save_pretrained" in error.message and done["seconds"] < 60


def test_the_catalog_lists_the_captioning_models_and_the_best_is_the_highest_cider():
    assert primary_metric("image_captioning") == PrimaryMetric(VAL_CIDER)
    captioners = {m.name: m for m in MODELS if CAPTION in m.tasks}
    assert {"microsoft/git-base", "microsoft/git-large", "Salesforce/blip-image-captioning-base",
            "Salesforce/blip2-opt-2.7b"} <= set(captioners)
    assert {"gpu-only", "too-big-for-tests"} <= set(captioners["Salesforce/blip2-opt-2.7b"].tags)
    assert ARCHITECTURES[CAPTION] == ("git", "blip", "blip-2")
    assert check_model("microsoft/git-base", CAPTION) is None
    assert check_model("microsoft/git-base", "ocr") == "'microsoft/git-base' is a model for image_captioning, not ocr"
