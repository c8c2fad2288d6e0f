"""Transformers visual question answering in the real env: a tiny ViLT (a classifier over the training answers,
soft VQA-score targets) and a tiny BLIP (generative) built from configs with a word-piece tokenizer made in code,
each trained 2 epochs as a bare child on coloured squares asked two questions each; the VQA accuracy each epoch
with every question's row in the record, worst first; predict answers a question; resume; the checkpoints in plain
transformers. The metric on hand-made cases is a host test (``tests/adapters/evaluation/test_eval_vqa.py``).

Everything runs in one child process (``in_one_process``: each run through ``adapters.entrypoint.main``, what the
command line calls), so torch and transformers are imported once."""

from __future__ import annotations

import json

import pytest

from adapters.evaluation.vqa import vqa_score
from adapters.metrics import VAL_VQA_ACCURACY, PrimaryMetric, primary_metric
from adapters.transformers.catalog import check_model
from tests.dataset_fixtures import VQA_SPLITS, make_vqa_dataset, vqa_questions
from tests.hf_models import TINY_VQA

STEPS = 3  # optimizer steps per epoch: 12 training questions, 4 per batch
#: ViLT's answer vocabulary from the training answers, normalised, by summed VQA score: "no" 4 x 1.0, "yes" 2 x 1.0,
#: each colour 2 x 0.75 (3 of 4 people), "white" 6 x 0.25.
VOCABULARY = ["no", "yes", "blue", "green", "red", "white"]

#: ``PLAIN_LOAD JOB_DIR...``: each job's last checkpoint in plain transformers, answering the first val question about
#: the first val image, next to what the adapter predicts with it.
PLAIN_LOAD = """
import json, sys
from pathlib import Path
from PIL import Image
from transformers import AutoModelForVisualQuestionAnswering, AutoProcessor
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
out = {}
for job_dir in sys.argv[1:]:
    job = Job.from_file(Path(job_dir) / "job.json")
    checkpoint = max((Path(job_dir) / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    model = AutoModelForVisualQuestionAnswering.from_pretrained(checkpoint)
    processor = AutoProcessor.from_pretrained(checkpoint)
    image = str(Path(job.spec.dataset.path) / "val" / "images" / "0.png")
    inputs = processor(images=Image.open(image).convert("RGB"), text="What colour is it?", return_tensors="pt")
    if model.config.model_type == "vilt":
        answer = model.config.id2label[model(**inputs).logits[0].argmax().item()]
    else:
        answer = processor.tokenizer.decode(model.generate(**inputs)[0], skip_special_tokens=True).strip()
    adapter = build_adapter(job, Reporter(None))
    adapter.load_checkpoint(checkpoint)
    out[Path(job_dir).name] = {"model": type(model).__name__, "processor": type(processor).__name__,
                               "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
                               "answer": answer, "predicted": adapter.predict(image, question="What colour is it?")}
print(json.dumps(out))
"""


#: ``WITHOUT_A_JOB CASES_JSON``: per case, a model without a job (``load_weights(None)``: the job's ``model`` folder)
#: predicting its images together (``predict_batch``, top 2) with the case's predict options; or the error.
WITHOUT_A_JOB = """
import json, sys
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
out = {}
for name, case in json.loads(sys.argv[1]).items():
    try:
        adapter = build_adapter(Job.from_file(case["job"]), Reporter(None))
        adapter.load_weights(None)
        out[name] = [{k: v for k, v in r.items() if k != "timings_ms"}
                     for r in adapter.predict_batch(case["images"], 2, **case["options"])]
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out))
"""


def reporter_variables(child_env, address: str) -> dict[str, str]:
    return {k: v for k, v in child_env(address).items() if k.startswith("VISIONYARD_")}


@pytest.fixture(scope="module")
def run(hf_python, hf_job, child_env, reporter_server, in_one_process, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-vqa")
    models, dataset = root / "models", make_vqa_dataset(root / "data")
    last = {kind: str(root / kind / "checkpoints" / f"checkpoint-{2 * STEPS}") for kind in ("vilt", "blip")}
    jobs = {name: hf_job.write(root / name, "visual_qa", models / model, dataset, "vqa", epochs=epochs, **over)
            for name, model, epochs, over in (("vilt", "vilt", 2, {}), ("blip", "blip", 2, {}),
                                              ("resumed", "vilt", 3, {"resume": last["vilt"]}))}
    image = str(dataset / "val" / "images" / "0.png")  # red
    images = [image, str(dataset / "val" / "images" / "1.png")]
    llava = hf_job.write(root / "llava", "visual_qa", models / "llava", dataset, "vqa")
    question = {"question": "What colour is it?"}
    no_job = {name: {"job": str(hf_job.write(root / f"no-job-{name}", "visual_qa", models / model, root / "no-data",
                                             "vqa")), "images": images, "options": options}
              for name, model, options in (("llava", "llava", question), ("blip", "blip", question),
                                           ("vilt without a question", "vilt", {}))}

    def predict(kind: str, *more: str) -> dict:
        return {"argv": ["--spec", str(jobs[kind]), "--predict", image, "--checkpoint", last[kind], *more]}

    with reporter_server() as vilt, reporter_server() as blip, reporter_server() as resumed, \
            reporter_server() as refused:
        servers = {"vilt": vilt, "blip": blip, "resumed": resumed, "llava": refused}
        steps = {
            "build": {"script": TINY_VQA, "argv": [str(models)]},
            **{f"train {name}": {"argv": ["--spec", str(jobs[name])],
                                 "env": reporter_variables(child_env, servers[name].address)}
               for name in ("vilt", "blip", "resumed")},
            "vilt answers": predict("vilt", "--question", "What colour is it?", "--top-k", "3"),
            "blip answers": predict("blip", "--question", "What colour is it?"),
            "no question": predict("blip"),
            "labels": predict("vilt", "--question", "What colour is it?", "--labels", "red,blue"),
            "plain transformers": {"script": PLAIN_LOAD, "argv": [str(root / "vilt"), str(root / "blip")]},
            "without a job": {"script": WITHOUT_A_JOB, "argv": [json.dumps(no_job)]},
            "train llava": {"argv": ["--spec", str(llava)], "env": reporter_variables(child_env, refused.address)},
        }
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "servers": servers, "root": root, "dataset": dataset}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


@pytest.mark.parametrize("kind", ["vilt", "blip"])
def test_trains_reporting_the_vqa_accuracy_each_epoch(run, kind):
    finished(run["out"]["build"])
    finished(run["out"][f"train {kind}"])
    server = run["servers"][kind]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert {"train/loss", "val/loss", VAL_VQA_ACCURACY, "lr"} <= set(m.values)
        assert 0.0 <= m.values[VAL_VQA_ACCURACY] <= 1.0
    accuracies = [m.values[VAL_VQA_ACCURACY] for m in metrics]
    best = [c for c in server.of_kind("checkpoint") if c.kind == "best"]
    assert best and best[-1].epoch == accuracies.index(max(accuracies)) + 1  # higher is better
    folder = run["root"] / kind / "checkpoints" / f"checkpoint-{2 * STEPS}"
    assert server.of_kind("result")[0].last_checkpoint == str(folder)
    assert (folder / "processor_config.json").is_file() and (folder / "tokenizer_config.json").is_file()


@pytest.mark.parametrize("kind", ["vilt", "blip"])
def test_each_evaluation_records_every_question_worst_first(run, kind):
    """Every val question once, with its answers, the prediction and its VQA score, the lowest first; the record's
    metrics are the epoch's, and its scores average to the reported accuracy."""
    finished(run["out"][f"train {kind}"])
    reported = {m.step: dict(m.values) for m in run["servers"][kind].of_kind("metrics")}
    results = run["root"] / kind / "results" / "val"
    index = json.loads((results / "index.json").read_text())
    assert [(e["epoch"], e["step"]) for e in index] == [(1, STEPS), (2, 2 * STEPS)]
    expected = {(f"val/images/{i}.png", q["question"]): q["answers"]
                for i, colour in enumerate(VQA_SPLITS["val"]) for q in vqa_questions(colour)}
    for entry in index:
        record = json.loads((results / entry["file"]).read_text())
        assert (record["task"], record["evaluator"], record["classes"], record["per_class"]) == (
            "visual_qa", "visionyard.vqa", [], [])
        assert record["metrics"] == entry["metrics"] == {k: v for k, v in reported[entry["epoch"]].items()
                                                         if k.startswith("val/")}
        rows = record["per_image"]
        assert sorted((row["image"], row["question"]) for row in rows) == sorted(expected)
        assert [row["score"] for row in rows] == sorted(row["score"] for row in rows)
        for row in rows:
            assert row["answers"] == expected[(row["image"], row["question"])]
            assert row["score"] == pytest.approx(vqa_score(row["prediction"], row["answers"]))
        assert sum(row["score"] for row in rows) / len(rows) == pytest.approx(record["metrics"][VAL_VQA_ACCURACY])


def test_vilt_answers_from_the_training_answers_and_predicts_its_top_k(run):
    response = finished(run["out"]["vilt answers"])["json"]
    assert response["task"] == "visual_qa" and (response["width"], response["height"]) == (32, 24)
    assert response["text"] in VOCABULARY
    assert [p["label"] for p in response["predictions"]][0] == response["text"] and len(response["predictions"]) == 3
    assert all(0.0 <= p["score"] <= 1.0 and VOCABULARY[p["index"]] == p["label"] for p in response["predictions"])


def test_blip_generates_its_answer(run):
    response = finished(run["out"]["blip answers"])["json"]
    assert response["task"] == "visual_qa" and response["predictions"] == []
    assert isinstance(response.get("text", ""), str)  # the entrypoint leaves out an empty answer


def test_predict_needs_a_question_and_takes_no_labels(run):
    done = run["out"]["no question"]
    assert done["code"] == 1 and "visual question answering needs a question" in done["stderr"]
    done = run["out"]["labels"]
    assert done["code"] == 1 and "visual_qa takes no labels at predict time" in done["stderr"]


def test_resume_continues_at_the_next_epoch(run):
    finished(run["out"]["train resumed"])
    server = run["servers"]["resumed"]
    assert [m.step for m in server.of_kind("metrics")] == [3]
    assert server.of_kind("result")[0].last_checkpoint.endswith(f"checkpoint-{3 * STEPS}")


def test_the_checkpoints_load_in_plain_transformers_and_predict_gives_their_answer(run):
    loaded = finished(run["out"]["plain transformers"])["json"]
    vilt, blip = loaded["vilt"], loaded["blip"]
    assert (vilt["model"], vilt["processor"]) == ("ViltForQuestionAnswering", "ViltProcessor")
    assert vilt["labels"] == VOCABULARY  # the checkpoint's id2label is the answer vocabulary
    assert (blip["model"], blip["processor"]) == ("BlipForQuestionAnswering", "BlipProcessor")
    for found in (vilt, blip):
        assert found["predicted"]["text"] == found["answer"]


def test_the_best_checkpoint_is_the_one_with_the_highest_vqa_accuracy():
    assert primary_metric("visual_qa") == PrimaryMetric(VAL_VQA_ACCURACY)


def test_models_without_a_job_answer_a_question(run):
    """``load_weights``, as a warm worker for a model without a job calls it: LLaVA (predict-only) and a raw BLIP
    answer the question for two images at once; without a question, an error."""
    found = finished(run["out"]["without a job"])["json"]
    for name in ("llava", "blip"):
        assert [set(r) for r in found[name]] == [{"text", "predictions", "task", "width", "height"}] * 2, found[name]
        assert all(isinstance(r["text"], str) and r["task"] == "visual_qa" for r in found[name])
    assert found["vilt without a question"] == {
        "error": 'ValueError: visual question answering needs a question (--question "what colour is the car?")'}


def test_llava_predicts_only(run, tmp_path):
    """The catalog refuses training LLaVA at submit, saying what it would need; a job that gets past it fails in
    the child with the same reason."""
    why = check_model("llava-hf/llava-1.5-7b-hf", "visual_qa")
    assert "predicts and evaluates only" in why and "LoRA" in why and "Salesforce/blip-vqa-base" in why
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    assert "LoRA" in check_model(str(tmp_path), "visual_qa")
    done = run["out"]["train llava"]
    assert done["code"] == 1
    [error] = run["servers"]["llava"].of_kind("error")
    assert "LoRA" in error.message and "dandelin/vilt-b32-finetuned-vqa" in error.message
