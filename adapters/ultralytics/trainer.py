"""``UltralyticsAdapter``: YOLOv8 / v9 / 11 trained by Ultralytics' own trainer (child env only).

Ultralytics runs the loop; its callbacks report through the shared ``RunRecorder``: progress per
batch (``on_train_batch_end``), the checkpoints it wrote (``on_model_save``) and the epoch's
metrics in our vocabulary (``on_fit_epoch_end``), which also writes the epoch's validation record
under ``results/val/`` (per-class results and confusion matrix from Ultralytics' validator:
``adapters.ultralytics.results``). ``best.pt`` is Ultralytics' best (by its fitness, which for
detection weighs mAP50-95 at 0.9); ``last.pt`` is written every epoch and keeps its optimizer state
at the end, so ``resume:`` of a finished job trains on at the next epoch.

The dataset is staged into the job dir (``adapters.datasets.stage``): YOLO split folders linked,
any other format converted, so Ultralytics' label caches never land in the user's dataset.

Offline and quiet (``quiet_environment``, before Ultralytics is imported): no DNS probe
(``YOLO_OFFLINE``), no font download (matplotlib's DejaVu Sans stands in for ``Arial.ttf`` in a
config dir of the job's own), no pip auto-install, no hub, no MLflow/W&B/... integrations (the
daemon tracks the run), and progress bars that print one line when they finish instead of
thousands of ``\\r`` refreshes.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from adapters.base import BEST, LAST, FrameworkLoopAdapter
from adapters.datasets import read_dataset, split_options
from adapters.datasets.stage import stage
from adapters.devices import resolve_device
from adapters.evaluation.record import ResultsWriter, ValidationRecord
from adapters.files import atomic_path
from adapters.metrics import TRAIN_IMAGES_PER_S, VAL_ACCURACY
from adapters.ultralytics.catalog import TASK_SUFFIX
from adapters.ultralytics.controls import clip_at, train_arguments
from adapters.ultralytics.metrics import epoch_metrics
from adapters.ultralytics.predict import load_images, open_upright, png_bytes, predictions_of
from adapters.ultralytics.results import PARTS, ConfusionCounter, validation_results

log = logging.getLogger("visionyard.ultralytics")

#: Ultralytics' integrations and phone-home switches, all off: the daemon tracks every run.
QUIET_SETTINGS = {"sync": False, "hub": False, "mlflow": False, "clearml": False, "comet": False, "dvc": False,
                  "raytune": False, "tensorboard": False, "wandb": False, "neptune": False,
                  "vscode_msg": False, "openvino_msg": False}
#: Where the data yaml and the staged dataset go, inside the job dir.
DATA_DIR = "data"
#: Our task -> the ``task`` an Ultralytics model file says it does.
YOLO_TASKS = {"object_detection": "detect", "instance_segmentation": "segment", "pose_estimation": "pose",
              "obb_detection": "obb", "image_classification": "classify"}


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights were asked for but are not on this machine."""


def quiet_environment(config_root: Path) -> None:
    """Environment for an offline, quiet Ultralytics; call before importing it."""
    config = config_root / "Ultralytics"
    config.mkdir(parents=True, exist_ok=True)
    os.environ.update(YOLO_CONFIG_DIR=str(config_root), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")
    font = config / "Arial.ttf"
    if not font.exists():  # found without importing matplotlib (half a second a job)
        import importlib.util

        package = Path(importlib.util.find_spec("matplotlib").origin).parent
        shutil.copyfile(package / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf", font)


def _import_ultralytics():
    import ultralytics.utils.tqdm as bars

    # Non-interactive bars print their final state once, as a plain line: the job log gets one
    # line per epoch and phase, and live progress reaches `watch` through our own events.
    bars.is_noninteractive_console = lambda: True
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    SETTINGS.update({k: v for k, v in QUIET_SETTINGS.items() if k in SETTINGS})
    return YOLO, SETTINGS


def model_name(model: str, task: str) -> str:
    """``yolov8n`` + pose → ``yolov8n-pose``; a name that already has the task's suffix stays."""
    suffix = TASK_SUFFIX[task]
    if suffix and model.endswith(suffix):
        return model
    for other in TASK_SUFFIX.values():
        if other and model.endswith(other):
            raise ValueError(f"model '{model}' is a {other.lstrip('-')} model, but the task is {task}; "
                             f"use '{model.removesuffix(other)}'")
    return model + suffix


def pretrained_file(name: str, settings, remedy: str) -> Path:
    """``<name>.pt`` in Ultralytics' weights dir, when it is there: this runner never downloads weights."""
    weights = Path(settings["weights_dir"]).resolve() / f"{name.removesuffix('.pt')}.pt"
    if not weights.is_file():
        raise PretrainedWeightsUnavailable(f"pretrained weights {weights.name} are not on this machine (looked in "
                                           f"{weights.parent}) and this runner does not download them; {remedy}")
    return weights


def ultralytics_device(device: str) -> str:
    """A resolved device (``cpu``, ``cuda:N``) as Ultralytics names it (``cpu``, ``N``)."""
    return "cpu" if device == "cpu" else device.partition(":")[2]


class UltralyticsAdapter(FrameworkLoopAdapter):
    def __init__(self, job, reporter=None) -> None:
        super().__init__(job, reporter)
        self.device = resolve_device(job.device)
        quiet_environment(Path(job.job_dir) / "ultralytics-config")
        self.task = job.spec.task
        self.class_names: list[str] = []
        self.data: Path | None = None
        self.model = None
        self.image_size = int(job.spec.image_size)
        self._saved: dict[str, Path] = {}  # checkpoints Ultralytics wrote this epoch
        self._reported: set[int] = set()
        self._step = 0
        self.results = ResultsWriter(job.job_dir, self.task)
        self._predict_args: dict[str, Any] = {}  # what `prepare_evaluation` sets for scoring
        self._confusion = ConfusionCounter() if self.task in PARTS else None
        self._validated = False  # a training validation ran this epoch
        self._stopper = None  # training.early_stopping, when the spec asks for it
        self._epoch_started, self._train_seconds = 0.0, 0.0  # the epoch's training pass, for its images/s

    # ------------------------------------------------------------ setup

    def prepare_dataset(self) -> None:
        spec = self.spec
        split = split_options(spec.dataset.as_dict(), spec.training.seed)
        source = read_dataset(spec.dataset.path, spec.dataset.format, self.task, split=split)
        if spec.num_classes and spec.num_classes != source.num_classes:
            raise ValueError(f"num_classes is {spec.num_classes} but the dataset has {source.num_classes} classes "
                             f"({', '.join(source.class_names)})")
        self.class_names = list(source.class_names)
        classify = self.task == "image_classification"
        staged = stage(spec.dataset.path, spec.dataset.format, "imagefolder" if classify else "yolo", self.task,
                       Path(self.job.job_dir) / DATA_DIR, split)
        if classify:
            self.data = staged
            return
        doc: dict[str, Any] = {"path": str(staged), "train": "images/train", "val": "images/val",
                               "names": dict(enumerate(self.class_names))}
        if source.kpt_shape:
            doc["kpt_shape"] = list(source.kpt_shape)
        self.data = Path(self.job.job_dir) / "data.yaml"
        self.data.write_text(yaml.safe_dump(doc, sort_keys=False))

    def prepare_model(self) -> None:
        yolo, settings = _import_ultralytics()
        spec = self.spec
        name = model_name(spec.model, self.task)
        if spec.resume:
            self.model = yolo(str(self._resume_checkpoint(Path(spec.resume))))
        elif spec.weights:
            self.model = yolo(spec.weights)
        elif spec.pretrained:
            self.model = yolo(str(pretrained_file(name, settings, "put the file there, give `weights: PATH`, or set "
                                                                  "`pretrained: false`")))
        else:
            self.model = yolo(f"{name}.yaml")
        self._stopper = self.early_stopper()
        for event, callback in (("on_pretrain_routine_end", self._on_setup),
                                ("on_train_epoch_start", self._on_epoch_start),
                                ("on_train_epoch_end", self._on_train_epoch_end),
                                ("on_train_batch_end", self._on_batch_end),
                                ("on_model_save", self._on_model_save),
                                ("on_val_start", self._on_val_start),
                                ("on_val_end", self._on_val_end),
                                ("on_fit_epoch_end", self._on_fit_epoch_end),
                                ("on_train_end", self._on_train_end)):
            self.model.add_callback(event, callback)

    def _resume_checkpoint(self, resume: Path) -> Path:
        """A copy of ``resume`` in this job's dir that trains to this job's epochs.

        Ultralytics resumes to the epochs the checkpoint was started with; the copy carries ours,
        and the resumed run's ``best.pt`` comes along so this job has a best from the start.
        """
        import torch

        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        done = int(ckpt.get("epoch", -1)) + 1
        if done <= 0:
            raise ValueError(f"{resume} holds no unfinished training to resume (it is a final checkpoint); "
                             "train from it with `weights:` instead")
        if done >= self.spec.training.epochs:
            raise ValueError(f"{resume} has trained {done} epoch(s); set training.epochs above {done} to resume")
        ckpt["train_args"]["epochs"] = self.spec.training.epochs
        target = Path(self.job.job_dir) / "resume.pt"
        torch.save(ckpt, target)
        best = resume.with_name("best.pt")
        weights = self.checkpoint_dir / "weights"
        if best.is_file() and best != weights / "best.pt":
            weights.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(best, weights / "best.pt")
            self.recorder.checkpoint(weights / "best.pt", BEST, done)
        return target

    # ------------------------------------------------------------ training

    def train(self) -> None:
        spec, s = self.spec, self.setting
        common: dict[str, Any] = dict(
            data=str(self.data), imgsz=int(spec.image_size), batch=spec.training.batch_size,
            device=ultralytics_device(self.device), workers=spec.training.num_workers, plots=False,
        )
        if spec.resume:  # the rest comes from the checkpoint's own arguments
            self.model.train(resume=str(Path(self.job.job_dir) / "resume.pt"), save_dir=str(self.checkpoint_dir),
                             **common)
            return
        args = dict(
            common, project=str(self.checkpoint_dir.parent), name=self.checkpoint_dir.name, exist_ok=True,
            epochs=spec.training.epochs, seed=spec.training.seed, pretrained=False, verbose=True,
            optimizer=s("optimizer.type", "SGD"), lr0=spec.training.learning_rate,
            momentum=s("optimizer.momentum"), weight_decay=s("optimizer.weight_decay"), lrf=s("lrf"),
            cos_lr=s("cos_lr"), close_mosaic=s("close_mosaic"), **(s("augmentation") or {}),
            **train_arguments(spec.training, self.device),
        )
        if self.task == "image_classification":
            args["dropout"] = s("dropout")
        self.model.train(**args)

    def _on_setup(self, trainer) -> None:
        self.recorder.model_size(sum(p.numel() for p in trainer.model.parameters()))
        if self.spec.training.gradient_clip is not None:
            clip_at(trainer, float(self.spec.training.gradient_clip))

    def _on_epoch_start(self, trainer) -> None:
        self._epoch_started = time.perf_counter()
        self._step = 0
        self._saved.clear()
        self._validated = False

    def _on_train_epoch_end(self, trainer) -> None:  # before the epoch's validation
        self._train_seconds = time.perf_counter() - self._epoch_started

    def _on_val_start(self, validator) -> None:
        if self._confusion is not None:
            self._confusion.start(validator)

    def _on_val_end(self, validator) -> None:
        self._validated |= validator.training

    def _on_batch_end(self, trainer) -> None:
        self._step += 1
        self.recorder.progress(trainer.epoch + 1, self._step, len(trainer.train_loader))

    def _on_model_save(self, trainer) -> None:
        self._saved[LAST] = Path(trainer.last)
        if trainer.best_fitness == trainer.fitness and Path(trainer.best).is_file():
            self._saved[BEST] = Path(trainer.best)
        if trainer.stop or trainer.epoch + 1 >= trainer.epochs:
            # Ultralytics strips the optimizer from last.pt when training ends, which makes it
            # impossible to resume; keep the full one to put back (on_train_end).
            with atomic_path(self._full_last(trainer)) as partial:
                shutil.copyfile(trainer.last, partial)

    def _on_train_end(self, trainer) -> None:
        full = self._full_last(trainer)
        if full.is_file():
            os.replace(full, trainer.last)

    @staticmethod
    def _full_last(trainer) -> Path:
        return Path(trainer.last).with_name(".last.resumable.pt")

    def _on_fit_epoch_end(self, trainer) -> None:
        epoch = trainer.epoch + 1
        if trainer.epoch >= trainer.epochs or epoch in self._reported or self.stop_note:
            return  # the final validation of best.pt after the last (or an early-stopped) epoch: not an epoch
        self._reported.add(epoch)
        losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
        metrics = epoch_metrics(trainer.metrics or {}, losses or {}, trainer.lr or {})
        if self._train_seconds:
            metrics[TRAIN_IMAGES_PER_S] = len(trainer.train_loader.dataset) / self._train_seconds
        evaluation = self._validation_results(trainer, epoch) if self._validated else None
        if evaluation is not None:  # classification: the matrix's macro precision / recall / F1, as timm's
            metrics.update({k: v for k, v in evaluation.metrics.items() if k != VAL_ACCURACY})
        self.recorder.epoch(epoch, metrics)
        if evaluation is not None:  # the record's metrics: the validation's, as the epoch reported them
            self.results.write(ValidationRecord.of(
                evaluation, task=self.task, epoch=epoch, step=epoch * len(trainer.train_loader), source="training",
                job=self.job.job_id, metrics={k: v for k, v in metrics.items() if k.startswith("val/")}))
        for kind in (LAST, BEST):
            if kind in self._saved:
                self.recorder.checkpoint(self._saved[kind], kind, epoch)
        self._saved.clear()
        stopper = self._stopper
        if stopper is not None and stopper.update(epoch, metrics.get(stopper.metric)) and epoch < trainer.epochs:
            self.stop_note = stopper.note()
            trainer.stop = True  # read right after this callback: its loop ends, then its final validation

    def _validation_results(self, trainer, epoch: int):
        """The per-class results and matrix of the epoch's validation; None (and a warning) when
        Ultralytics' validator does not give them: the record is missing, the training goes on."""
        try:
            return validation_results(trainer.validator, self.task,
                                      self._confusion.take() if self._confusion is not None else None)
        except Exception as exc:  # noqa: BLE001 (a framework's internals: never fail a training over a record)
            log.warning("no validation record of epoch %d: %s: %s", epoch, type(exc).__name__, exc, exc_info=True)
            return None

    # ------------------------------------------------------------ checkpoints and inference

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        yolo, _ = _import_ultralytics()
        self.model = yolo(str(path))
        self._weights = Path(path)
        names = getattr(self.model, "names", None) or {}
        self.class_names = [names[i] for i in sorted(names)]
        return {"epoch": 0}

    def load_weights(self, weights: str | None) -> None:
        """A model without a job (``adapters.serve``): ``weights`` an Ultralytics ``.pt`` file, or None for
        ``<model>.pt`` from Ultralytics' weights dir (never downloaded). Its ``names`` are the labels (COCO's
        for Ultralytics' own); its task must be the spec's. Its input size is the spec's when asked, else the
        one it was trained at."""
        _, settings = _import_ultralytics()
        if weights is None:
            base = self.spec.model.removesuffix(".pt")
            other = next((task for task, suffix in TASK_SUFFIX.items() if suffix and base.endswith(suffix)), self.task)
            if other != self.task:
                raise ValueError(f"'{self.spec.model}' is a model for {other}, not {self.task}; predict it with "
                                 f"--task {other}")
            weights = str(pretrained_file(model_name(base, self.task), settings,
                                          "put the file there, or pass --weights FILE"))
        self.load_checkpoint(weights)
        theirs = getattr(self.model, "task", None)
        if theirs != YOLO_TASKS[self.task]:
            ours = next((task for task, name in YOLO_TASKS.items() if name == theirs), theirs)
            raise ValueError(f"{weights} is an Ultralytics {theirs} model ({ours}), not one for {self.task}; "
                             f"predict it with --task {ours}")
        self.image_size = int(self.asked_image_size() or (self.model.overrides or {}).get("imgsz") or self.image_size)

    def predict(self, image_path: str | Path, top_k: int = 5, annotate: bool = False) -> dict[str, Any]:
        """One image's predictions: the one-image case of :meth:`predict_batch`."""
        return self.predict_batch([image_path], top_k, annotate)[0]

    def predict_batch(self, images: list[str | Path], top_k: int = 5, annotate: bool = False) -> list[dict[str, Any]]:
        """Each image's predictions, from Ultralytics' own batched predict: one call per group of images
        of one size, the group being one batch.

        A list of images is one batch of its length in Ultralytics (8.4.190, checked: one forward
        pass; ``batch`` does not split a list, #25406, so ``batch=N`` only says what happens). Images
        are passed loaded (any file name: the daemon's uploads have no suffix), read as Ultralytics'
        own loader reads a folder (``predict.load_images``: its ``imread``, BGR, in threads). Images of one size it
        letterboxes as it does one image alone (padded to the next multiple of the stride); a list of
        several sizes it pads to a square ``imgsz`` each, which moves the stride grid and so the boxes
        and scores. Grouping by size keeps every image's input, and so its result, what
        :meth:`predict` gives it. Timings are per image (Ultralytics splits a batch's own).
        """
        if self.model is None:
            raise RuntimeError("load a checkpoint before predicting")
        started = time.perf_counter()
        opened = load_images(images)
        groups: dict[tuple[int, int] | None, list[int]] = {}
        for i, image in enumerate(opened):  # classification resizes and crops each image alone: one group
            groups.setdefault(None if self.task == "image_classification" else image.shape[:2], []).append(i)
        answers: list[dict[str, Any]] = [{} for _ in images]
        device, size = ultralytics_device(self.device), self.image_size
        for members in groups.values():
            found = self.model.predict([opened[i] for i in members], batch=len(members), imgsz=size, device=device,
                                       verbose=False, **self._predict_args)
            for i, result in zip(members, found, strict=True):
                answers[i] = self._answer(result, top_k, annotate)
        each_ms = (time.perf_counter() - started) * 1000 / max(1, len(images))
        for answer in answers:
            answer["timings_ms"]["total"] = each_ms
        return answers

    def prepare_evaluation(self) -> dict[str, Any]:
        """For ``eval`` (``adapters.evaluate``): predict keeps boxes as Ultralytics' own ``val`` does
        (confidence down to 0.001, NMS IoU 0.7, up to 300 per image: the low-score tail COCO AP counts);
        the model's classes in the order of their ids."""
        self._predict_args = {"conf": 0.001, "iou": 0.7, "max_det": 300}
        names = self.model.names
        return {"classes": [names[i] for i in sorted(names)]}

    def _answer(self, result, top_k: int, annotate: bool) -> dict[str, Any]:
        """One Ultralytics ``Results`` → the task-generic prediction dict."""
        height, width = result.orig_shape
        out: dict[str, Any] = {"task": self.task, "width": int(width), "height": int(height),
                               "predictions": predictions_of(result, self.task, top_k),
                               "timings_ms": {k: float(v) for k, v in (result.speed or {}).items()}}
        if annotate:
            out["image_png"] = png_bytes(result.plot()[..., ::-1])  # BGR -> RGB
        return out


    # ------------------------------------------------------------ ONNX (adapters.onnx_export)

    def export_onnx(self, path: Path, *, dynamic: bool, half: bool, opset: int | None) -> dict[str, Any]:
        """Ultralytics' own ``export(format="onnx")`` at the job's image size (simplified with onnxslim;
        float16 with ``quantize=16``), of a copy of the checkpoint beside `path`, so the export never lands
        in the job's checkpoints."""
        import ultralytics

        import tempfile

        yolo, _ = _import_ultralytics()
        folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=".export-"))
        try:
            source = folder / "model.pt"
            shutil.copyfile(self._weights, source)
            made = yolo(str(source)).export(format="onnx", imgsz=self.image_size, dynamic=dynamic,
                                            quantize=16 if half else None, opset=opset or None, simplify=True,
                                            device=ultralytics_device(self.device), batch=1, verbose=False)
            os.replace(made, path)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {"exporter": f"ultralytics {ultralytics.__version__}", "opset": int(model.opset_import[0].version),
                "inputs": [i.name for i in model.graph.input], "outputs": [o.name for o in model.graph.output],
                "image_size": self.image_size, "class_names": list(self.class_names)}

    def onnx_inputs(self, images: list[str | Path]) -> list[dict[str, Any]]:
        """Each image as the ONNX model takes it: letterboxed to the square image size (resized and
        center-cropped for classification), 0-1 RGB; a batch of one each."""
        import numpy as np
        import torch

        size = self.image_size
        feeds = []
        for path in images:
            image = open_upright(path)
            if self.task == "image_classification":
                from ultralytics.data.augment import classify_transforms

                tensor = classify_transforms(size)(image)
            else:
                from ultralytics.data.augment import LetterBox

                boxed = LetterBox((size, size), auto=False)(image=np.asarray(image)[..., ::-1])  # BGR, as it loads
                tensor = torch.from_numpy(np.ascontiguousarray(boxed[..., ::-1].transpose(2, 0, 1))).float() / 255
            feeds.append({"images": tensor[None]})
        return feeds

    def onnx_reference(self, feeds: dict[str, Any]) -> dict[str, Any]:
        import torch

        net = self.model.model.eval()
        with torch.inference_mode():
            first = net(feeds["images"].to(self.device))[0]
        outputs = first if isinstance(first, (list, tuple)) else [first]
        return {f"output{i}": t for i, t in enumerate(outputs)}

    def use_onnx(self, path: str | Path) -> None:
        """Predict with the ONNX export at `path`: Ultralytics loads it (onnxruntime) and pre- and
        post-processes as for its own weights; the labels are the checkpoint's."""
        yolo, _ = _import_ultralytics()
        self.model = yolo(str(path), task=YOLO_TASKS[self.task])
