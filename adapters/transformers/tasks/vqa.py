"""Visual question answering: BLIP (``BlipForQuestionAnswering``, generative) and ViLT
(``ViltForQuestionAnswering``, a classifier over an answer vocabulary).

A record is one question about one image with the answers people gave (``vqa`` datasets). The
two kinds train differently:

- BLIP generates the answer: its decoder trains on one answer per question, the most common of
  its answers once normalised as the VQA evaluation normalises them (``adapters.evaluation.vqa``),
  as token ids that start with the decoder's start token and end with its end token (``[SEP]``),
  padded with -100; evaluation generates (greedy, ``advanced.generation.max_length`` tokens at most).
- ViLT picks an answer from a vocabulary: a job's vocabulary is every normalised answer of the
  training questions, by their summed score, the highest first (the answers a pretrained head
  already knows keep its weights for them); each question's target is the soft VQA score of each of its answers
  (``answer_scores``: 0.3, 0.6, 0.9, 1.0 for an answer 1, 2, 3, 4+ of ten people gave), trained
  with the model's binary cross-entropy. The checkpoint's ``config.id2label`` is the vocabulary.

Each evaluation scores every validation question's answer with the VQA accuracy
(``val/vqa_accuracy``); the questions, their answers and the predictions, the worst first, go
into the validation record. Predict answers a ``question`` given at predict time (or ``questions``,
one per image of a batch: ``eval`` asks each record's): ``text`` is the answer; ViLT also lists its
top-k answers with their sigmoid scores as ``predictions``. ViLT answers a batch in one pass, padded
and masked as training batches; BLIP and LLaVA in groups of inputs of one shape.

LLaVA (``llava-hf/llava-1.5-7b-hf``, ``LlavaForConditionalGeneration``) predicts only: the question goes
through its processor's chat template (LLaVA-1.5's ``USER: <image>\n... ASSISTANT:`` without one)
with the instruction LLaVA-1.5 was evaluated on VQAv2 with ("Answer the question using a single
word or phrase."), and the answer is the text generated after the prompt (greedy,
``generation.max_length`` new tokens at most). Training it is refused (``TRAINING_REFUSED``): 7B
parameters fine-tune only with LoRA adapters (peft) on a GPU of 24 GB or more, which this runner
does not do; to predict it needs about 15 GB of GPU memory in float16 (it loads in the dtype it
was saved in).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from adapters.datasets import ImageRecord, open_image
from adapters.evaluation.vqa import answer_scores, normalize_answer, vqa_results
from adapters.transformers.tasks.base import HFTask
from adapters.transformers.tasks.common import in_shape_groups

log = logging.getLogger("visionyard.transformers")

GENERATIVE, CLASSIFIER, MULTIMODAL_LM = "blip", "vilt", "llava"
#: Architectures that predict but do not train here, and why.
TRAINING_REFUSED = {
    MULTIMODAL_LM: "LLaVA-1.5 (7B parameters) fine-tunes only with LoRA adapters (peft) on a GPU of 24 GB or more, "
                   "which this runner does not do; predict with it (`visionyard predict --model`), or train BLIP "
                   "(Salesforce/blip-vqa-base) or ViLT (dandelin/vilt-b32-finetuned-vqa)",
}
#: The classes of a visual QA checkpoint (``config.architectures``) per kind.
VQA_CLASSES = {GENERATIVE: "BlipForQuestionAnswering", CLASSIFIER: "ViltForQuestionAnswering",
               MULTIMODAL_LM: "LlavaForConditionalGeneration"}
#: LLaVA-1.5's instruction for short VQA answers (its VQAv2 evaluation prompt).
SHORT_ANSWER = "Answer the question using a single word or phrase."


class VQATask(HFTask):
    name = "visual_qa"
    auto_model = "AutoModelForVisualQuestionAnswering"
    primary = "vqa_accuracy"
    #: ``labels`` is the label for the Trainer (BLIP's answer ids, ViLT's soft scores).
    training_args = {"label_names": ["labels"]}

    def __init__(self, job) -> None:
        super().__init__(job)
        self.max_length = int(self.setting("generation.max_length", 64))
        self.kind = GENERATIVE
        self.answers: list[str] = []  # ViLT: the vocabulary
        self.text_limit = 512
        # BLIP: the decoder's start, end and pad ids (``build``)
        self.start_id = self.end_id = self.pad_id = 0

    def trainer_class(self):
        return _trainer_class(self)

    # ------------------------------------------------------------ model

    def build(self, source: str, pretrained: bool, dataset) -> tuple[Any, Any]:
        from transformers import AutoConfig, AutoModelForVisualQuestionAnswering, AutoProcessor

        config = AutoConfig.from_pretrained(source)
        if config.model_type not in VQA_CLASSES:
            raise ValueError(f"'{source}' is a '{config.model_type}' model; visual_qa trains BLIP (blip) and ViLT "
                             "(vilt), and predicts with LLaVA (llava) too")
        self.kind = config.model_type
        if dataset is not None and self.kind in TRAINING_REFUSED:
            raise ValueError(f"'{source}': {TRAINING_REFUSED[self.kind]}")
        architectures = list(getattr(config, "architectures", None) or [])
        if architectures and VQA_CLASSES[self.kind] not in architectures:
            what = f"'{source}' is a {architectures[0]}, not a {VQA_CLASSES[self.kind]}"
            if dataset is None:
                raise ValueError(f"{what}: it has no visual question answering head; train one in a job first")
            log.warning("%s: the parts a visual QA model has and it lacks start from random weights", what)
        processor = AutoProcessor.from_pretrained(source)
        if self.kind == MULTIMODAL_LM:
            from transformers import AutoModelForImageTextToText

            self.processor = processor
            return AutoModelForImageTextToText.from_pretrained(source, dtype="auto"), processor
        if self.kind == CLASSIFIER and dataset is not None:
            model = self._classifier(source, pretrained, config, dataset)
        elif dataset is None or pretrained:
            model = AutoModelForVisualQuestionAnswering.from_pretrained(source)
        else:
            model = AutoModelForVisualQuestionAnswering.from_config(config)
        if self.kind == CLASSIFIER:
            self.answers = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
            self.text_limit = int(model.config.max_position_embeddings)
        else:
            text = model.config.text_config
            self.start_id, self.end_id, self.pad_id = int(text.bos_token_id), int(text.sep_token_id), \
                int(text.pad_token_id)
            self.text_limit = int(text.max_position_embeddings)
            # the decoder's position embeddings end there: a longer generation would index past them
            self.max_length = min(self.max_length, self.text_limit)
            model.generation_config.max_length = self.max_length
        self._fit_image_size(model, processor)
        self.processor = processor
        return model, processor

    def _classifier(self, source: str, pretrained: bool, config, dataset):
        """A ViLT whose head answers from the training answers (by their summed VQA score, the highest first); a
        pretrained head's rows of the answers it knows are kept."""
        import torch
        from transformers import ViltForQuestionAnswering

        counts: dict[str, float] = {}
        for record in dataset.train:
            for answer, score in answer_scores(record.answers).items():
                counts[answer] = counts.get(answer, 0.0) + score
        answers = sorted(counts, key=lambda a: (-counts[a], a))
        labels = {"id2label": dict(enumerate(answers)), "label2id": {a: i for i, a in enumerate(answers)}}
        if not pretrained:
            config.update(labels)
            config.num_labels = len(answers)
            return ViltForQuestionAnswering(config)
        model = ViltForQuestionAnswering.from_pretrained(source)
        known = {normalize_answer(str(name)): i for i, name in model.config.id2label.items()}
        old = model.classifier[-1]
        new = torch.nn.Linear(old.in_features, len(answers))
        model._init_weights(new)
        with torch.no_grad():
            for j, answer in enumerate(answers):
                if answer in known:
                    new.weight[j] = old.weight[known[answer]]
                    new.bias[j] = old.bias[known[answer]]
        model.classifier[-1] = new
        model.config.update(labels)
        model.config.num_labels = model.num_labels = len(answers)
        kept = sum(answer in known for answer in answers)
        log.info("answer vocabulary: %d answers from the training questions, %d of them known to the pretrained "
                 "head", len(answers), kept)
        return model

    def _fit_image_size(self, model, processor) -> None:
        """BLIP's vision tower takes one size (its position embeddings): the processor gives it that size. ViLT
        takes any (its shortest edge is ``image_size`` when the spec asks one)."""
        image_processor = processor.image_processor
        size = getattr(image_processor, "size", None)
        if self.kind == CLASSIFIER:
            if self.spec.image_size and size is not None and "shortest_edge" in size:
                image_processor.size = {**dict(size), "shortest_edge": int(self.spec.image_size)}
            return
        fixed = int(getattr(model.config.vision_config, "image_size", 0) or 0)
        if not fixed or size is None or "height" not in size:
            return
        if self.spec.image_size and int(self.spec.image_size) != fixed:
            log.warning("image_size %s ignored: the model's vision tower takes %dx%d images", self.spec.image_size,
                        fixed, fixed)
        image_processor.size = {"height": fixed, "width": fixed}

    # ------------------------------------------------------------ data

    def inputs(self, image, question: str) -> dict[str, Any]:
        """The model's inputs for one image and question, a batch of one (the processor's tensors)."""
        pixels = self.processor.image_processor(images=[image], return_tensors="pt")
        tokens = self.processor.tokenizer([question], truncation=True, max_length=self.text_limit, return_tensors="pt")
        keep = ("input_ids", "attention_mask", "token_type_ids") if self.kind == CLASSIFIER else \
            ("input_ids", "attention_mask")
        out = {key: tokens[key] for key in keep if key in tokens}
        out.update({key: value for key, value in pixels.items() if key in ("pixel_values", "pixel_mask")})
        return out

    def encode(self, record: ImageRecord, train: bool) -> dict[str, Any]:
        item = {key: value[0] for key, value in self.inputs(open_image(record), record.question or "").items()}
        scores = answer_scores(record.answers)
        if self.kind == CLASSIFIER:
            import torch

            target = torch.zeros(len(self.answers))
            index = {answer: i for i, answer in enumerate(self.answers)}
            for answer, score in scores.items():
                if answer in index:
                    target[index[answer]] = score
            item["labels"] = target
        else:
            answer = next(iter(scores), "")  # the most common answer
            ids = list(self.processor.tokenizer(answer, add_special_tokens=False).input_ids)
            item["labels"] = [self.start_id, *ids[:max(0, self.max_length - 2)], self.end_id]
        return item

    def collate(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Text padded to the longest (pad id; masks 0), images padded right and bottom with ``pixel_mask`` 0 there
        (ViLT's processor pads so); BLIP's answer ids padded with -100, and its decoder inputs (the answer ids,
        padded with pad) given, as its training would make them."""
        import torch

        out = self.padded([{key: value for key, value in item.items() if key != "labels"} for item in batch])
        if self.kind == CLASSIFIER:
            out["labels"] = torch.stack([item["labels"] for item in batch])
            return out
        labels = torch.full((len(batch), max(len(item["labels"]) for item in batch)), -100, dtype=torch.long)
        for row, item in zip(labels, batch, strict=True):
            row[:len(item["labels"])] = torch.tensor(item["labels"], dtype=torch.long)
        out["labels"] = labels
        out["decoder_input_ids"] = labels.masked_fill(labels == -100, self.pad_id)
        out["decoder_attention_mask"] = (labels != -100).long()
        return out

    def padded(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Model inputs of one sample each (no batch dimension) as one batch: text padded to the longest (pad id;
        masks 0), images padded right and bottom with ``pixel_mask`` 0 there (ViLT's processor pads so)."""
        pad_id = self.processor.tokenizer.pad_token_id or 0
        return {key: _pad_stack([item[key] for item in items], pad_id if key == "input_ids" else 0) for key in items[0]}

    # ------------------------------------------------------------ evaluation and inference

    def answer_batch(self, model, batch: dict[str, Any]):
        """The answers of a collated batch: BLIP's generated ids (padded with -100), ViLT's answer indices."""
        if self.kind == CLASSIFIER:
            inputs = {key: value for key, value in batch.items() if key != "labels"}
            return model(**inputs).logits.argmax(-1)
        generated = model.generate(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"],
                                   attention_mask=batch.get("attention_mask"), max_length=self.max_length)
        return generated.masked_fill(generated == self.pad_id, -100)

    def decode(self, predictions: np.ndarray) -> list[str]:
        """What :meth:`answer_batch` gave (gathered over the evaluation) → answer texts."""
        if self.kind == CLASSIFIER:
            return [self.answers[int(i)] for i in np.asarray(predictions).reshape(-1)]
        ids = np.where(predictions < 0, self.pad_id, predictions)
        texts = self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)
        return [text.strip() for text in texts]

    def compute_metrics(self, eval_pred) -> dict[str, float]:
        """The VQA accuracy of each validation question's answer (in the Trainer's order, the dataset's); each
        question's row in ``evaluation``, the worst first."""
        predicted = self.decode(np.asarray(eval_pred.predictions))
        records = self.dataset.val if self.dataset is not None else []
        if len(records) != len(predicted):
            raise ValueError(f"{len(predicted)} answers for {len(records)} validation questions")
        self.evaluation = vqa_results(predicted, [r.answers for r in records], [r.question or "" for r in records],
                                      self.val_names(len(records)))
        return {name.removeprefix("val/"): value for name, value in self.evaluation.metrics.items()}

    def predict_batch(self, model, processor, images: list, top_k: int, annotate: bool, question: str | None = None,
                      questions: list[str] | None = None) -> list[dict[str, Any]]:
        """Each image's answer to its question: ``question``, asked of every image, or ``questions``, one per image
        in order (an evaluation's records). ViLT answers the whole batch in one pass, texts and images padded and
        masked (:meth:`padded`); BLIP and LLaVA generate for each group of inputs of one shape together, as each
        would alone (BLIP's decoder attends to the whole question, padding included; LLaVA's prompts differ in
        length)."""
        asked = asked_questions(len(images), question, questions)
        if not images:
            return []
        if self.kind == MULTIMODAL_LM:
            return self._generate_answers(model, processor, images, asked)
        inputs = [self.inputs(image, text) for image, text in zip(images, asked, strict=True)]
        if self.kind == CLASSIFIER:
            import torch

            with torch.inference_mode():
                batch = self.padded([{key: value[0] for key, value in item.items()} for item in inputs])
                return self._ranked(model(**{key: value.to(model.device) for key, value in batch.items()}).logits,
                                    top_k)

        def run(batch, members):
            answers = self.decode(self.answer_batch(model, batch).cpu().numpy())
            return [{"text": answer, "predictions": []} for answer in answers]
        return in_shape_groups(inputs, model.device, run)

    def _ranked(self, logits, top_k: int) -> list[dict[str, Any]]:
        """ViLT: each row's best answer (``text``) and its ``top_k`` answers with their sigmoid scores."""
        probs = logits.sigmoid()
        scores, indices = probs.topk(min(max(1, top_k), probs.shape[-1]), dim=-1)
        return [{"text": self.answers[row_indices[0]],
                 "predictions": [{"label": self.answers[int(i)], "score": float(s), "index": int(i)}
                                 for s, i in zip(row_scores, row_indices, strict=True)]}
                for row_scores, row_indices in zip(scores.tolist(), indices.tolist(), strict=True)]

    def _generate_answers(self, model, processor, images: list, questions: list[str]) -> list[dict[str, Any]]:
        """LLaVA: each image's answer to its question, generated after the prompt (see the module)."""
        inputs = [{key: value for key, value in processor(images=[image], text=[_llava_prompt(processor, question)],
                                                          return_tensors="pt").items() if hasattr(value, "shape")}
                  for image, question in zip(images, questions, strict=True)]

        limit = int(getattr(model.config.text_config, "max_position_embeddings", 0) or 0)

        def run(batch, members):
            batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
            prompt_length = batch["input_ids"].shape[1]
            new = min(self.max_length, limit - prompt_length) if limit else self.max_length
            if new < 1:
                raise ValueError(f"the question takes {prompt_length} of the model's {limit} tokens: ask a shorter one")
            generated = model.generate(**batch, max_new_tokens=new, do_sample=False)
            answers = processor.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
            return [{"text": answer.strip(), "predictions": []} for answer in answers]
        return in_shape_groups(inputs, model.device, run)


def asked_questions(count: int, question: str | None, questions: list[str] | None) -> list[str]:
    """The question of each of ``count`` images: ``question`` for all of them, or ``questions``, one per image;
    ValueError saying what is missing or does not fit."""
    if question is not None and questions is not None:
        raise ValueError("give question (asked of every image) or questions (one per image), not both")
    if question is None and questions is None:
        raise ValueError('visual question answering needs a question (--question "what colour is the car?")')
    asked = [question] * count if questions is None else list(questions)
    if len(asked) != count:
        raise ValueError(f"questions: {len(asked)} questions for {count} images (one per image, in order)")
    for i, text in enumerate(asked):
        if text is None or not str(text).strip():
            raise ValueError('visual question answering needs a question (--question "what colour is the car?")'
                             + (f": question {i + 1} of {count} is empty" if questions is not None else ""))
    return [str(text).strip() for text in asked]


def _llava_prompt(processor, question: str) -> str:
    """LLaVA's prompt for ``question``: its chat template's (LLaVA-1.5's own without one), with the short-answer
    instruction."""
    text = f"{question}\n{SHORT_ANSWER}"
    if getattr(processor, "chat_template", None):
        return processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
            add_generation_prompt=True)
    return f"USER: <image>\n{text} ASSISTANT:"


def _pad_stack(tensors: list, value: int):
    """Tensors of one rank padded at the end of every dimension to the largest, stacked."""
    import torch
    import torch.nn.functional as F

    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    padded = []
    for t in tensors:
        pad: list[int] = []
        for d in reversed(range(t.dim())):
            pad += [0, shape[d] - t.shape[d]]
        padded.append(F.pad(t, pad, value=value) if any(pad) else t)
    return torch.stack(padded)


def _trainer_class(task: VQATask):
    from transformers import Trainer

    class VQATrainer(Trainer):
        """The model's own loss; evaluation also answers each question (``VQATask.answer_batch``)."""

        loss_is_scaled_for_ga = False  # the models' losses are per-batch means

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            return (outputs.loss, outputs) if return_outputs else outputs.loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            import torch

            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                outputs = model(**inputs)
                loss = outputs.loss.detach()
                if prediction_loss_only:
                    return loss, None, None
                # ViLT's answers are this pass's logits; BLIP generates its answers
                answers = outputs.logits.argmax(-1) if task.kind == CLASSIFIER else task.answer_batch(model, inputs)
            return loss, answers, inputs["labels"]

    return VQATrainer
