"""``TimmAdapter``: image classification with any timm model (child env only).

timm itself is imported inside ``_create_model``, after :func:`adapters.hub.prepare_hub_access`
had the chance to switch huggingface_hub to offline mode, so pretrained weights fail fast
offline instead of retrying for most of a minute.
"""

from __future__ import annotations

import logging
import random
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from adapters.base import TrainingAdapter
from adapters.datasets import ImageRecord, open_image, read_dataset, split_options
from adapters.devices import resolve_device
from adapters.evaluation.classification import classification_results
from adapters.evaluation.confusion import ConfusionMatrix
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from adapters.files import atomic_path
from adapters.hub import hub_cache, is_missing_from_cache, prepare_hub_access, use_local_cache_only
from adapters.metrics import LR, TRAIN_IMAGES_PER_S, TRAIN_LOSS, VAL_LOSS, VAL_TOP5
from adapters.steps import OptimizerSteps
from adapters.timm.data import IMAGENET_MEAN, IMAGENET_STD, ImageDataset, build_loader, build_transform
from adapters.timm.weights import label_names, load_state, read_state_file

log = logging.getLogger("visionyard.timm")


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but cannot be had (offline and not cached)."""


#: Why pretrained weights that are not cached can't be had, and what to do: in a training job, and for
#: a model without a job (whose pretrained weights come from the local cache only).
NOT_CACHED_TRAINING = ("the model hub is unreachable; set `pretrained: false` or give local weights with "
                       "`weights: PATH`")
NOT_CACHED_PREDICT = ("a model without a job is never downloaded; pass --weights FILE (a state dict: .pth, .pt, "
                      ".bin, .safetensors), or run once where huggingface.co is reachable to cache them (a job with "
                      "`pretrained: true` does)")


class TimmAdapter(TrainingAdapter):
    def __init__(self, job, reporter=None) -> None:
        super().__init__(job, reporter)
        self.device = torch.device(resolve_device(job.device))
        self.steps: OptimizerSteps | None = None
        self.class_names: list[str] = []
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD
        self.image_size = int(job.spec.image_size)
        self.criterion: nn.Module = nn.CrossEntropyLoss()
        self._samples: dict[str, list[ImageRecord]] = {}
        self._loaders: dict[str, Any] = {}
        self.results = ResultsWriter(job.job_dir, job.spec.task)

    # ------------------------------------------------------------ setup

    def dataset_split(self):
        """How the job's dataset is split when it has no val split on disk: the spec's settings, the job's
        seed, ``data.val_split`` when the spec names no ratio (training and ``eval`` read the same val images)."""
        spec = self.spec
        return split_options(spec.dataset.as_dict(), spec.training.seed, self.setting("data.val_split"))

    def prepare_dataset(self) -> None:
        spec = self.spec
        seed_everything(spec.training.seed)
        data = read_dataset(spec.dataset.path, spec.dataset.format, spec.task, split=self.dataset_split())
        if spec.num_classes and spec.num_classes != len(data.class_names):
            raise ValueError(
                f"num_classes is {spec.num_classes} but the dataset has {len(data.class_names)} classes "
                f"({', '.join(data.class_names)})"
            )
        self.class_names = list(data.class_names)
        self._samples = {"train": data.train, "val": data.val}

    def prepare_model(self) -> None:
        spec = self.spec
        self.model = self._create_model(
            len(self.class_names), pretrained=spec.pretrained, weights=spec.weights
        )
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.mean = tuple(float(x) for x in cfg.get("mean") or IMAGENET_MEAN)
        self.std = tuple(float(x) for x in cfg.get("std") or IMAGENET_STD)
        self.optimizer = build_optimizer(self.model, spec.training.learning_rate, self.setting)
        self.scheduler = build_scheduler(self.optimizer, spec.training.epochs, self.setting, spec.training.warmup_epochs)
        self.steps = OptimizerSteps(self.model, self.optimizer, self.device, spec.training, make_ema=_ema)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=float(self.setting("loss.label_smoothing", 0.0)))
        self._loaders = {split: self._loader(split) for split in ("train", "val")}
        n = sum(p.numel() for p in self.model.parameters())
        self.recorder.model_size(n)
        log.info("model %s: %.2fM parameters, device %s, precision %s", spec.model, n / 1e6, self.device,
                 self.steps.precision)

    def _loader(self, split: str):
        train = split == "train"
        transform = build_transform(
            self.image_size,
            self.mean,
            self.std,
            train=train,
            random_flip=bool(self.setting("augmentation.random_flip", False)),
            random_crop=bool(self.setting("augmentation.random_crop", False)),
        )
        training = self.spec.training
        dataset = ImageDataset(self._samples[split], transform)
        return build_loader(
            dataset, training.batch_size, training.num_workers, self.device, train, training.seed
        )

    def _create_model(self, num_classes: int | None, pretrained: bool, weights: str | None,
                      not_cached: str = NOT_CACHED_TRAINING) -> nn.Module:
        """The model with a head of ``num_classes`` (None: its pretrained head's size)."""
        name = self.spec.model
        kwargs: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
        drop_rate = float(self.setting("model.drop_rate", 0.0) or 0.0)
        if drop_rate > 0:
            kwargs["drop_rate"] = drop_rate
        if weights:
            if not Path(weights).is_file():
                raise FileNotFoundError(f"weights file {weights} does not exist")
            # Loading through the pretrained path drops a classifier head of another size.
            kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
        elif pretrained:
            prepare_hub_access()
            kwargs["pretrained"] = True
        import timm

        try:
            model = timm.create_model(name, **kwargs)
        except Exception as exc:
            if kwargs.get("pretrained") and not weights and is_missing_from_cache(exc):
                raise PretrainedWeightsUnavailable(
                    f"pretrained weights for '{name}' are not in the local cache ({hub_cache()}) and {not_cached}"
                ) from exc
            raise
        return model.to(self.device)

    # ------------------------------------------------------------ training

    def train_epoch(self, epoch: int) -> dict[str, float]:
        model, loader, steps = self.model, self._loaders["train"], self.steps
        model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        total_loss, seen = 0.0, 0
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        for step, (images, labels) in enumerate(loader, start=1):
            images, labels = self._to_device(images, labels)
            with steps.autocast():
                loss = self.criterion(model(images), labels)
            steps.backward(loss, step, len(loader))
            total_loss += loss.item() * labels.size(0)
            seen += labels.size(0)
            self.report_progress(epoch, step, len(loader))
        self.scheduler.step()
        return {TRAIN_LOSS: total_loss / max(seen, 1), LR: lr,
                TRAIN_IMAGES_PER_S: seen / max(time.perf_counter() - started, 1e-9)}

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, float]:
        """``val/loss``, accuracy and macro precision / recall / F1 from the confusion matrix (and
        ``val/top5`` from 5 classes); the matrix and per-class rows go to the job's results folder."""
        model = self.steps.eval_model
        model.eval()
        n = len(self.class_names)
        confusion = ConfusionMatrix(n)
        top5 = MulticlassAccuracy(num_classes=n, top_k=5, average="micro").to(self.device) if n >= 5 else None
        # Plain cross-entropy, without label smoothing, so val/loss compares across runs.
        total_loss, seen = 0.0, 0
        for images, labels in self._loaders["val"]:
            images, labels = self._to_device(images, labels)
            with self.steps.autocast():
                logits = model(images).float()
            total_loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            seen += labels.size(0)
            confusion.update(logits.argmax(1).cpu().numpy(), labels.cpu().numpy())
            if top5 is not None:
                top5.update(logits, labels)
        evaluation = classification_results(confusion.matrix, self.class_names)
        out = {VAL_LOSS: total_loss / max(seen, 1), **evaluation.metrics}
        if top5 is not None:
            out[VAL_TOP5] = float(top5.compute())
        self.results.write(ValidationRecord.of(evaluation, task=self.spec.task, epoch=epoch, source="training",
                                               step=epoch * len(self._loaders["train"]), job=self.job.job_id,
                                               metrics=out))
        return out

    def _to_device(self, images, labels):
        non_blocking = self.device.type == "cuda"
        return images.to(self.device, non_blocking=non_blocking), labels.to(
            self.device, non_blocking=non_blocking
        )

    # ------------------------------------------------------------ checkpoints

    def save_checkpoint(self, kind: str, epoch: int, metrics: dict[str, float]) -> Path:
        state = {
            "model": self.steps.eval_model.state_dict(),  # what predict, eval and plain timm load: the EMA's when kept
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "best_metric": self.best_metric,
            "best_epoch": self.best_epoch,
            "metrics": {k: float(v) for k, v in metrics.items()},
            "class_names": list(self.class_names),
            "model_name": self.spec.model,
            "num_classes": len(self.class_names),
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
        }
        if self.steps.ema is not None:  # resuming goes on from the trained weights, not the average
            state["train_model"] = self.model.state_dict()
        if self.steps.scaler.is_enabled():
            state["scaler"] = self.steps.scaler.state_dict()
        path = self.checkpoint_path(kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:  # a kill or a full disk mid-write never leaves a torn checkpoint
            torch.save(state, tmp)
        return path

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if self.model is None:  # predict: build the model the checkpoint describes
            self.class_names = list(state["class_names"])
            self.image_size = int(state["image_size"])
            self.mean, self.std = tuple(state["mean"]), tuple(state["std"])
            self.model = self._create_model(int(state["num_classes"]), pretrained=False, weights=None)
        elif state.get("model_name") != self.spec.model or list(state["class_names"]) != self.class_names:
            raise ValueError(
                f"checkpoint {path} is for model '{state.get('model_name')}' with classes "
                f"{state['class_names']}; this job trains '{self.spec.model}' with classes {self.class_names}"
            )
        if self.steps is not None and state.get("train_model") is not None:  # resuming a run that kept an EMA
            self.model.load_state_dict(state["train_model"])
            if self.steps.ema is not None:
                self.steps.ema.module.load_state_dict(state["model"])
        else:
            self.model.load_state_dict(state["model"])
            if self.steps is not None and self.steps.ema is not None:
                self.steps.ema.module.load_state_dict(state["model"])
        if self.steps is not None and state.get("scaler") and self.steps.scaler.is_enabled():
            self.steps.scaler.load_state_dict(state["scaler"])
        if self.optimizer is not None and state.get("optimizer"):
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler = self._replay_schedule(int(state["epoch"]))
        return state

    def load_weights(self, weights: str | None) -> None:
        """A model without a job (``adapters.serve``): ``weights`` a state dict file (``.pth``, ``.pt``,
        ``.bin``, ``.safetensors``; plain, under ``state_dict`` or ``model``, a checkpoint of ours too), or
        None for the model's pretrained weights from the local cache only (never downloaded).

        Its classes are the file's (a checkpoint of ours names them), ImageNet's for an ImageNet head, else
        ``class N``; its input size the spec's when asked, else the checkpoint's or the pretrained one's."""
        found = None
        if weights is None:
            use_local_cache_only()
            self.model = self._create_model(None, pretrained=True, weights=None, not_cached=NOT_CACHED_PREDICT)
        else:
            found = read_state_file(Path(weights))
            if found.model_name and found.model_name.split(".")[0] != self.spec.model.split(".")[0]:
                raise ValueError(f"{weights} is a checkpoint of timm model '{found.model_name}', not "
                                 f"'{self.spec.model}'; predict with --model {found.model_name}")
            self.model = self._create_model(None, pretrained=False, weights=None)
            load_state(self.model, found.state, Path(weights), self.spec.model)
            self.model.to(self.device)
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.class_names = label_names(self.model.num_classes, found and found.class_names)
        self.mean = (found and found.mean) or tuple(float(x) for x in cfg.get("mean") or IMAGENET_MEAN)
        self.std = (found and found.std) or tuple(float(x) for x in cfg.get("std") or IMAGENET_STD)
        native = (found and found.image_size) or (cfg.get("input_size") or (0,))[-1]
        self.image_size = int(self.asked_image_size() or native or self.spec.image_size)
        log.info("model %s: %d classes, %d px, device %s", self.spec.model, len(self.class_names), self.image_size,
                 self.device)

    def _replay_schedule(self, epochs_done: int):
        """This job's schedule, stepped to where ``epochs_done`` epochs leave it.

        Rebuilt rather than restored from the checkpoint, so resuming with more epochs than
        the first run had stretches the schedule to the new end instead of running on at the
        old one's final learning rate. With the same epoch count both are identical.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = self.spec.training.learning_rate
        scheduler = build_scheduler(self.optimizer, self.spec.training.epochs, self.setting,
                                    self.spec.training.warmup_epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
            for _ in range(epochs_done):
                scheduler.step()
        return scheduler

    # ------------------------------------------------------------ inference

    def prepare_evaluation(self) -> dict[str, Any]:
        """What the loaded model predicts, for ``eval`` (``adapters.evaluate``): its classes. Predict needs no
        change for scoring: every image gets its top-k classes."""
        return {"classes": list(self.class_names)}

    def predict(self, image_path: str | Path, top_k: int = 5, annotate: bool = False) -> dict[str, Any]:
        """Top-k classes of one image, in the shape ``adapters.entrypoint`` documents: the
        one-image case of :meth:`predict_batch`.

        ``annotate`` is ignored: classification draws nothing on the image.
        """
        return self.predict_batch([image_path], top_k, annotate)[0]

    @torch.inference_mode()
    def predict_batch(self, images: list[str | Path], top_k: int = 5, annotate: bool = False) -> list[dict[str, Any]]:
        """Top-k classes of each image, from one forward pass over all of them.

        Each image is resized and normalised as it would be alone (the eval transform makes every
        image ``image_size`` square), so stacking changes no input. Timings are per image: its own
        preprocessing, and its share of the batch's forward pass and post-processing.
        """
        if self.model is None:
            raise RuntimeError("load a checkpoint before predicting")
        if not images:
            return []
        self.model.eval()
        transform = build_transform(self.image_size, self.mean, self.std)
        opened, tensors, preprocess_ms = [], [], []
        for path in images:
            started = time.perf_counter()
            opened.append(open_image(ImageRecord(str(path))))
            tensors.append(transform(opened[-1]))
            preprocess_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        logits = self.model(torch.stack(tensors).to(self.device))
        if logits.is_cuda:
            torch.cuda.synchronize(logits.device)
        inferred = time.perf_counter()
        scores, indices = torch.softmax(logits.float(), dim=1).topk(min(top_k, logits.shape[1]), dim=1)
        rows = zip(scores.tolist(), indices.tolist(), strict=True)
        answers = [{"task": self.spec.task, "width": image.width, "height": image.height,
                    "predictions": [{"label": self.class_names[i], "score": float(s), "index": int(i)}
                                    for s, i in zip(row_scores, row_indices, strict=True)]}
                   for image, (row_scores, row_indices) in zip(opened, rows, strict=True)]
        done = time.perf_counter()
        for answer, preprocess in zip(answers, preprocess_ms, strict=True):
            answer["timings_ms"] = {"preprocess": preprocess,
                                    "inference": (inferred - started) * 1000 / len(images),
                                    "postprocess": (done - inferred) * 1000 / len(images)}
        return answers


    # ------------------------------------------------------------ ONNX (adapters.onnx_export)

    def export_onnx(self, path: Path, *, dynamic: bool, half: bool, opset: int | None) -> dict[str, Any]:
        """The loaded model through ``torch.onnx``: input ``pixel_values`` (batch, 3, size, size; height and
        width free too when `dynamic`), output ``logits``."""
        from adapters.onnx_export import torch_export

        model = self.model.eval()
        example = {"pixel_values": torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)}
        described = torch_export(_Logits(model), example, path, dynamic=dynamic, half=half, opset=opset)
        return {**described, "image_size": self.image_size, "class_names": list(self.class_names)}

    def onnx_inputs(self, images: list[str | Path]) -> list[dict[str, Any]]:
        """The model's inputs for `images`, as :meth:`predict_batch` makes them: one batch."""
        transform = build_transform(self.image_size, self.mean, self.std)
        return [{"pixel_values": torch.stack([transform(open_image(ImageRecord(str(p)))) for p in images])}]

    @torch.inference_mode()
    def onnx_reference(self, feeds: dict[str, Any]) -> dict[str, Any]:
        return {"logits": self.model.eval()(feeds["pixel_values"].to(self.device))}

    def use_onnx(self, path: str | Path) -> None:
        """Predict with the ONNX export at `path` (onnxruntime), the same pre- and post-processing."""
        from adapters.onnx_export import OnnxModel

        self.model = OnnxModel(path, self.device)

# ---------------------------------------------------------------- building blocks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy

        numpy.random.seed(seed % 2**32)
    except ImportError:
        pass


def build_optimizer(model: nn.Module, lr: float, setting) -> torch.optim.Optimizer:
    kind = setting("optimizer.type", "adamw")
    weight_decay = float(setting("optimizer.weight_decay", 0.0))
    params = [p for p in model.parameters() if p.requires_grad]
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if kind == "sgd":
        momentum = float(setting("optimizer.momentum", 0.9))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=False)
    raise ValueError(f"Unknown optimizer '{kind}'. Valid: adam, adamw, sgd")


def build_scheduler(optimizer: torch.optim.Optimizer, epochs: int, setting, warmup_epochs: float | None = None):
    """A per-epoch schedule, after ``warmup_epochs`` (``training.warmup_epochs``; a hand-written job.json may
    still say ``scheduler.warmup_epochs``) of linear warmup."""
    from torch.optim import lr_scheduler as S

    kind = setting("scheduler.type", "cosine")
    asked = warmup_epochs if warmup_epochs is not None else setting("scheduler.warmup_epochs", 0)
    warmup = min(int(asked or 0), max(epochs - 1, 0))
    if kind == "cosine":
        main = S.CosineAnnealingLR(optimizer, T_max=max(epochs - warmup, 1))
    elif kind == "step":
        step_size, gamma = int(setting("scheduler.step_size", 10)), float(setting("scheduler.gamma", 0.1))
        main = S.StepLR(optimizer, step_size=step_size, gamma=gamma)
    elif kind == "none":
        main = S.ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        raise ValueError(f"Unknown scheduler '{kind}'. Valid: cosine, step, none")
    if warmup <= 0:
        return main
    ramp = S.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return S.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def _ema(model: nn.Module) -> nn.Module:
    """timm's EMA of ``model``'s weights, as its train.py keeps one (decay 0.9998), warmed up so that a
    short run's average follows the weights instead of staying near the initial ones."""
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=0.9998, use_warmup=True)


class _Logits(nn.Module):
    """A timm model whose output is named ``logits`` in its export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return {"logits": self.model(pixel_values)}
