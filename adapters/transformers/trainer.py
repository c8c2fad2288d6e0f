"""``TransformersAdapter``: vision models trained by HF's ``Trainer`` (child env only).

The ``Trainer`` runs the loop; a callback (``adapters.transformers.report``) reports through the shared
``RunRecorder``: progress
per optimizer step, each epoch's metrics after evaluation (the task's ``compute_metrics``, so the
real task metric, not only the loss), and the checkpoint folders it saves: ``checkpoint-<step>``
with the model, its config and the processor (``save_pretrained``), plus optimizer, scheduler and
trainer state. Such a folder is what ``predict`` and ``resume`` load, and it opens with plain
``AutoModel*.from_pretrained(folder)``. ``best`` is the Trainer's best by the task's primary
metric (``metric_for_best_model``); the Trainer keeps it and the newest one. A resumed run starts with the
best of the run it resumes, copied into its own checkpoint dir (``report.carry_best_forward``).

Each evaluation also leaves its validation record (``adapters.evaluation.record``) under
``<job_dir>/results/val/``: what the task's ``compute_metrics`` measured per class or per sample,
with the epoch and the ``val/*`` metrics that the callback reports for that evaluation.

Models come from a hub id (offline: only from the local cache, failing in seconds with what to
do) or a local folder; ``pretrained: false`` builds the architecture from its config with fresh
weights. What differs per task lives in ``adapters/transformers/tasks/``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from adapters.base import FrameworkLoopAdapter
from adapters.controls import resolve_precision
from adapters.datasets import open_image, read_dataset, split_options
from adapters.datasets.records import ImageRecord
from adapters.devices import resolve_device
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from adapters.hub import hub_cache, is_missing_from_cache, prepare_hub_access, use_local_cache_only
from adapters.metrics import primary_metric
from adapters.transformers.catalog import resolve_model
from adapters.transformers.tasks import get_task
from adapters.transformers.report import Report, evaluate_before_training
from adapters.transformers.tasks.base import RecordDataset


#: Tasks whose processor keeps the model's own size when the spec asks none (the daemon's default is a guess), in
#: training and when a checkpoint is loaded to predict, evaluate or export.
OWN_SIZE_TASKS = ("image_classification", "depth_estimation", "image_captioning", "zero_shot_classification",
                  "visual_qa", "zero_shot_detection", "video_classification")


class ModelUnavailable(RuntimeError):
    """A hub model that is neither cached nor downloadable here."""


#: Why a hub model that is not cached can't be had, and what to do: in a training job, and for a model
#: without a job (only ever loaded from the local cache).
NOT_CACHED_TRAINING = ("the hub is unreachable; run once where huggingface.co is reachable (or set HF_ENDPOINT to a "
                       "mirror), or give a local folder saved with save_pretrained as `model:`")
NOT_CACHED_PREDICT = ("a model without a job is never downloaded; run once where huggingface.co is reachable to "
                      "cache it (a job with `pretrained: true` does, or `hf download {source}`), or pass --weights "
                      "with a folder saved by save_pretrained")


class TransformersAdapter(FrameworkLoopAdapter):
    def __init__(self, job, reporter=None) -> None:
        super().__init__(job, reporter)
        self.device = resolve_device(job.device)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "\r" bars for every save and load would flood the job log
        self.task = get_task(job.spec.task, job)
        self.dataset = None
        self.model = None
        self.processor = None
        self.results = ResultsWriter(job.job_dir, job.spec.task)

    # ------------------------------------------------------------ setup

    def dataset_split(self):
        """How the job's dataset is split when it has no val split on disk (training and ``eval`` read the same
        val images)."""
        return split_options(self.spec.dataset.as_dict(), self.spec.training.seed)

    def prepare_dataset(self) -> None:
        spec = self.spec
        self.dataset = read_dataset(spec.dataset.path, spec.dataset.format, spec.task, split=self.dataset_split())
        if spec.task == "super_resolution" and self.dataset.scale is None and self.setting("upscale"):
            # HR only: LR made at this scale (else at the model's own)
            self.dataset = dataclasses.replace(self.dataset, scale=int(self.setting("upscale")))
        if spec.num_classes and self.dataset.class_names and spec.num_classes != self.dataset.num_classes:
            raise ValueError(f"num_classes is {spec.num_classes} but the dataset has {self.dataset.num_classes} "
                             f"classes ({', '.join(self.dataset.class_names)})")
        self.task.class_names = list(self.dataset.class_names)
        self.task.dataset = self.dataset

    def prepare_model(self) -> None:
        spec = self.spec
        if spec.task in OWN_SIZE_TASKS and not self.asked_image_size():
            self.task.spec = dataclasses.replace(spec, image_size=0)  # the processor keeps the model's own size
        if spec.resume:  # a checkpoint folder of ours: its head already fits
            self.model, self.processor = self._load(spec.resume, pretrained=True, dataset=None)
        else:
            self.model, self.processor = self._load(spec.weights or spec.model, spec.pretrained, self.dataset)
        self.task.processor = self.processor

    def _load(self, source: str, pretrained: bool, dataset, cache_only: bool = False) -> tuple[Any, Any]:
        """(model, processor) from a folder or hub id; ``cache_only``: a hub id from the local cache only, of a
        model this task predicts with (a model without a job)."""
        local = Path(source).expanduser().exists()
        if cache_only and not local:
            use_local_cache_only()
        online = local or (not cache_only and prepare_hub_access())
        try:
            if cache_only:
                check_architecture(str(source), self.spec.task)
            return self.task.build(str(source), pretrained, dataset)
        except Exception as exc:
            if not local and (is_missing_from_cache(exc) or (not online and isinstance(exc, OSError))):
                why = NOT_CACHED_PREDICT.format(source=source) if cache_only else NOT_CACHED_TRAINING
                raise ModelUnavailable(
                    f"model '{source}' is not in the local Hugging Face cache ({hub_cache()}) and {why}") from exc
            raise

    # ------------------------------------------------------------ training

    def training_arguments(self):
        import torch
        from transformers import Seq2SeqTrainingArguments, TrainingArguments

        spec, s = self.spec, self.setting
        training = spec.training
        on_cuda = self.device != "cpu"
        precision = resolve_precision(training.mixed_precision, self.device,
                                      lambda: torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        accumulation = max(training.gradient_accumulation, 1)
        if training.warmup_epochs is not None:  # the epochs' optimizer steps
            samples = len(self.task.samples(self.dataset.train, train=True))
            steps = math.ceil(math.ceil(samples / training.batch_size) / accumulation)
            warmup = math.ceil(training.warmup_epochs * steps)
        else:
            warmup = s("scheduler.warmup_steps") or s("scheduler.warmup_ratio") or 0
        clip = {} if training.gradient_clip is None else {"max_grad_norm": float(training.gradient_clip)}
        primary = primary_metric(spec.task)
        cls = Seq2SeqTrainingArguments if self.task.training_args.get("predict_with_generate") else TrainingArguments
        return cls(
            output_dir=str(self.checkpoint_dir), num_train_epochs=spec.training.epochs,
            per_device_train_batch_size=spec.training.batch_size, per_device_eval_batch_size=spec.training.batch_size,
            learning_rate=spec.training.learning_rate, weight_decay=s("optimizer.weight_decay"),
            adam_beta1=s("optimizer.beta1"), adam_beta2=s("optimizer.beta2"), lr_scheduler_type=s("scheduler.type"),
            warmup_steps=warmup, gradient_accumulation_steps=accumulation, **clip,
            label_smoothing_factor=s("label_smoothing") or 0.0,
            fp16=precision == "fp16", bf16=precision == "bf16", use_cpu=not on_cuda,
            eval_strategy="epoch", save_strategy="epoch", logging_strategy="epoch", save_total_limit=2,
            metric_for_best_model=primary.name.removeprefix("val/"),
            greater_is_better=primary.higher_is_better, dataloader_num_workers=spec.training.num_workers,
            seed=spec.training.seed, data_seed=spec.training.seed, remove_unused_columns=False,
            report_to="none", disable_tqdm=True, **self.task.training_args,
        )

    def train(self) -> None:
        self.recorder.model_size(sum(p.numel() for p in self.model.parameters()))
        trainer = self.task.trainer_class()(
            model=self.model, args=self.training_arguments(),
            train_dataset=RecordDataset(self.task.samples(self.dataset.train, train=True), self.task, train=True),
            eval_dataset=RecordDataset(self.task.samples(self.dataset.val, train=False), self.task, train=False),
            data_collator=self.task.collate, compute_metrics=self.task.compute_metrics,
            processing_class=self.processor, callbacks=[report := Report(self)],
        )
        if getattr(self.task, "evaluate_before_training", False) and not self.spec.resume:
            evaluate_before_training(trainer, report)
        trainer.train(resume_from_checkpoint=self.spec.resume or None)

    def record_validation(self, epoch: int, step: int, reported: dict[str, float]) -> None:
        """Write the evaluation the task just scored as ``epoch``'s validation record, its metrics the
        ``val/*`` ones of ``reported`` (what the epoch reports)."""
        evaluation = self.task.take_evaluation()
        if evaluation is None:
            return
        metrics = {name: value for name, value in reported.items() if name.startswith("val/")}
        self.results.write(ValidationRecord.of(evaluation, task=self.spec.task, epoch=epoch, step=step,
                                               source="training", job=self.job.job_id, metrics=metrics))

    # ------------------------------------------------------------ checkpoints and inference

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        if self.spec.task in OWN_SIZE_TASKS and not self.asked_image_size():  # the size it was trained at
            self.task.spec = dataclasses.replace(self.spec, image_size=0)
        self._load_for_predict(str(path))
        return {"epoch": 0}

    def load_weights(self, weights: str | None) -> None:
        """A model without a job (``adapters.serve``): ``weights`` a folder saved with ``save_pretrained``, or
        None for ``model`` itself, a local folder or a hub id in the local cache (never downloaded). The task's
        Auto class and processor load it; its labels are its ``config.id2label``. Its processor keeps its own
        image size unless the spec asks for another; a model of another task is refused, naming the task."""
        if weights is not None and not Path(weights).is_dir():
            what = "is a file" if Path(weights).exists() else "does not exist"
            raise FileNotFoundError(f"weights {weights} {what}: transformers loads a folder saved with save_pretrained")
        if not self.asked_image_size():  # the task's processor then keeps the size it was saved with
            self.task.spec = dataclasses.replace(self.spec, image_size=0)
        self._load_for_predict(weights or resolve_model(self.spec.model), cache_only=True)

    def _load_for_predict(self, source: str, cache_only: bool = False) -> None:
        self.model, self.processor = self._load(source, pretrained=True, dataset=None, cache_only=cache_only)
        self.task.processor = self.processor
        self.model.to(self.device).eval()

    def prepare_evaluation(self, dataset_classes: list[str] | None = None) -> dict[str, Any]:
        """Switch the loaded model's predict path to what ``eval`` (``adapters.evaluate``) scores (the task's
        ``prepare_evaluation``: detection returns every box down to its evaluation threshold) and say what
        the model predicts: its classes (``config.id2label``), for super-resolution its ``scale``, and what the task's
        own ``prepare_evaluation`` says (top-down pose: ``boxes: "truth"``, it is given the images' boxes). A task
        with ``open_vocabulary = True`` (zero-shot) predicts the evaluated dataset's ``dataset_classes`` instead:
        they become its ``class_names``, which its predict looks for when given no labels."""
        if self.model is None:
            raise RuntimeError("load a checkpoint before evaluating")
        told = dict(self.task.prepare_evaluation() or {})  # top-down pose: {"boxes": "truth"}
        if getattr(self.task, "open_vocabulary", False) and dataset_classes:
            self.task.class_names = [str(name) for name in dataset_classes]
            return {"classes": list(self.task.class_names), **told}
        config = self.model.config
        out: dict[str, Any] = {"classes": [] if self.spec.task in ("super_resolution", "ocr") else
                               self.task.model_classes(self.model) if hasattr(self.task, "model_classes") else
                               [config.id2label[i] for i in range(config.num_labels)]}
        if self.spec.task == "super_resolution":
            out["scale"] = int(config.upscale)
        return {**out, **told}

    def predict(self, image_path: str | Path, top_k: int = 5, annotate: bool = False, **options) -> dict[str, Any]:
        """One image's predictions: the one-image case of :meth:`predict_batch`."""
        return self.predict_batch([image_path], top_k, annotate, **options)[0]

    def predict_batch(self, images: list[str | Path], top_k: int = 5, annotate: bool = False,
                      **options) -> list[dict[str, Any]]:
        """Each image's predictions, the images through the model together as far as the task can
        (``HFTask.predict_batch``). Timings per image: its own decode (``preprocess``) and its share of
        the task's processing, forward passes and post-processing (``inference``). ``options``: what the task
        takes at predict time besides images (``adapters.entrypoint.PREDICT_OPTIONS``: a zero-shot task's
        ``labels``, visual QA's ``question``; per image, in order: top-down pose's ``boxes``, visual QA's
        ``questions``); unset ones are left out, one the task does not take is refused."""
        options = task_options(self.task, options)
        if self.model is None:
            raise RuntimeError("load a checkpoint before predicting")
        opened, decode_ms = [], []
        open_input = getattr(self.task, "open_input", None)  # a task whose inputs are no images (video) opens its own
        for path in images:
            started = time.perf_counter()
            opened.append(open_input(str(path)) if open_input else open_image(ImageRecord(str(path))))
            decode_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        answers = self.task.predict_batch(self.model, self.processor, opened, top_k, annotate, **options)
        each_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
        for out, image, decoded in zip(answers, opened, decode_ms, strict=True):
            out.update(task=self.spec.task, width=image.width, height=image.height)
            out.setdefault("timings_ms", {}).update(preprocess=decoded, inference=each_ms)
        return answers

    # ------------------------------------------------------------ ONNX (adapters.onnx_export)

    def export_onnx(self, path: Path, *, dynamic: bool, half: bool, opset: int | None) -> dict[str, Any]:
        """The loaded model through ``torch.onnx``: inputs the processor's tensors that the model takes
        (``pixel_values``, DETR's ``pixel_mask``), outputs those the task's post-processing reads (logits,
        boxes, mask queries)."""
        import inspect

        from PIL import Image

        from adapters.onnx_export import ExportError, torch_export
        from adapters.transformers.tasks.common import per_image_inputs

        if self.spec.task == "pose_estimation":
            raise ExportError("Transformers pose estimation (ViTPose) is not exported to ONNX yet: its inputs are "
                              "crops of people's boxes, not whole images")
        takes = inspect.signature(self.model.forward).parameters
        size = int(self.spec.image_size or 224)
        example = {k: v.to(self.device) for k, v in per_image_inputs(self.processor, [Image.new("RGB", (size, size))])[0].items()
                   if k in takes}
        model = _Outputs(self.model.eval())
        described = torch_export(model, example, path, dynamic=dynamic, half=half, opset=opset, keyword=True)
        return {**described, "class_names": [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]}

    def onnx_inputs(self, images: list[str | Path]) -> list[dict[str, Any]]:
        """Each image's model inputs as :meth:`predict_batch` makes them (the processor's, one image each)."""
        import inspect

        from adapters.transformers.tasks.common import per_image_inputs

        takes = inspect.signature(self.model.forward).parameters
        opened = [open_image(ImageRecord(str(p))) for p in images]
        return [{k: v for k, v in item.items() if k in takes} for item in per_image_inputs(self.processor, opened)]

    def onnx_reference(self, feeds: dict[str, Any]) -> dict[str, Any]:
        import torch

        with torch.inference_mode():
            out = _Outputs(self.model.eval())(**{k: v.to(self.device) for k, v in feeds.items()})
        return dict(out)

    def use_onnx(self, path: str | Path) -> None:
        """Predict with the ONNX export at `path` (onnxruntime): the task's own processing around it."""
        from adapters.onnx_export import OnnxModel

        self.model = OnnxModel(path, self.device, config=self.model.config, fields=True)


#: The outputs a task's post-processing reads; an export keeps these (all tensors when none is there).
ONNX_OUTPUTS = ("logits", "pred_boxes", "class_queries_logits", "masks_queries_logits", "pred_masks",
                "reconstruction")


def _outputs_module():
    import torch

    class Outputs(torch.nn.Module):
        """A Transformers model whose output keeps only the tensors the task's post-processing reads."""

        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, **inputs):
            out = self.model(**inputs)
            tensors = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
            return {k: v for k, v in tensors.items() if k in ONNX_OUTPUTS} or tensors

    return Outputs


def _Outputs(model):  # noqa: N802 (the torch module class is built on first use)
    return _outputs_module()(model)


#: Task -> the ``modeling_auto`` mappings whose model classes predict it (OCR: one class).
PREDICT_CLASSES = {"image_classification": ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",),
                   "object_detection": ("MODEL_FOR_OBJECT_DETECTION_MAPPING_NAMES",),
                   "semantic_segmentation": ("MODEL_FOR_SEMANTIC_SEGMENTATION_MAPPING_NAMES",
                                             "MODEL_FOR_UNIVERSAL_SEGMENTATION_MAPPING_NAMES"),
                   "super_resolution": ("MODEL_FOR_IMAGE_TO_IMAGE_MAPPING_NAMES",),
                   "ocr": (),
                   "zero_shot_detection": ("MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES",),
                   "video_classification": ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES",),
                   "zero_shot_classification": ("MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING_NAMES",),
                   "visual_qa": ("MODEL_FOR_VISUAL_QUESTION_ANSWERING_MAPPING_NAMES",),
                   "image_captioning": ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES",),
                   "depth_estimation": ("MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES",),
                   "pose_estimation": ()}


#: Task -> model classes that predict it beyond its mappings (OCR's one class; LLaVA answers visual questions).
EXTRA_PREDICT_CLASSES = {"ocr": ("VisionEncoderDecoderModel",), "visual_qa": ("LlavaForConditionalGeneration",),
                         "pose_estimation": ("VitPoseForPoseEstimation",)}


def task_options(task, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less the unset ones (None, empty); ValueError naming those the task's ``predict_batch`` does not
    take."""
    import inspect

    given = {key: value for key, value in options.items() if value is not None and value not in ("", [], ())}
    refused = sorted(set(given) - set(inspect.signature(task.predict_batch).parameters))
    if refused:
        raise ValueError(f"{task.name} takes no {' or '.join(refused)} at predict time")
    return given


def check_architecture(source: str, task: str) -> None:
    """Refuse a model whose head is not the task's (``config.architectures``), naming the task it is for: the
    task's Auto class would load it with a fresh, untrained head and predict noise. A config that names no
    architecture is left to the task's own checks."""
    from transformers import AutoConfig
    from transformers.models.auto import modeling_auto

    def classes(name: str) -> set[str]:
        found = set(EXTRA_PREDICT_CLASSES.get(name, ()))
        for mapping in PREDICT_CLASSES[name]:
            for value in getattr(modeling_auto, mapping).values():
                found.update(value if isinstance(value, (list, tuple)) else (value,))
        return found

    architectures = list(getattr(AutoConfig.from_pretrained(source), "architectures", None) or [])
    if not architectures or classes(task) & set(architectures):
        return
    theirs = [name for name in PREDICT_CLASSES if name != task and classes(name) & set(architectures)]
    fix = f"predict it with --task {theirs[0]}" if theirs else f"it has no {task} head: train one in a job first"
    raise ValueError(f"'{source}' is a {architectures[0]}{' (' + theirs[0] + ')' if theirs else ''}, not a model "
                     f"for {task}; {fix}")
