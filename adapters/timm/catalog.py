"""The timm catalog: curated classification models, the ``advanced`` schema and presets.

Plain data; the host imports it without timm. ``known_models`` comes from
``model_names.txt`` (every ``timm.list_models()`` name of the pinned timm version).
Parameter counts are with the 1000-class ImageNet head, as timm builds them.
"""

from __future__ import annotations

from adapters.controls import (EARLY_STOPPING, EMA, GRADIENT_ACCUMULATION, GRADIENT_CLIP, MIXED_PRECISION, WARMUP_EPOCHS,
                               Control)
from adapters.catalog import FrameworkCatalog, ModelEntry, Preset, SchemaField, register_catalog
from adapters.timm.model_names import read_names

TASK = "image_classification"


def _model(name, display, params, size, batch, lr, *tags) -> ModelEntry:
    return ModelEntry(name, display, (TASK,), params, size, batch, lr, tuple(tags))


MODELS = (
    _model("resnet18", "ResNet-18", 11.69, 224, 64, 1e-3, "cnn", "classic", "lightweight"),
    _model("resnet34", "ResNet-34", 21.80, 224, 64, 1e-3, "cnn", "classic"),
    _model("resnet50", "ResNet-50", 25.56, 224, 32, 1e-3, "cnn", "classic"),
    _model("resnet101", "ResNet-101", 44.55, 224, 32, 5e-4, "cnn", "classic", "high-accuracy"),
    _model("efficientnet_b0", "EfficientNet-B0", 5.29, 224, 64, 1e-3, "cnn", "lightweight"),
    _model("efficientnet_b1", "EfficientNet-B1", 7.79, 240, 48, 1e-3, "cnn", "lightweight"),
    _model("efficientnet_b4", "EfficientNet-B4", 19.34, 320, 16, 5e-4, "cnn", "high-accuracy"),
    _model("vit_small_patch16_224", "ViT-S/16", 22.05, 224, 64, 1e-4, "transformer"),
    _model("vit_base_patch16_224", "ViT-B/16", 86.57, 224, 32, 5e-5, "transformer", "high-accuracy"),
    _model("vit_large_patch16_224", "ViT-L/16", 304.33, 224, 8, 2e-5, "transformer", "high-accuracy"),
    _model("mobilenetv3_large_100", "MobileNetV3-Large 1.0", 5.48, 224, 128, 1e-3, "cnn", "lightweight"),
    _model("mobilenetv3_small_100", "MobileNetV3-Small 1.0", 2.54, 224, 128, 1e-3, "cnn", "lightweight"),
    _model("vgg16", "VGG-16", 138.36, 224, 32, 1e-4, "cnn", "classic"),
    _model("vgg19", "VGG-19", 143.67, 224, 32, 1e-4, "cnn", "classic"),
)

FIELDS = (
    SchemaField("optimizer.type", "choice", "adamw", "Optimizer.", choices=("adam", "adamw", "sgd")),
    SchemaField("optimizer.weight_decay", "float", 0.01, "Weight decay.", minimum=0.0),
    SchemaField(
        "optimizer.momentum", "float", 0.9, "Momentum (sgd only; nesterov off).", minimum=0.0, maximum=1.0
    ),
    SchemaField(
        "scheduler.type",
        "choice",
        "cosine",
        "Learning-rate schedule, stepped once per epoch: cosine annealing over the epochs, "
        "step decay, or constant.",
        choices=("cosine", "step", "none"),
    ),
    SchemaField("scheduler.step_size", "int", 10, "Epochs between decays (step).", minimum=1),
    SchemaField("scheduler.gamma", "float", 0.1, "Decay factor (step).", minimum=0.0, maximum=1.0),
    SchemaField(
        "scheduler.warmup_epochs",
        "int",
        0,
        "Epochs of linear warmup before the schedule (any schedule type).",
        minimum=0,
        replaced_by="training.warmup_epochs",
    ),
    SchemaField("augmentation.random_flip", "bool", True, "Random horizontal flip of training images."),
    SchemaField(
        "augmentation.random_crop",
        "bool",
        False,
        "RandomResizedCrop (scale 0.8-1.0) of training images instead of a plain resize.",
    ),
    SchemaField(
        "data.val_split",
        "float",
        0.2,
        "Share of each class held out for validation when the dataset has no val split.",
        minimum=0.05,
        maximum=0.9,
    ),
    SchemaField("model.drop_rate", "float", 0.0, "Dropout before the classifier.", minimum=0.0, maximum=0.9),
    SchemaField(
        "loss.label_smoothing",
        "float",
        0.0,
        "Label smoothing of the training loss.",
        minimum=0.0,
        maximum=0.5,
    ),
    SchemaField(
        "early_stopping.patience",
        "int",
        0,
        "Stop after this many epochs without a better val/accuracy; 0 turns it off.",
        minimum=0,
        replaced_by="training.early_stopping",
        convert=lambda patience: {"patience": patience, "min_delta": 0.0} if patience else None,
    ),
)

PRESETS = (
    Preset(
        "basic",
        "Adam at a constant learning rate, no augmentation: the simplest baseline.",
        {
            "optimizer": {"type": "adam"},
            "scheduler": {"type": "none"},
            "augmentation": {"random_flip": False, "random_crop": False},
        },
    ),
    Preset(
        "standard",
        "AdamW with cosine decay and random flips: a good default for fine-tuning.",
        {
            "optimizer": {"type": "adamw"},
            "scheduler": {"type": "cosine"},
            "augmentation": {"random_flip": True, "random_crop": False},
        },
    ),
    Preset(
        "aggressive",
        "Stronger regularisation for small datasets or long runs: more weight decay, warmup, "
        "flips and crops, label smoothing and dropout.",
        {
            "optimizer": {"type": "adamw", "weight_decay": 0.05},
            "scheduler": {"type": "cosine", "warmup_epochs": 1},
            "augmentation": {"random_flip": True, "random_crop": True},
            "loss": {"label_smoothing": 0.1},
            "model": {"drop_rate": 0.2},
        },
    ),
)


def _whole_epochs(value, training) -> str | None:
    return None if float(value) == int(value) else (
        f"timm's schedule steps once per epoch, so its warmup is whole epochs, not {value}")


CONTROLS = {
    MIXED_PRECISION: Control(MIXED_PRECISION, "torch.autocast: bf16, or fp16 with a GradScaler (CUDA only)",
                             "auto: bf16 on a CUDA GPU that supports it, else fp32"),
    GRADIENT_ACCUMULATION: Control(GRADIENT_ACCUMULATION, "the gradients of N batches summed before each optimizer "
                                   "step (the loss divided by N)", "1"),
    GRADIENT_CLIP: Control(GRADIENT_CLIP, "torch.nn.utils.clip_grad_norm_ before each optimizer step", "off"),
    EARLY_STOPPING: Control(EARLY_STOPPING, "visionyard's, on val/accuracy", "off"),
    WARMUP_EPOCHS: Control(WARMUP_EPOCHS, "a linear ramp of the learning rate over whole epochs, then the schedule",
                           "0", refuse=_whole_epochs),
    EMA: Control(EMA, "timm.utils.ModelEmaV3 (decay 0.9998, warmed up): validation and checkpoints use the "
                      "averaged weights", "off"),
}

CATALOG = register_catalog(
    FrameworkCatalog(
        name="timm",
        env="timm",
        tasks=(TASK,),
        dataset_formats=("imagefolder", "dice"),
        models=MODELS,
        fields=FIELDS,
        presets=PRESETS,
        controls=CONTROLS,
        adapter="adapters.timm.trainer:TimmAdapter",
        known_models=frozenset(read_names()),
    )
)
