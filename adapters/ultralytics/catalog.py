"""The Ultralytics catalog: YOLOv8 / v9 / 11 models, the ``advanced`` schema and presets.

Plain data; the host imports it without Ultralytics. A model is named by family and scale
(``yolov8n``); the job's task picks the variant (``-seg``, ``-pose``, ``-obb``, ``-cls``), so
``model: yolov8n`` with ``task: pose_estimation`` builds ``yolov8n-pose``. The suffixed names
are accepted too. Parameter counts are Ultralytics' published figures for the detection models.
"""

from __future__ import annotations

from adapters.controls import (EARLY_STOPPING, EMA, GRADIENT_ACCUMULATION, GRADIENT_CLIP, MIXED_PRECISION, WARMUP_EPOCHS,
                               Control)
from adapters.catalog import FrameworkCatalog, ModelEntry, Preset, SchemaField, register_catalog

#: Task -> the suffix Ultralytics' model names and config files carry for it.
TASK_SUFFIX = {
    "object_detection": "",
    "instance_segmentation": "-seg",
    "pose_estimation": "-pose",
    "obb_detection": "-obb",
    "image_classification": "-cls",
}
TASKS = tuple(TASK_SUFFIX)
ALL_TASKS = TASKS
V9_TASKS = ("object_detection",)
V9_SEG_TASKS = ("object_detection", "instance_segmentation")  # yolov9c-seg, yolov9e-seg exist


def _model(name, display, params, batch, tasks, *tags) -> ModelEntry:
    return ModelEntry(name, display, tasks, params, 640, batch, 0.01, ("yolo", *tags))


MODELS = (
    _model("yolov8n", "YOLOv8 nano", 3.2, 32, ALL_TASKS, "lightweight", "edge"),
    _model("yolov8s", "YOLOv8 small", 11.2, 16, ALL_TASKS, "lightweight"),
    _model("yolov8m", "YOLOv8 medium", 25.9, 16, ALL_TASKS),
    _model("yolov8l", "YOLOv8 large", 43.7, 8, ALL_TASKS, "high-accuracy"),
    _model("yolov8x", "YOLOv8 extra-large", 68.2, 8, ALL_TASKS, "high-accuracy"),
    _model("yolov9t", "YOLOv9 tiny", 2.0, 32, V9_TASKS, "lightweight", "edge"),
    _model("yolov9s", "YOLOv9 small", 7.1, 16, V9_TASKS, "lightweight"),
    _model("yolov9m", "YOLOv9 medium", 20.0, 16, V9_TASKS),
    _model("yolov9c", "YOLOv9 compact", 25.3, 8, V9_SEG_TASKS, "high-accuracy"),
    _model("yolov9e", "YOLOv9 extended", 57.3, 8, V9_SEG_TASKS, "high-accuracy"),
    _model("yolo11n", "YOLO11 nano", 2.6, 32, ALL_TASKS, "lightweight", "edge"),
    _model("yolo11s", "YOLO11 small", 9.4, 16, ALL_TASKS, "lightweight"),
    _model("yolo11m", "YOLO11 medium", 20.1, 16, ALL_TASKS),
    _model("yolo11l", "YOLO11 large", 25.3, 8, ALL_TASKS, "high-accuracy"),
    _model("yolo11x", "YOLO11 extra-large", 56.9, 8, ALL_TASKS, "high-accuracy"),
)

FIELDS = (
    SchemaField("optimizer.type", "choice", "SGD", "Optimizer. 'auto' lets Ultralytics pick one and its learning "
                "rate (ignoring training.learning_rate).",
                choices=("SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSProp", "auto")),
    SchemaField("optimizer.momentum", "float", 0.937, "SGD momentum / Adam beta1.", minimum=0.0, maximum=1.0),
    SchemaField("optimizer.weight_decay", "float", 0.0005, "Weight decay.", minimum=0.0, maximum=1.0),
    SchemaField("lrf", "float", 0.01, "Final learning rate as a fraction of the initial one.", minimum=0.0,
                maximum=1.0),
    SchemaField("cos_lr", "bool", False, "Cosine learning-rate schedule (else linear)."),
    SchemaField("warmup_epochs", "float", 3.0, "Warmup epochs (fractions allowed).", minimum=0.0,
                replaced_by="training.warmup_epochs"),
    SchemaField("patience", "int", 100, "Stop after this many epochs without a better fitness (0: never).",
                minimum=0, replaced_by="training.early_stopping",
                convert=lambda patience: {"patience": patience, "min_delta": 0.0} if patience else None),
    SchemaField("close_mosaic", "int", 10, "Turn mosaic off for the last N epochs.", minimum=0),
    SchemaField("amp", "bool", True, "Mixed precision on CUDA (always off on CPU).",
                replaced_by="training.mixed_precision", convert=lambda amp: "auto" if amp else "no"),
    SchemaField("dropout", "float", 0.0, "Dropout before the classification head (classification only).",
                minimum=0.0, maximum=1.0),
    SchemaField("augmentation.mosaic", "float", 1.0, "Mosaic probability.", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.mixup", "float", 0.0, "MixUp probability.", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.hsv_h", "float", 0.015, "Hue jitter (fraction).", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.hsv_s", "float", 0.7, "Saturation jitter (fraction).", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.hsv_v", "float", 0.4, "Value jitter (fraction).", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.degrees", "float", 0.0, "Rotation (+/- degrees).", minimum=0.0, maximum=180.0),
    SchemaField("augmentation.translate", "float", 0.1, "Translation (+/- fraction).", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.scale", "float", 0.5, "Scale gain (+/- fraction).", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.fliplr", "float", 0.5, "Left-right flip probability.", minimum=0.0, maximum=1.0),
    SchemaField("augmentation.flipud", "float", 0.0, "Up-down flip probability.", minimum=0.0, maximum=1.0),
)

PRESETS = (
    Preset("basic", "Light augmentation and early stopping: quick, stable runs on clean data.",
           {"patience": 30, "close_mosaic": 5,
            "augmentation": {"mosaic": 0.5, "hsv_s": 0.4, "hsv_v": 0.2, "translate": 0.05, "scale": 0.25}}),
    Preset("standard", "Ultralytics' defaults.", {}),
    Preset("aggressive", "Heavy augmentation and a cosine schedule for small datasets or long runs.",
           {"cos_lr": True, "close_mosaic": 15, "optimizer": {"weight_decay": 0.001},
            "augmentation": {"mixup": 0.15, "degrees": 10.0, "translate": 0.2, "scale": 0.9, "flipud": 0.1}}),
)


def model_names() -> frozenset[str]:
    """Every accepted name: the base names and their task-suffixed variants."""
    names = set()
    for model in MODELS:
        names.add(model.name)
        names.update(model.name + TASK_SUFFIX[task] for task in model.tasks)
    return frozenset(names)


#: Ultralytics' autocast takes bf16 on CUDA only.
BF16_ON_CPU = ("Ultralytics trains in bf16 on a CUDA GPU only (its autocast refuses bf16 on the CPU): use "
               "mixed_precision: no on the CPU, or device: cuda")

CONTROLS = {
    MIXED_PRECISION: Control(MIXED_PRECISION, "its amp argument: fp16 (after its AMP check) or bf16, on CUDA only",
                             "auto: bf16 on a CUDA GPU that supports it, else fp32",
                             refuse=lambda value, training: BF16_ON_CPU if value == "bf16" and training.get("device")
                             == "cpu" else None),
    GRADIENT_ACCUMULATION: Control(GRADIENT_ACCUMULATION, "its nominal batch size nbs = batch_size x N (it "
                                   "accumulates nbs / batch_size batches)", "1 (Ultralytics' own nbs 64 is not used)"),
    GRADIENT_CLIP: Control(GRADIENT_CLIP, "the max norm of its optimizer step (0: no clipping)", "10.0, its own"),
    EARLY_STOPPING: Control(EARLY_STOPPING, "visionyard's, on the task's primary metric (its own patience on "
                                            "fitness is off)", "off"),
    WARMUP_EPOCHS: Control(WARMUP_EPOCHS, "its warmup_epochs (fractions allowed)", "3.0, its own"),
    EMA: Control(EMA, "built in: Ultralytics always validates and saves an EMA of the weights", "on",
                 refuse=lambda on, _: None if on else "Ultralytics always keeps an EMA of the weights; it can't be "
                                                   "turned off: leave training.ema out"),
}

CATALOG = register_catalog(
    FrameworkCatalog(
        name="ultralytics",
        env="ultralytics",
        tasks=TASKS,
        dataset_formats=("yolo", "coco", "dice", "voc", "imagefolder"),
        models=MODELS,
        fields=FIELDS,
        presets=PRESETS,
        controls=CONTROLS,
        adapter="adapters.ultralytics.trainer:UltralyticsAdapter",
        known_models=model_names(),
    )
)
