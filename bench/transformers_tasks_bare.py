"""A bare HF ``Trainer`` run of one Transformers task, what a user would write by hand; the bare side of
``bench/bench_transformers_tasks.py``, run in the transformers env's python as ``python THIS ARGS.json``.

It loads the model and processor with plain ``Auto*.from_pretrained``, reads the dataset files itself (the
same files and order the job reads), encodes each sample as the task does (same sizes, same flips, same token
layout), and trains with ``transformers.Trainer`` and the same ``TrainingArguments``. From visionyard it imports
only what HF lacks and a user would have to write the same code for (``IMPORTED`` says which, per task): the
depth loss (SiLog), the metric functions (COCO mAP, CIDEr/BLEU, VQA accuracy, depth errors, accuracy/F1) and the
VQA answer normalisation. It prints ``VYBENCH <what> <unix time>`` lines (imports done, model loaded, the first
optimizer step, each evaluation as ``epoch N``, training done) for the bench.
"""

import json
import random
import sys
import time

#: What each task's bare run imports from visionyard (see the module).
IMPORTED = {
    "depth_estimation": "silog_loss, at_sizes (SiLog loss on depth upsampled to each map), DepthErrors (metrics)",
    "zero_shot_classification": "classification_metrics",
    "zero_shot_detection": "detection_map (COCO mAP through pycocotools), class_scores, best_pairs",
    "image_captioning": "caption_metrics (CIDEr-D, BLEU-4)",
    "visual_qa": "answer_scores, vqa_score (VQA answer normalisation and soft accuracy)",
    "video_classification": "classification_metrics",
}


def mark(what):
    print(f"VYBENCH {what} {time.time():.6f}", flush=True)


args = json.loads(open(sys.argv[1]).read())
sys.path.insert(0, args["root"])  # for the IMPORTED functions only
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

mark("imports")
hf_logging.disable_progress_bar()
FLIP = Image.Transpose.FLIP_LEFT_RIGHT


def rgb(path):
    with Image.open(path) as image:
        return image.convert("RGB")


class Items(torch.utils.data.Dataset):
    def __init__(self, samples, encode, train):
        self.samples, self.encode, self.train = samples, encode, train

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.encode(self.samples[i], self.train)


def stack(batch):
    return {key: torch.stack([item[key] for item in batch]) if hasattr(batch[0][key], "shape")
            else torch.tensor([item[key] for item in batch]) for key in batch[0]}


def pad_stack(tensors, value=0):
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    return torch.stack([F.pad(t, [p for d in reversed(range(t.dim())) for p in (0, shape[d] - t.shape[d])],
                              value=value) for t in tensors])


def classification(logits_and_labels):
    from adapters.transformers.tasks.classification import classification_metrics

    return classification_metrics(np.asarray(logits_and_labels.predictions), np.asarray(logits_and_labels.label_ids))


# ---------------------------------------------------------------- the tasks: (model, processor, train, val, collate,
# trainer class, compute_metrics, evaluate before training)


def depth_estimation():
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from adapters.evaluation.depth import DepthErrors
    from adapters.transformers.tasks.depth import at_sizes, silog_loss

    model = AutoModelForDepthEstimation.from_pretrained(args["model"])
    processor = AutoImageProcessor.from_pretrained(args["model"])
    size = (processor.size["width"], processor.size["height"])  # a multiple of DPT's twice its patch

    def depth(path):
        if path.endswith(".npy"):
            values = np.load(path).astype(np.float32)
        else:
            with Image.open(path) as image:
                values = np.asarray(image).astype(np.float32) / 1000
        values[~np.isfinite(values) | (values < 0)] = 0.0
        return values

    def encode(sample, train):
        image, target = rgb(sample[0]), depth(sample[1])
        if train and random.random() < 0.5:
            image, target = image.transpose(FLIP), target[:, ::-1].copy()
        if image.size != size:
            image = image.resize(size, Image.Resampling.BICUBIC)
        return {"pixel_values": processor(images=image, do_resize=False, return_tensors="pt")["pixel_values"][0],
                "labels": torch.from_numpy(target), "depth_size": torch.tensor(target.shape, dtype=torch.long)}

    def collate(batch):
        return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]),
                "labels": pad_stack([b["labels"] for b in batch]),
                "depth_size": torch.stack([b["depth_size"] for b in batch])}

    errors = {}

    class DepthTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            predicted = model(pixel_values=inputs["pixel_values"]).predicted_depth
            predicted = at_sizes(predicted, inputs["depth_size"], inputs["labels"].shape[-2:])
            loss = silog_loss(predicted, inputs["labels"])
            return (loss, {"predicted_depth": predicted}) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss, outputs = self.compute_loss(model, inputs, return_outputs=True)
            return loss.detach(), outputs["predicted_depth"].detach(), inputs["labels"]

    def metrics(eval_pred, compute_result=True):
        found = errors.setdefault("errors", DepthErrors())
        for predicted, target in zip(eval_pred.predictions.float().cpu().numpy(),
                                     eval_pred.label_ids.float().cpu().numpy(), strict=True):
            found.update(predicted, target)
        if not compute_result:
            return {}
        return {name.removeprefix("val/"): value for name, value in errors.pop("errors").metrics().items()}

    return model, processor, encode, collate, DepthTrainer, metrics, False


def zero_shot_classification():
    from transformers import AutoModelForZeroShotImageClassification, AutoProcessor

    model = AutoModelForZeroShotImageClassification.from_pretrained(args["model"])
    processor = AutoProcessor.from_pretrained(args["model"])
    prompts = [f"a photo of a {name.replace('_', ' ')}" for name in args["class_names"]]
    text = processor.tokenizer(prompts, padding=True, truncation=True,
                               max_length=model.config.text_config.max_position_embeddings, return_tensors="pt")
    text = {key: text[key] for key in ("input_ids", "attention_mask")}

    def encode(sample, train):
        image = rgb(sample[0])
        if train and random.random() < 0.5:
            image = image.transpose(FLIP)
        return {"pixel_values": processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0],
                "labels": sample[1]}

    class ZeroShotTrainer(Trainer):  # every image against every class prompt
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            pixels = inputs["pixel_values"]
            logits = model(pixel_values=pixels, **{k: v.to(pixels.device) for k, v in text.items()}).logits_per_image
            loss = F.cross_entropy(logits, inputs["labels"], label_smoothing=self.args.label_smoothing_factor)
            return (loss, {"logits": logits}) if return_outputs else loss

    return model, processor, encode, stack, ZeroShotTrainer, classification, True


def zero_shot_detection():
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
    from transformers.models.grounding_dino.modeling_grounding_dino import build_label_maps

    from adapters.transformers.tasks.detection import detection_map
    from adapters.transformers.tasks.zero_shot_detection import best_pairs, class_scores

    model = AutoModelForZeroShotObjectDetection.from_pretrained(args["model"])
    processor = AutoProcessor.from_pretrained(args["model"])
    prompt = ". ".join(name.lower() for name in args["class_names"]) + "."
    text = dict(processor.tokenizer(prompt, return_tensors="pt"))
    maps = build_label_maps(text["input_ids"].new_zeros((1, 1, model.config.max_text_len)).float(),
                            text["input_ids"])[0].float()
    weights = maps / maps.sum(-1, keepdim=True)

    def encode(sample, train):  # sample: (path, [(class, [x, y, w, h]), ...])
        image, objects = rgb(sample[0]), sample[1]
        if train and random.random() < 0.5:
            image = image.transpose(FLIP)
            objects = [(c, [image.width - x - w, y, w, h]) for c, (x, y, w, h) in objects]
        annotations = [{"bbox": box, "category_id": c, "area": box[2] * box[3], "iscrowd": 0} for c, box in objects]
        encoded = processor.image_processor(images=image, annotations={"image_id": 0, "annotations": annotations},
                                            return_tensors="pt")
        return {"pixel_values": encoded["pixel_values"][0], "pixel_mask": encoded["pixel_mask"][0],
                "labels": dict(encoded["labels"][0])}

    def collate(batch):
        out = {"pixel_values": pad_stack([b["pixel_values"] for b in batch]),
               "pixel_mask": pad_stack([b["pixel_mask"] for b in batch]), "labels": [b["labels"] for b in batch]}
        out.update({key: value.expand(len(batch), -1) for key, value in text.items()})
        return out

    class DetectionTrainer(Trainer):  # evaluation keeps logits and boxes only
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
            return (loss, {"loss": loss, "logits": outputs["logits"], "pred_boxes": outputs["pred_boxes"]}) \
                if return_outputs else loss

    def metrics(eval_pred):
        truth, found = [], []
        for (logits, boxes), targets in zip(eval_pred.predictions, eval_pred.label_ids, strict=True):
            for table, image_boxes, target in zip(class_scores(torch.as_tensor(logits), weights),
                                                  torch.as_tensor(boxes), targets, strict=True):
                height, width = (int(v) for v in target["orig_size"])
                pairs = best_pairs(table, image_boxes, (height, width), 0.05, 100, model.config.model_type)
                found.append({key: value.numpy() for key, value in pairs.items()})
                cx, cy, w, h = (np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
                                * [width, height, width, height]).T
                truth.append({"boxes": np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1),
                              "labels": np.asarray(target["class_labels"]).reshape(-1)})
        return detection_map(truth, found)

    return model, processor, encode, collate, DetectionTrainer, metrics, True


def image_captioning():
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from adapters.evaluation.captions import caption_metrics

    model = AutoModelForImageTextToText.from_pretrained(args["model"])
    processor = AutoProcessor.from_pretrained(args["model"])
    config, tokenizer = model.config, processor.tokenizer
    start, end, pad = config.bos_token_id, config.eos_token_id, config.pad_token_id
    most = min(64, config.max_position_embeddings)  # the caption's tokens, start and end included

    def encode(sample, train):  # sample: (path, [caption, ...])
        caption = random.choice(sample[1]) if train else sample[1][0]
        ids = tokenizer(caption, add_special_tokens=False, truncation=True, max_length=most - 2).input_ids
        return {"pixel_values": processor.image_processor(images=rgb(sample[0]), return_tensors="pt")
                ["pixel_values"][0], "ids": [start, *ids, end]}

    def collate(batch):
        labels = torch.full((len(batch), max(len(b["ids"]) for b in batch)), -100, dtype=torch.long)
        for row, item in zip(labels, batch, strict=True):
            row[:len(item["ids"])] = torch.tensor(item["ids"])
        return {"pixel_values": torch.stack([b["pixel_values"] for b in batch]),
                "input_ids": labels.masked_fill(labels == -100, pad), "attention_mask": (labels != -100).long(),
                "labels": labels}

    class CaptionTrainer(Trainer):  # evaluation: the teacher-forced loss, then generated captions
        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            loss, _, _ = super().prediction_step(model, inputs, True, ignore_keys=ignore_keys)
            if prediction_loss_only:
                return loss, None, None
            inputs = self._prepare_inputs(inputs)
            generated = self.model.generate(pixel_values=inputs["pixel_values"], max_length=most, bos_token_id=start,
                                            eos_token_id=end, pad_token_id=pad)
            return loss, generated, inputs["labels"]

    def metrics(eval_pred):
        rows = []
        for row in np.asarray(eval_pred.predictions).tolist():
            row = [i for i in row if i >= 0][1 if row and row[0] == start else 0:]
            rows.append([i for i in (row[:row.index(end)] if end in row else row) if i != pad])
        predicted = [text.strip() for text in tokenizer.batch_decode(rows, skip_special_tokens=True)]
        return caption_metrics(predicted, [captions for _, captions in args["val"]])

    return model, processor, encode, collate, CaptionTrainer, metrics, False


def visual_qa():
    from transformers import AutoProcessor, ViltForQuestionAnswering

    from adapters.evaluation.vqa import answer_scores, vqa_score

    totals = {}
    for _, _, answers in args["train"]:
        for answer, score in answer_scores(answers).items():
            totals[answer] = totals.get(answer, 0.0) + score
    vocabulary = sorted(totals, key=lambda a: (-totals[a], a))
    index = {answer: i for i, answer in enumerate(vocabulary)}
    model = ViltForQuestionAnswering.from_pretrained(
        args["model"], num_labels=len(vocabulary), id2label=dict(enumerate(vocabulary)), label2id=index,
        ignore_mismatched_sizes=True)
    processor = AutoProcessor.from_pretrained(args["model"])

    def encode(sample, train):  # sample: (path, question, answers)
        item = {k: v[0] for k, v in processor.image_processor(images=[rgb(sample[0])], return_tensors="pt").items()}
        tokens = processor.tokenizer([sample[1]], truncation=True, max_length=model.config.max_position_embeddings,
                                     return_tensors="pt")
        item.update({k: v[0] for k, v in tokens.items()})
        item["labels"] = torch.zeros(len(vocabulary))
        for answer, score in answer_scores(sample[2]).items():
            if answer in index:
                item["labels"][index[answer]] = score
        return item

    def collate(batch):
        pad = processor.tokenizer.pad_token_id or 0
        return {key: pad_stack([b[key] for b in batch], pad if key == "input_ids" else 0) for key in batch[0]}

    class VQATrainer(Trainer):  # evaluation also answers each question
        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                outputs = model(**inputs)
            return outputs.loss.detach(), outputs.logits.argmax(-1), inputs["labels"]

    def metrics(eval_pred):
        answers = [vocabulary[int(i)] for i in np.asarray(eval_pred.predictions).reshape(-1)]
        scores = [vqa_score(a, sample[2]) for a, sample in zip(answers, args["val"], strict=True)]
        return {"vqa_accuracy": float(np.mean(scores))}

    return model, processor, encode, collate, VQATrainer, metrics, False


def video_classification():
    import av
    from transformers import AutoImageProcessor, AutoModelForVideoClassification

    names = args["class_names"]
    model = AutoModelForVideoClassification.from_pretrained(
        args["model"], ignore_mismatched_sizes=True, num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)})
    processor = AutoImageProcessor.from_pretrained(args["model"])
    count = model.config.num_frames

    def clip(path, train):  # one frame of each of `count` equal segments: its middle, or a random one in training
        with av.open(path) as container:
            stream = container.streams.video[0]
            total = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        points = [random.uniform(i * total / count, (i + 1) * total / count) if train
                  else (i + 0.5) * total / count for i in range(count)]
        wanted = [min(total - 1, int(p)) for p in points]
        frames = {}
        with av.open(path) as container:
            for number, frame in enumerate(container.decode(container.streams.video[0])):
                if number in wanted:
                    frames[number] = frame.to_ndarray(format="rgb24")
                if number >= wanted[-1]:
                    break
        return [frames.get(n, frames[max(frames)]) for n in wanted]

    def encode(sample, train):
        frames = clip(sample[0], train)
        if train and random.random() < 0.5:
            frames = [np.ascontiguousarray(frame[:, ::-1]) for frame in frames]
        return {"pixel_values": processor(frames, return_tensors="pt")["pixel_values"][0], "labels": sample[1]}

    return model, processor, encode, stack, Trainer, classification, False


class Marks(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1:
            mark("step")

    def on_evaluate(self, args, state, control, **kwargs):
        mark(f"epoch {round(state.epoch or 0)}")


model, processor, encode, collate, trainer_class, compute_metrics, evaluate_first = globals()[args["task"]]()
mark("model")
trainer = trainer_class(model=model, args=TrainingArguments(**args["training_args"]),
                        train_dataset=Items(args["train"], encode, True),
                        eval_dataset=Items(args["val"], encode, False),
                        data_collator=collate, compute_metrics=compute_metrics, processing_class=processor,
                        callbacks=[Marks()])
if evaluate_first:  # the zero-shot baseline, as the job reports it (epoch 0)
    trainer.evaluate()
trainer.train()
mark("trained")
