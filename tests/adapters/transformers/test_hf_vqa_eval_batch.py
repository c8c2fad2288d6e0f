"""``eval`` of a ViLT visual QA model in the real env batches its questions: a tiny ViLT (built from a config, its
answers a vocabulary of six) evaluated on 22 questions, each about one of eleven images of different sizes and
most of them different, ``--batch 16`` and ``--batch 1``. The batch goes through the model in one forward pass
(each image with its own question, texts and images padded and masked), and gives every question the answer
that predicting it alone gives: the same answers, the same VQA accuracy. ``predict_batch`` with ``questions``
gives each image the top-k answers and scores ``predict`` gives it with its ``question``."""

from __future__ import annotations

import json

import pytest
from PIL import Image

SCRIPT = """
import io, json, sys
from pathlib import Path
import torch
from transformers import BertTokenizer, ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

from adapters.entrypoint import build_adapter
from adapters.evaluate import evaluate
from adapters.job import Job
from adapters.reporter import Reporter

spec, model, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
torch.manual_seed(0)
words = "what colour color is it the a shape this how many are there on left of red green blue yes no ?".split()
vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
answers = ["red", "green", "blue", "yes", "no", "2"]
config = ViltConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, image_size=32, patch_size=8, max_position_embeddings=40,
                    num_labels=len(answers), id2label=dict(enumerate(answers)),
                    label2id={a: i for i, a in enumerate(answers)},
                    initializer_range=0.5)  # weights large enough for its answers to differ from image to image
ViltForQuestionAnswering(config).save_pretrained(model)
ViltProcessor(image_processor=ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=8),
              tokenizer=BertTokenizer(vocab=dict(vocab))).save_pretrained(model)

passes = []
forward = ViltForQuestionAnswering.forward
def counted(self, *args, **kwargs):
    passes.append(int(kwargs["input_ids"].shape[0]))
    return forward(self, *args, **kwargs)
ViltForQuestionAnswering.forward = counted

found = {}
for batch in (16, 1):
    passes.clear()
    code = evaluate(spec, str(model), str(out / f"batch-{batch}"), batch=batch, progress=io.StringIO())
    assert code == 0, code
    found[f"batch {batch}"] = {"passes": list(passes),
                               "record": json.loads((out / f"batch-{batch}" / "eval.json").read_text())}

adapter = build_adapter(Job.from_file(spec), Reporter(None))
adapter.load_checkpoint(str(model))
lines = [json.loads(line) for line in (Path(sys.argv[4]) / "val" / "questions.jsonl").read_text().splitlines()]
images = [str(Path(sys.argv[4]) / "val" / "images" / line["file"]) for line in lines]
questions = [line["question"] for line in lines]
together = adapter.predict_batch(images, 3, False, questions=questions)
alone = [adapter.predict(image, 3, question=question) for image, question in zip(images, questions)]
found["top-k"] = {"together": [r["predictions"] for r in together], "alone": [r["predictions"] for r in alone]}
print(json.dumps(found))
"""

QUESTIONS = ["What colour is it?", "Is it red?", "How many are there?", "What shape is this?",
             "Is the shape on the left of it red?", "What colour is the shape on the left?", "Is it blue?",
             "How many red shapes are there on the left of it?", "What is it?", "Is this green?", "Is it?"]
#: (width, height) of each image: ViLT's processor makes inputs of several shapes of them
SIZES = [(32, 24), (40, 32), (24, 40), (48, 32), (32, 32), (56, 40), (32, 48), (24, 24), (40, 40), (48, 24), (32, 40)]


def make_dataset(root):
    """Eleven noisy images of several sizes, two questions each (22 lines, 11 distinct questions, in another order
    for each image), answers among the model's vocabulary and beyond it."""
    import random

    rng = random.Random(0)
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        lines = []
        for i, size in enumerate(SIZES):
            Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))).save(
                root / split / "images" / f"{i}.png")
            for question in (QUESTIONS[i], QUESTIONS[(i * 5 + 3) % len(QUESTIONS)]):
                answers = [rng.choice(["red", "green", "blue", "yes", "no", "two", "square"]) for _ in range(4)]
                lines.append(json.dumps({"file": f"{i}.png", "question": question, "answers": answers}))
        (root / split / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def evaluated(hf_script, hf_job, tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-vqa-eval-batch")
    data = make_dataset(root / "data")
    spec = hf_job.write(root / "job", "visual_qa", root / "vilt", data, "vqa")
    return json.loads(hf_script(SCRIPT, spec, root / "vilt", root / "evals", data, timeout=600).splitlines()[-1])


def test_a_batch_of_questions_is_one_forward_pass(evaluated):
    assert evaluated["batch 16"]["passes"] == [16, 6]
    assert evaluated["batch 1"]["passes"] == [1] * 22


def test_batched_and_alone_give_every_question_the_same_answer_and_accuracy(evaluated):
    together, alone = evaluated["batch 16"]["record"], evaluated["batch 1"]["record"]
    assert together["images"] == alone["images"] == 22

    def answered(record):
        return sorted((row["image"], row["question"], row["prediction"], row["score"]) for row in record["per_image"])
    assert answered(together) == answered(alone) and len(answered(together)) == 22
    assert len({row[2] for row in answered(together)}) > 1  # the model does not give one answer to everything
    accuracy = together["metrics"]["val/vqa_accuracy"]
    assert accuracy == alone["metrics"]["val/vqa_accuracy"] and 0 < accuracy < 1


def test_predict_batch_with_questions_ranks_as_predict_with_each_question(evaluated):
    together, alone = evaluated["top-k"]["together"], evaluated["top-k"]["alone"]
    assert [[p["label"] for p in ranked] for ranked in together] == [[p["label"] for p in ranked] for ranked in alone]
    assert [p["score"] for ranked in together for p in ranked] == pytest.approx(
        [p["score"] for ranked in alone for p in ranked], abs=1e-5)
