"""Transformers OCR in the real env: a tiny ViT + TrOCR-decoder model with a byte tokenizer saved to a
folder, trained on drawn text, evaluated by generation (CER/WER), predicted with, reloaded by plain
transformers; each evaluation's validation record. The error rates on hand-made cases are host tests
(``tests/adapters/evaluation/test_eval_ocr.py``); torchmetrics agrees with them here.

Training and one predict run the real entrypoint in a child of their own; the scripts that need the env (the
checkpoint in plain transformers, torchmetrics) share one child (``one_process``), so the imports are paid once."""

from __future__ import annotations

import json

import pytest

from adapters.evaluation.ocr import edit_distance, text_metrics
from adapters.metrics import VAL_CER, PrimaryMetric, primary_metric
from adapters.transformers.tasks.ocr import OCRTask
from tests.dataset_fixtures import OCR_VAL_TEXTS, make_ocr_dataset


@pytest.fixture(scope="module")
def trained(tiny_hf_models, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfocr")
    dataset = make_ocr_dataset(root / "data")
    job = hf_job.write(root / "job", "ocr", tiny_hf_models["trocr"], dataset, "ocr", epochs=2)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "dataset": dataset, "job": job}


#: ``PLAIN_LOAD JOB CHECKPOINT IMAGE``: the checkpoint in plain transformers (its processor, special ids, generation
#: settings and text for IMAGE) next to what the adapter predicts with it.
PLAIN_LOAD = """
import json, sys
from PIL import Image
from transformers import AutoProcessor, VisionEncoderDecoderModel
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
model = VisionEncoderDecoderModel.from_pretrained(sys.argv[2])
processor = AutoProcessor.from_pretrained(sys.argv[2])
pixels = processor(images=Image.open(sys.argv[3]).convert("RGB"), return_tensors="pt").pixel_values
ids = model.generate(pixel_values=pixels)
adapter = build_adapter(Job.from_file(sys.argv[1]), Reporter(None))
adapter.load_checkpoint(sys.argv[2])
print(json.dumps({"processor": type(processor).__name__, "tokenizer": type(processor.tokenizer).__name__,
                  "ids": [model.config.decoder_start_token_id, model.config.pad_token_id, model.config.eos_token_id],
                  "max_length": model.generation_config.max_length, "generated": ids.shape[-1],
                  "text": processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip(),
                  "predicted": adapter.predict(sys.argv[3])}))
"""

#: ``TORCHMETRICS CASES_JSON``: torchmetrics' CER and WER of each (predicted, expected) case.
TORCHMETRICS = """
import json, sys
from torchmetrics.text import CharErrorRate, WordErrorRate
cases = json.loads(sys.argv[1])
print(json.dumps([[float(CharErrorRate()(p, e)), float(WordErrorRate()(p, e))] for p, e in cases]))
"""
TORCHMETRICS_CASES = [(["abd"], ["abc"]), (["the cat sit", "a"], ["the cat sat", "ab"]),
                      (["hello wrld", ""], ["hello world", "x y"])]


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, in_one_process):
    """The scripts, in one child process (``in_one_process``). Meanwhile (a second core), ``cli``: the real
    command line the daemon runs, ``python -m adapters.entrypoint --predict``, on val image 1."""
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(trained["root"] / "no-checkpoint")  # each test fails alone
    steps = {"plain transformers": {"script": PLAIN_LOAD, "argv": [str(trained["job"]), last, str(
                 trained["dataset"] / "val" / "images" / "0.png")]},
             "torchmetrics": {"script": TORCHMETRICS, "argv": [json.dumps(TORCHMETRICS_CASES)]}}
    with in_one_process.start(hf_python, child_env(HF_HUB_OFFLINE="1"), steps) as running:
        cli = hf_job.run(hf_python, child_env(), "--spec", trained["job"], "--predict",
                         trained["dataset"] / "val" / "images" / "1.png", "--checkpoint", last)
        out = running.result()
    return {"out": out, "cli": cli}


def finished(step: dict) -> dict:
    """A step of ``one_process`` that ran to its end, exit code 0."""
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_trains_reports_error_rates_and_checkpoint_folders(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert {"train/loss", "val/loss", "val/cer", "val/wer", "lr"} <= set(m.values)
        assert m.values["val/cer"] >= 0 and m.values["val/wer"] >= 0
    # best = the lowest CER (the first of equals): the Trainer was told lower is better
    cers = [m.values["val/cer"] for m in metrics]
    best = [c for c in server.of_kind("checkpoint") if c.kind == "best"]
    assert best and best[-1].epoch == cers.index(min(cers)) + 1
    result = server.of_kind("result")[0]
    assert result.last_checkpoint.endswith("checkpoint-4")  # 8 train images / 4 per batch, 2 epochs
    folder = trained["root"] / "job" / "checkpoints" / "checkpoint-4"
    for name in ("config.json", "generation_config.json", "processor_config.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    assert "\r" not in done.stdout + done.stderr


def test_each_evaluation_records_every_sample_worst_first(trained):
    """``results/val/``: a record per epoch with each val image's reference, prediction and CER, the highest
    CER first; its metrics are what the epoch reported, and its CERs give the reported (summed) CER."""
    assert trained["done"].returncode == 0, trained["done"].stderr[-4000:]
    reported = {m.step: dict(m.values) for m in trained["server"].of_kind("metrics")}
    results = trained["root"] / "job" / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"], e["file"]) for e in index] == [(1, 2, "epoch-0001.json"), (2, 4, "epoch-0002.json")]
    names = {f"val/images/{i}.png": text for i, text in enumerate(OCR_VAL_TEXTS)}
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"], record["per_class"]) == ("ocr", "visionyard.ocr",
                                                                                                 [], [])
        assert record["confusion_matrix"] is None
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        rows = record["per_image"]
        assert sorted(row["image"] for row in rows) == sorted(names)  # every val sample once
        assert [row["cer"] for row in rows] == sorted((row["cer"] for row in rows), reverse=True)
        for row in rows:
            assert row["target"] == names[row["image"]]
            assert row["cer"] == pytest.approx(edit_distance(row["prediction"], row["target"]) / len(row["target"]))
        edits = sum(round(row["cer"] * len(row["target"])) for row in rows)
        assert record["metrics"]["val/cer"] == pytest.approx(edits / sum(len(t) for t in OCR_VAL_TEXTS))


def test_the_checkpoint_loads_in_plain_transformers_and_predict_gives_its_text(one_process):
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded["processor"] == "TrOCRProcessor" and loaded["tokenizer"] == "ByT5Tokenizer"
    assert loaded["ids"] == [0, 0, 1]  # start (the model's own), pad and </s> (the tokenizer's)
    assert loaded["max_length"] == 64 and loaded["generated"] <= 64  # generation.max_length's default
    predicted = loaded["predicted"]
    assert predicted["task"] == "ocr" and predicted["predictions"] == []
    assert isinstance(predicted["text"], str) and predicted["text"] == loaded["text"]


def test_predict_in_the_child_prints_the_text(one_process):
    done = one_process["cli"]  # the real command line
    assert done.returncode == 0, done.stderr[-4000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["task"] == "ocr" and (response["width"], response["height"]) == (64, 32)
    assert response["predictions"] == []
    assert isinstance(response.get("text", ""), str)  # the entrypoint leaves out an empty text


def test_the_best_checkpoint_is_the_one_with_the_lowest_cer():
    assert primary_metric("ocr") == PrimaryMetric(VAL_CER, higher_is_better=False)
    assert f"val/{OCRTask.primary}" == VAL_CER


def test_error_rates_match_torchmetrics(one_process):
    expected = finished(one_process["out"]["torchmetrics"])["json"]
    for (predicted, reference), (cer, wer) in zip(TORCHMETRICS_CASES, expected, strict=True):
        assert text_metrics(predicted, reference) == {"cer": pytest.approx(cer), "wer": pytest.approx(wer)}
