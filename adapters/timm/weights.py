"""Weights for a timm model without a job (``TimmAdapter.load_weights``, child env only): a state dict
file in the shapes people save one, fitted into the model with a head of its size, and names for its
classes."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: Where a checkpoint file may keep the state dict (a checkpoint of ours: ``model``).
STATE_KEYS = ("state_dict", "model")


@dataclass(frozen=True)
class StateFile:
    """A state dict and what a checkpoint of ours says about it (None: the file does not say)."""

    state: dict[str, torch.Tensor]
    model_name: str | None = None
    class_names: list[str] | None = None
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def read_state_file(path: Path) -> StateFile:
    """``.safetensors``, or a ``torch.save`` file (``.pth``, ``.pt``, ``.bin``) holding a state dict, plain or
    under ``state_dict`` / ``model``; ``module.`` prefixes (DataParallel) are dropped."""
    from timm.models import clean_state_dict

    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist" + (" (a folder)" if path.is_dir() else ""))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return StateFile(clean_state_dict(load_file(str(path))))
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path} is not a state dict torch can load safely (tensors and plain values only): "
                         f"{str(exc).splitlines()[0]}; save model.state_dict() instead") from exc
    meta: dict[str, Any] = data if isinstance(data, dict) else {}
    state = next((meta[key] for key in STATE_KEYS if isinstance(meta.get(key), dict)), data)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} holds no state dict (tensors by name), neither plain nor under "
                         f"{' or '.join(repr(k) for k in STATE_KEYS)}")
    names = meta.get("class_names")
    return StateFile(clean_state_dict(state), meta.get("model_name"), [str(n) for n in names] if names else None,
                     int(meta["image_size"]) if meta.get("image_size") else None,
                     tuple(meta["mean"]) if meta.get("mean") else None, tuple(meta["std"]) if meta.get("std") else None)


def load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """``state`` into ``model``, whose classifier first takes the size of the file's: all of it, or a
    ValueError saying what does not fit."""
    key = head_key(model)
    head = state.get(f"{key}.weight")
    if head is None:
        raise ValueError(f"{path} has no classifier weights ('{key}.weight') for timm model '{name}': a backbone "
                         "without its head can't classify")
    if int(head.shape[0]) != model.num_classes:
        model.reset_classifier(int(head.shape[0]))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # tensors of other shapes
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise ValueError(f"{path} does not fit timm model '{name}': {detail}") from exc
    if missing or unexpected:
        parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})" for keys, what in
                 ((missing, "of its tensors missing"), (unexpected, "tensors not its own")) if keys]
        raise ValueError(f"{path} does not fit timm model '{name}': {'; '.join(parts)}")


def head_key(model: nn.Module) -> str:
    """The classifier's name in the state dict (``fc``, ``head.fc``; the first of a distilled pair)."""
    key = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "fc"
    return key[0] if isinstance(key, (list, tuple)) else key


def label_names(num_classes: int, given: list[str] | None = None) -> list[str]:
    """``given`` when it has a name per class; ImageNet's names for an ImageNet-sized head (1000 classes:
    ImageNet-1k; timm's 12k/21k/22k subsets likewise); else ``class 0``, ``class 1``, ..."""
    if given and len(given) == num_classes:
        return list(given)
    from timm.data import ImageNetInfo, infer_imagenet_subset

    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset:
        return list(ImageNetInfo(subset).label_descriptions())
    return [f"class {i}" for i in range(num_classes)]
