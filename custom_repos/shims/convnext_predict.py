"""Predict for facebookresearch/ConvNeXt, which has no predict script of its own.

The shipped ``convnext`` spec's ``predict:`` command runs this file by path (``{shim_dir}``) in
the repo's env, with the checkout as its working directory, once per batch of images:

    python convnext_predict.py --model convnext_tiny --checkpoint CKPT --source DIR --input-size 224
                               [--num-classes N] [--top-k 5] [--device cpu|cuda]

It builds the model the way the repo's ``main.py`` does (importing ``models.convnext`` and
``models.convnext_isotropic`` registers the repo's models with timm, then
``timm.create_model(name, num_classes=N)``), loads the ``model`` state dict of the checkpoint the
repo saved (``checkpoint-best.pth``), preprocesses each image as the repo's eval transform does
(``datasets.build_transform(is_train=False)``) and prints one JSON line per image, best first:

    {"image": "00000.png", "predictions": [{"index": 3, "score": 0.91}, ...]}
    {"image": "00001.png", "error": "cannot read it: ..."}

Scores are softmax probabilities. Class names are not ours to guess here: visionyard names each
index from the job's train folder (torchvision ImageFolder's order, the sorted folder names).

Stdlib at the top: torch, torchvision, timm and PIL are the repo env's, imported in ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

#: What main.py imports to register the repo's models with timm (a fork may lack one).
MODEL_MODULES = ("models.convnext", "models.convnext_isotropic")
#: timm's IMAGENET_DEFAULT_* and IMAGENET_INCEPTION_* (the repo's `--imagenet_default_mean_and_std`).
IMAGENET_DEFAULT = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
IMAGENET_INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
#: torchvision's IMG_EXTENSIONS: what the repo's ImageFolder reads.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", required=True, help="a model the repo registers, e.g. convnext_tiny")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint the repo's main.py saved")
    parser.add_argument("--source", required=True, help="a folder of images")
    parser.add_argument("--input-size", type=int, required=True, help="the job's --input_size")
    parser.add_argument("--num-classes", type=int, default=0,
                        help="the job's classes (0: the checkpoint's); a mismatch is warned about")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cpu when no GPU is visible)")
    parser.add_argument("--batch-size", type=int, default=16)
    return parser.parse_args(argv)


def warn(message: str) -> None:
    print(f"[convnext_predict] {message}", file=sys.stderr, flush=True)


def load_checkpoint(path: str):
    """(state dict, the training's argparse Namespace or None). The repo saves its args (a
    Namespace) in the checkpoint, which torch >= 2.6's weights-only load refuses: this file is
    the job's own checkpoint, so it is loaded in full."""
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict):
        raise SystemExit(f"{path}: not a checkpoint of the repo's main.py (a {type(checkpoint).__name__})")
    for key in ("model", "module"):  # main.py's --model_key default, model|module
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key], checkpoint.get("args")
    if checkpoint and all(hasattr(v, "shape") for v in checkpoint.values()):  # a bare state dict
        return checkpoint, None
    raise SystemExit(f"{path}: no `model` state dict in it (keys: {', '.join(map(str, checkpoint))})")


def build_model(name: str, state: dict, train_args, num_classes: int):
    import timm

    sys.path.insert(0, os.getcwd())  # the checkout: the repo's `models` package
    for module in MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name not in (module, "models"):  # a missing dependency is an error, a missing file is not
                raise
    head = state.get("head.weight")
    classes = int(head.shape[0]) if head is not None else int(getattr(train_args, "nb_classes", 0) or num_classes)
    if num_classes and classes != num_classes:
        warn(f"the job's dataset has {num_classes} classes but the checkpoint's head {classes}: "
             "labels may not match (was the train folder changed after training?)")
    # main.py passes --layer_scale_init_value; without layer scale the blocks have no `gamma`.
    layer_scale = any(key.endswith(".gamma") for key in state)
    init_value = (getattr(train_args, "layer_scale_init_value", None) or 1e-6) if layer_scale else 0.0
    model = timm.create_model(name, pretrained=False, num_classes=classes, layer_scale_init_value=init_value)
    model.load_state_dict(state, strict=True)
    return model.eval(), classes


def eval_transform(input_size: int, train_args):
    """The repo's ``build_transform(is_train=False, args)``: a resize of ``input_size / crop_pct``
    (crop_pct 224/256 unless the run set one) and a centre crop below 384, a warp to a square from
    384 on, bicubic, ImageNet mean/std. At 32 and below the repo resizes nothing (it expects
    CIFAR-sized images); here an image is resized and centre-cropped to ``input_size``, which
    leaves an image of that size as it is."""
    from torchvision import transforms

    bicubic = transforms.InterpolationMode.BICUBIC
    default_stats = getattr(train_args, "imagenet_default_mean_and_std", True) is not False
    mean, std = IMAGENET_DEFAULT if default_stats else IMAGENET_INCEPTION
    steps = []
    if input_size >= 384:
        steps.append(transforms.Resize((input_size, input_size), interpolation=bicubic))
    else:
        crop_pct = getattr(train_args, "crop_pct", None) or 224 / 256
        resize = int(input_size / crop_pct) if input_size > 32 else input_size
        steps += [transforms.Resize(resize, interpolation=bicubic), transforms.CenterCrop(input_size)]
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def images_in(folder: str) -> list[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, name)))


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from PIL import Image

    state, train_args = load_checkpoint(args.checkpoint)
    model, classes = build_model(args.model, state, train_args, args.num_classes)
    device = torch.device("cuda" if args.device.startswith("cuda") and torch.cuda.is_available() else "cpu")
    model.to(device)
    transform = eval_transform(args.input_size, train_args)
    top_k = max(1, min(args.top_k, classes))

    paths = images_in(args.source)
    for start in range(0, len(paths), max(1, args.batch_size)):
        names, tensors = [], []
        for path in paths[start:start + args.batch_size]:
            try:
                with Image.open(path) as image:  # the repo's ImageFolder loader: PIL, RGB
                    tensors.append(transform(image.convert("RGB")))
                names.append(os.path.basename(path))
            except Exception as exc:  # noqa: BLE001 (that image's answer, the others go on)
                emit({"image": os.path.basename(path), "error": f"cannot read it: {exc}"})
        if not tensors:
            continue
        with torch.inference_mode():
            probabilities = torch.softmax(model(torch.stack(tensors).to(device)).float(), dim=1)
            scores, indexes = probabilities.topk(top_k, dim=1)
        for name, row_scores, row_indexes in zip(names, scores.tolist(), indexes.tolist()):
            emit({"image": name, "predictions": [{"index": int(i), "score": round(float(s), 6)}
                                                 for s, i in zip(row_scores, row_indexes)]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
