"""The HuggingFace Transformers catalog: curated hub models, aliases, the ``advanced`` schema.

Plain data; the host imports it without transformers. Curated models carry metadata; any other
hub id (``org/name``) or a local folder saved with ``save_pretrained`` is accepted too, when its
architecture (``config.json``'s ``model_type``) is one the task's trainer handles. Short names
from the platform's plans resolve to the hub's real ids (``ALIASES``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from adapters.controls import (EARLY_STOPPING, EMA, GRADIENT_ACCUMULATION, GRADIENT_CLIP, MIXED_PRECISION, WARMUP_EPOCHS,
                               Control)
from adapters.catalog import FrameworkCatalog, ModelEntry, Preset, SchemaField, register_catalog

CLS, DET, SEG, SR, OCR = ("image_classification", "object_detection", "semantic_segmentation", "super_resolution",
                          "ocr")
DEPTH, ZS_CLS, ZS_DET, CAPTION, VQA, VIDEO = ("depth_estimation", "zero_shot_classification", "zero_shot_detection",
                                             "image_captioning", "visual_qa", "video_classification")
POSE = "pose_estimation"
TASKS = (CLS, DET, SEG, SR, OCR, DEPTH, CAPTION, ZS_CLS, VQA, ZS_DET, VIDEO, POSE)

#: Architectures (``model_type``) each task's trainer handles. Classification takes any model
#: ``AutoModelForImageClassification`` builds, so it is not listed (None: anything).
ARCHITECTURES: dict[str, tuple[str, ...] | None] = {
    CLS: None,
    DET: ("d_fine", "detr", "conditional_detr", "deformable_detr", "rt_detr", "rt_detr_v2", "yolos"),
    SEG: ("segformer", "mask2former", "eomt"),
    SR: ("swin2sr",),
    OCR: ("vision-encoder-decoder",),
    CAPTION: ("git", "blip", "blip-2"),
    DEPTH: ("dpt", "depth_anything", "glpn"),
    ZS_CLS: ("clip", "siglip"),
    VQA: ("blip", "vilt"),
    ZS_DET: ("grounding-dino",),
    VIDEO: ("videomae", "timesformer"),
    POSE: ("vitpose",),
}
#: Architectures that predict and evaluate but can't train here, and why; curated models of them carry the tag
#: "predict-only".
PREDICT_ONLY = {"owlvit": "Transformers has no training loss for OWL-ViT",
                "owlv2": "Transformers has no training loss for OWLv2",
                "llava": "its 7B parameters fine-tune only with LoRA adapters (peft) on a GPU of 24 GB or more, which "
                         "this runner does not do"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _m(name, display, task, params, size, batch, lr, *tags) -> ModelEntry:
    return ModelEntry(name, display, (task,), params, size, batch, lr, tuple(tags))


MODELS = (
    _m("google/vit-base-patch16-224", "ViT-B/16", CLS, 86.6, 224, 32, 5e-5, "transformer"),
    _m("google/vit-large-patch16-224", "ViT-L/16", CLS, 304.3, 224, 8, 2e-5, "transformer", "high-accuracy"),
    _m("facebook/deit-base-distilled-patch16-224", "DeiT-B distilled", CLS, 87.3, 224, 32, 5e-5, "transformer"),
    _m("facebook/dinov2-base", "DINOv2-B", CLS, 86.6, 224, 32, 2e-5, "transformer", "self-supervised"),
    _m("facebook/dinov2-large", "DINOv2-L", CLS, 304.4, 224, 8, 1e-5, "transformer", "self-supervised",
       "high-accuracy"),
    _m("microsoft/swin-base-patch4-window7-224", "Swin-B", CLS, 87.8, 224, 32, 5e-5, "transformer"),
    _m("facebook/convnext-base-224", "ConvNeXt-B", CLS, 88.6, 224, 32, 5e-5, "cnn"),
    _m("ustc-community/dfine-nano-coco", "D-FINE nano", DET, 3.8, 640, 16, 1e-4, "detr", "lightweight", "edge"),
    _m("ustc-community/dfine-small-coco", "D-FINE small", DET, 10.3, 640, 16, 1e-4, "detr", "lightweight"),
    _m("ustc-community/dfine-medium-coco", "D-FINE medium", DET, 19.6, 640, 8, 1e-4, "detr"),
    _m("ustc-community/dfine-large-coco", "D-FINE large", DET, 31.3, 640, 8, 1e-4, "detr", "high-accuracy"),
    _m("ustc-community/dfine-xlarge-coco", "D-FINE xlarge", DET, 62.7, 640, 4, 1e-4, "detr", "high-accuracy"),
    _m("facebook/detr-resnet-50", "DETR R50", DET, 41.3, 800, 4, 1e-4, "detr", "classic"),
    _m("facebook/detr-resnet-101", "DETR R101", DET, 60.2, 800, 4, 1e-4, "detr", "classic"),
    _m("microsoft/conditional-detr-resnet-50", "Conditional DETR R50", DET, 43.5, 800, 4, 1e-4, "detr"),
    _m("PekingU/rtdetr_r50vd", "RT-DETR R50", DET, 42.9, 640, 8, 1e-4, "detr", "real-time"),
    _m("nvidia/segformer-b0-finetuned-ade-512-512", "SegFormer-B0 (ADE20k)", SEG, 3.8, 512, 8, 6e-5,
       "transformer", "lightweight"),
    _m("nvidia/segformer-b5-finetuned-ade-640-640", "SegFormer-B5 (ADE20k)", SEG, 84.7, 640, 2, 6e-5,
       "transformer", "high-accuracy"),
    _m("facebook/mask2former-swin-base-ade-semantic", "Mask2Former Swin-B (ADE20k)", SEG, 107.0, 512, 2, 1e-4,
       "transformer", "high-accuracy"),
    _m("tue-mps/ade20k_semantic_eomt_large_512", "EoMT ViT-L (ADE20k)", SEG, 316.0, 512, 2, 1e-4,
       "transformer", "high-accuracy"),
    _m("caidas/swin2SR-classical-sr-x2-64", "Swin2SR classical x2", SR, 11.9, 64, 8, 2e-4, "transformer"),
    _m("caidas/swin2SR-classical-sr-x4-64", "Swin2SR classical x4", SR, 12.0, 64, 8, 2e-4, "transformer"),
    _m("caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr", "Swin2SR real-world x4", SR, 11.9, 64, 8, 2e-4,
       "transformer"),
    _m("microsoft/trocr-base-printed", "TrOCR-B printed", OCR, 334.0, 384, 8, 5e-5, "transformer"),
    _m("microsoft/trocr-base-handwritten", "TrOCR-B handwritten", OCR, 334.0, 384, 8, 5e-5, "transformer"),
    # Captioning: GIT and BLIP train on a CPU runner's sizes too; BLIP-2 (3.7B parameters) needs a GPU: ~8 GB of bf16
    # weights to predict, ~60 GB (an 80 GB card) to fine-tune it all with AdamW.
    _m("microsoft/git-base", "GIT-B", CAPTION, 176.6, 224, 16, 5e-5, "transformer"),
    _m("microsoft/git-base-coco", "GIT-B (COCO captions)", CAPTION, 176.6, 224, 16, 5e-5, "transformer"),
    _m("microsoft/git-large", "GIT-L", CAPTION, 394.2, 224, 8, 2e-5, "transformer", "high-accuracy"),
    _m("Salesforce/blip-image-captioning-base", "BLIP-B captioning (COCO)", CAPTION, 247.4, 384, 8, 1e-5,
       "transformer"),
    _m("Salesforce/blip-image-captioning-large", "BLIP-L captioning (COCO)", CAPTION, 469.7, 384, 4, 1e-5,
       "transformer", "high-accuracy"),
    _m("Salesforce/blip2-opt-2.7b", "BLIP-2 OPT-2.7b", CAPTION, 3744.8, 224, 1, 1e-5, "transformer", "llm",
       "gpu-only", "too-big-for-tests"),
    # Depth: every model trains to metric depth (SiLog); "relative-depth" hub weights predict relative inverse
    # depth until a job trains them (adapters/transformers/tasks/depth.py).
    _m("Intel/dpt-large", "DPT-Large (MiDaS 3.0)", DEPTH, 343.0, 384, 4, 1e-5, "transformer", "relative-depth",
       "high-accuracy"),
    _m("Intel/dpt-hybrid-midas", "DPT-Hybrid (MiDaS 3.0)", DEPTH, 123.0, 384, 8, 1e-5, "transformer",
       "relative-depth"),
    _m("LiheYoung/depth-anything-small-hf", "Depth Anything S", DEPTH, 24.8, 518, 8, 5e-6, "transformer",
       "relative-depth", "lightweight"),
    _m("LiheYoung/depth-anything-base-hf", "Depth Anything B", DEPTH, 97.5, 518, 4, 5e-6, "transformer",
       "relative-depth"),
    _m("depth-anything/Depth-Anything-V2-Small-hf", "Depth Anything V2 S", DEPTH, 24.8, 518, 8, 5e-6, "transformer",
       "relative-depth", "lightweight"),
    _m("depth-anything/Depth-Anything-V2-Base-hf", "Depth Anything V2 B", DEPTH, 97.5, 518, 4, 5e-6, "transformer",
       "relative-depth", "non-commercial"),
    _m("depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf", "Depth Anything V2 S metric indoor", DEPTH, 24.8,
       518, 8, 5e-6, "transformer", "metric-depth", "lightweight"),
    _m("vinvino02/glpn-nyu", "GLPN (NYUv2)", DEPTH, 61.3, 480, 8, 5e-5, "transformer", "metric-depth"),
    _m("vinvino02/glpn-kitti", "GLPN (KITTI)", DEPTH, 61.3, 352, 8, 5e-5, "transformer", "metric-depth"),
    # Zero-shot classification: the classes become text prompts (advanced.prompt_template); epoch 0 is the
    # zero-shot baseline (adapters/transformers/tasks/zero_shot.py).
    _m("openai/clip-vit-base-patch32", "CLIP ViT-B/32", ZS_CLS, 151.3, 224, 32, 1e-5, "transformer", "image-text"),
    _m("openai/clip-vit-large-patch14", "CLIP ViT-L/14", ZS_CLS, 427.6, 224, 8, 1e-5, "transformer", "image-text",
       "high-accuracy"),
    _m("google/siglip-base-patch16-224", "SigLIP B/16", ZS_CLS, 203.2, 224, 16, 1e-5, "transformer", "image-text",
       "sigmoid-loss"),
    # Visual question answering (adapters/transformers/tasks/vqa.py): BLIP generates the answer, ViLT picks it
    # from the training answers; LLaVA (7B) predicts only: it would fine-tune only with LoRA on a 24+ GB GPU.
    _m("Salesforce/blip-vqa-base", "BLIP-B VQA", VQA, 384.7, 384, 8, 2e-5, "transformer", "generative"),
    _m("dandelin/vilt-b32-finetuned-vqa", "ViLT-B/32 VQA", VQA, 117.6, 384, 16, 1e-4, "transformer",
       "answer-vocabulary"),
    _m("llava-hf/llava-1.5-7b-hf", "LLaVA-1.5 7B", VQA, 7063.4, 336, 1, 2e-5, "transformer", "llm", "predict-only",
       "too-big-for-tests"),
    # Open-vocabulary detection (adapters/transformers/tasks/zero_shot_detection.py): the categories are the text
    # queries; Grounding DINO trains, OWL-ViT/OWLv2 predict and evaluate only (no loss in Transformers).
    _m("IDEA-Research/grounding-dino-tiny", "Grounding DINO T", ZS_DET, 172.2, 800, 4, 1e-5, "transformer",
       "open-vocabulary"),
    _m("IDEA-Research/grounding-dino-base", "Grounding DINO B", ZS_DET, 232.9, 800, 2, 1e-5, "transformer",
       "open-vocabulary", "high-accuracy"),
    _m("google/owlvit-base-patch32", "OWL-ViT B/32", ZS_DET, 153.5, 768, 8, 1e-5, "transformer", "open-vocabulary",
       "predict-only"),
    _m("google/owlv2-base-patch16-ensemble", "OWLv2 B/16 ensemble", ZS_DET, 155.0, 960, 4, 1e-5, "transformer",
       "open-vocabulary", "predict-only"),
    # Video classification (adapters/transformers/tasks/video_classification.py): clips decoded with PyAV,
    # config.num_frames frames each; these weights are CC BY-NC 4.0.
    _m("MCG-NJU/videomae-base-finetuned-kinetics", "VideoMAE-B (Kinetics-400)", VIDEO, 86.5, 224, 4, 5e-5,
       "transformer", "non-commercial"),
    _m("MCG-NJU/videomae-base", "VideoMAE-B (self-supervised)", VIDEO, 86.2, 224, 4, 1e-4, "transformer",
       "self-supervised", "non-commercial"),
    _m("facebook/timesformer-base-finetuned-k400", "TimeSformer-B (Kinetics-400)", VIDEO, 121.3, 224, 4, 5e-5,
       "transformer", "non-commercial"),
    # Top-down pose estimation (adapters/transformers/tasks/pose.py): people cropped from their boxes to 256x192,
    # COCO's 17 keypoints as heatmaps. ViTPose+ has experts per dataset: the COCO one is used.
    _m("usyd-community/vitpose-base-simple", "ViTPose-B simple decoder (COCO)", POSE, 86.0, 256, 16, 5e-5,
       "transformer", "top-down"),
    _m("usyd-community/vitpose-base", "ViTPose-B classic decoder (COCO)", POSE, 90.0, 256, 16, 5e-5, "transformer",
       "top-down"),
    _m("usyd-community/vitpose-plus-base", "ViTPose+-B (COCO, AIC, MPII, ...)", POSE, 125.5, 256, 16, 5e-5,
       "transformer", "top-down", "mixture-of-experts"),
)

#: Short names from the platform's plans → the hub's real ids.
ALIASES = {
    **{f"ustc-community/dfine_{s}_coco": f"ustc-community/dfine-{full}-coco"
       for s, full in (("n", "nano"), ("s", "small"), ("m", "medium"), ("l", "large"), ("x", "xlarge"))},
    "caidas/swin2sr-classicalsr-x2-64": "caidas/swin2SR-classical-sr-x2-64",
    "caidas/swin2sr-classicalsr-x4-64": "caidas/swin2SR-classical-sr-x4-64",
    "tue-mps/eomt-vit-large": "tue-mps/ade20k_semantic_eomt_large_512",
    "facebook/mask2former-swin-base-ade": "facebook/mask2former-swin-base-ade-semantic",
}

FIELDS = (
    SchemaField("optimizer.weight_decay", "float", 0.01, "AdamW weight decay.", minimum=0.0, maximum=1.0),
    SchemaField("optimizer.beta1", "float", 0.9, "AdamW beta1.", minimum=0.0, maximum=1.0),
    SchemaField("optimizer.beta2", "float", 0.999, "AdamW beta2.", minimum=0.0, maximum=1.0),
    SchemaField("scheduler.type", "choice", "linear", "Learning-rate schedule after warmup.",
                choices=("linear", "cosine", "constant")),
    SchemaField("scheduler.warmup_ratio", "float", 0.0, "Share of the steps spent warming up.", minimum=0.0,
                maximum=1.0),
    SchemaField("scheduler.warmup_steps", "int", 0, "Warmup steps (wins over warmup_ratio when > 0).", minimum=0),
    SchemaField("gradient_accumulation_steps", "int", 1, "Batches per optimizer step.", minimum=1, maximum=1024,
                replaced_by="training.gradient_accumulation"),
    SchemaField("max_grad_norm", "float", 1.0, "Gradient clipping norm (0: off).", minimum=0.0,
                replaced_by="training.gradient_clip"),
    SchemaField("mixed_precision", "choice", "auto", "Mixed precision on CUDA (auto: bf16 where supported, "
                "else fp16; never on CPU).", choices=("auto", "no", "fp16", "bf16"),
                replaced_by="training.mixed_precision"),
    SchemaField("label_smoothing", "float", 0.0, "Label smoothing (classification, OCR, CLIP zero-shot).", minimum=0.0,
                maximum=1.0),
    SchemaField("augmentation.random_flip", "bool", True, "Random horizontal flip of training images "
                "(classification, segmentation, super-resolution; boxes are flipped with detection images, keypoints "
                "with pose crops of COCO's 17 keypoints)."),
    SchemaField("upscale", "int", 0, "Super-resolution factor for HR-only datasets (0: the model's own); paired "
                "LR_xN folders say their own.", minimum=0, maximum=8),
    SchemaField("generation.max_length", "int", 64, "OCR, captioning and visual QA answers (BLIP, LLaVA): the longest "
                "text generated, in tokens.",
                minimum=1, maximum=2048),
    SchemaField("depth.max_depth", "int", 0, "Depth: the deepest depth in whole metres a metric head predicts (Depth "
                "Anything, GLPN); 0: the model's own, and for a relative Depth Anything 1.25 x the deepest training "
                "depth.", minimum=0, maximum=1000),
    SchemaField("detection.threshold", "float", 0.05, "Detection: lowest score a box needs to count in the "
                "evaluation (mAP).", minimum=0.0, maximum=1.0),
    SchemaField("detection.predict_threshold", "float", 0.3, "Detection: lowest score a box needs to be returned by "
                "predict.", minimum=0.0, maximum=1.0),
    SchemaField("pose.flip_test", "bool", True, "Pose: evaluate and predict on each crop and its mirror image, "
                "heatmaps averaged (COCO's 17 keypoints only)."),
    SchemaField("prompt_template", "str", "a photo of a {}", "Zero-shot classification: the text prompt of a class, "
                "its name (underscores read as spaces) where {} is."),
)

PRESETS = (
    Preset("basic", "Constant learning rate, no warmup: a quick baseline.", {"scheduler": {"type": "constant"}}),
    Preset("standard", "Linear decay with 10% warmup.", {"scheduler": {"type": "linear", "warmup_ratio": 0.1}}),
    Preset("aggressive", "Cosine decay, warmup, stronger weight decay and label smoothing.",
           {"scheduler": {"type": "cosine", "warmup_ratio": 0.1}, "optimizer": {"weight_decay": 0.05},
            "label_smoothing": 0.1}),
)


def resolve_model(name: str) -> str:
    """A platform short name → the hub id; anything else unchanged."""
    return ALIASES.get(name, name)


def check_model(name: str, task: str) -> str | None:
    """Why ``name`` can't be trained for ``task`` (None: it can, as far as the host can tell).

    Curated and aliased ids must list the task; a local folder must hold a ``config.json`` whose
    ``model_type`` the task handles; any other ``org/name`` is a hub id, checked in the child.
    """
    name = resolve_model(name)
    entry = next((m for m in MODELS if m.name == name), None)
    if entry is not None:
        if task not in entry.tasks:
            return f"'{name}' is a model for {entry.tasks[0]}, not {task}"
        if "predict-only" in entry.tags:
            why = next((why for kind, why in PREDICT_ONLY.items() if kind in name.lower()), "it can't train here")
            return _predict_only(f"'{name}'", task, why)
        return None
    folder = Path(name).expanduser()
    if folder.is_absolute() or name.startswith("."):
        config = folder / "config.json"
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            return f"'{name}' is not a folder saved with save_pretrained (cannot read {config}: {exc})"
        allowed = ARCHITECTURES.get(task)
        if model_type in PREDICT_ONLY:
            return _predict_only(f"{config} (model_type '{model_type}')", task, PREDICT_ONLY[model_type])
        if allowed is not None and model_type not in allowed:
            return f"{config} is a '{model_type}' model; {task} trains {', '.join(allowed)}"
        return None
    if HUB_ID.match(name):
        return None
    return (f"'{name}' is neither a hub id (org/name) nor a local folder; see `visionyard models --framework "
            "transformers`")


def _predict_only(what: str, task: str, why: str) -> str:
    trains = [m.name for m in MODELS if task in m.tasks and "predict-only" not in m.tags]
    return (f"{what} predicts and evaluates only ({why}): predict with it (`visionyard predict --model`), or train "
            f"{' or '.join(trains) or 'another model'}")



CONTROLS = {
    MIXED_PRECISION: Control(MIXED_PRECISION, "TrainingArguments bf16 / fp16 (bf16 also on the CPU)",
                             "auto: bf16 on a CUDA GPU that supports it, else fp32"),
    GRADIENT_ACCUMULATION: Control(GRADIENT_ACCUMULATION, "TrainingArguments gradient_accumulation_steps", "1"),
    GRADIENT_CLIP: Control(GRADIENT_CLIP, "TrainingArguments max_grad_norm (0: no clipping)", "1.0, the Trainer's own"),
    EARLY_STOPPING: Control(EARLY_STOPPING, "visionyard's, on the task's primary metric, through a Trainer callback",
                            "off"),
    WARMUP_EPOCHS: Control(WARMUP_EPOCHS, "TrainingArguments warmup_steps: the epochs' optimizer steps (wins over "
                                          "advanced.scheduler.warmup_ratio / warmup_steps)",
                           "advanced.scheduler.warmup_ratio / warmup_steps (0)"),
    EMA: Control(EMA, "no EMA: the Trainer keeps none", "off",
                 refuse=lambda on, _: "the Transformers Trainer keeps no EMA of the weights: leave training.ema out"
                 if on else None),
}

CATALOG = register_catalog(
    FrameworkCatalog(
        name="transformers",
        env="transformers",
        tasks=TASKS,
        dataset_formats=("imagefolder", "dice", "coco", "voc", "yolo", "masks", "sr_pairs", "ocr", "depth", "captions",
                         "vqa", "video_folder"),
        models=MODELS,
        fields=FIELDS,
        presets=PRESETS,
        controls=CONTROLS,
        adapter="adapters.transformers.trainer:TransformersAdapter",
        known_models=frozenset(ALIASES),
        model_check=check_model,
        model_alias=resolve_model,
    )
)
