"""``job.json``: what the daemon tells a child to do, as plain dataclasses.

The daemon writes ``{"job_id", "job_dir", "device", "checkpoint_dir", "spec"}`` where ``spec`` is
the validated job spec with its defaults filled. The fields a run cannot do without are
required; the rest get the same defaults the daemon fills, so a hand-written ``job.json`` (a
bare benchmark run) stays short.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.controls import CONTROL_DEFAULTS, EarlyStopping

#: The training settings a job spec may leave out, and what they are then: the daemon's spec
#: validation (runner/spec/validate.py), the repo translator (custom_repos/translate.py) and this
#: reader all fill them from here. (``image_size`` None: the model's or the repo's own size.)
TRAINING_DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 32, "learning_rate": 1e-3, "device": "auto",
                                     "num_workers": 0, "seed": 0, "image_size": None, **CONTROL_DEFAULTS}


@dataclass(frozen=True)
class DatasetSpec:
    path: str
    format: str
    split: str | None = None  # without a val split on disk: how val is made (adapters.datasets.split)
    val_ratio: float | None = None
    split_file: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainingSpec:
    epochs: int
    batch_size: int
    learning_rate: float
    device: str = TRAINING_DEFAULTS["device"]
    num_workers: int = TRAINING_DEFAULTS["num_workers"]
    seed: int = TRAINING_DEFAULTS["seed"]
    #: The training controls (``adapters.controls``): None where the spec leaves them to the framework.
    mixed_precision: str = TRAINING_DEFAULTS["mixed_precision"]
    gradient_accumulation: int = TRAINING_DEFAULTS["gradient_accumulation"]
    gradient_clip: float | None = None
    early_stopping: EarlyStopping | None = None
    warmup_epochs: float | None = None
    ema: bool | None = None


@dataclass(frozen=True)
class JobSpec:
    framework: str
    task: str
    model: str
    dataset: DatasetSpec
    training: TrainingSpec
    name: str = ""
    pretrained: bool = False
    image_size: int = 224
    num_classes: int | None = None  # None or 0: as many as the dataset has
    advanced: dict = field(default_factory=dict, hash=False)
    weights: str | None = None
    resume: str | None = None

    def setting(self, path: str, default: Any = None) -> Any:
        """The ``advanced`` value at a dotted path (``optimizer.type``), or ``default``."""
        node: Any = self.advanced
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                return default
            node = node[key]
        return node


@dataclass(frozen=True)
class Job:
    job_id: str
    job_dir: Path
    device: str
    checkpoint_dir: Path
    spec: JobSpec

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> Job:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f), base_dir=Path(path).resolve().parent)

    @classmethod
    def from_dict(cls, data: dict, base_dir: Path | None = None) -> Job:
        """Parse ``job.json``; a missing required field raises ValueError naming it."""
        spec = _require(data, "spec", dict)
        dataset = _require(spec, "dataset", dict, "spec.")
        training = _require(spec, "training", dict, "spec.")
        job_spec = JobSpec(
            framework=_require(spec, "framework", str, "spec."),
            task=_require(spec, "task", str, "spec."),
            model=_require(spec, "model", str, "spec."),
            dataset=DatasetSpec(
                path=_require(dataset, "path", str, "spec.dataset."),
                format=_require(dataset, "format", str, "spec.dataset."),
                split=dataset.get("split") or None,
                val_ratio=float(dataset["val_ratio"]) if dataset.get("val_ratio") else None,
                split_file=dataset.get("split_file") or None,
            ),
            training=TrainingSpec(
                epochs=int(_require(training, "epochs", (int, float), "spec.training.")),
                batch_size=int(_require(training, "batch_size", (int, float), "spec.training.")),
                learning_rate=float(_require(training, "learning_rate", (int, float), "spec.training.")),
                device=training.get("device") or TRAINING_DEFAULTS["device"],
                num_workers=int(training.get("num_workers") or TRAINING_DEFAULTS["num_workers"]),
                seed=int(training.get("seed") or TRAINING_DEFAULTS["seed"]),
                mixed_precision=str(training.get("mixed_precision") or TRAINING_DEFAULTS["mixed_precision"]),
                gradient_accumulation=int(training.get("gradient_accumulation") or 1),
                gradient_clip=None if training.get("gradient_clip") is None else float(training["gradient_clip"]),
                early_stopping=EarlyStopping.of(training.get("early_stopping")),
                warmup_epochs=None if training.get("warmup_epochs") is None else float(training["warmup_epochs"]),
                ema=None if training.get("ema") is None else bool(training["ema"]),
            ),
            name=spec.get("name") or "",
            pretrained=bool(spec.get("pretrained") or False),
            image_size=int(spec.get("image_size") or 224),
            num_classes=int(spec["num_classes"]) if spec.get("num_classes") else None,
            advanced=dict(spec.get("advanced") or {}),
            weights=spec.get("weights") or None,
            resume=spec.get("resume") or None,
        )
        job_dir = Path(data.get("job_dir") or base_dir or Path.cwd())
        return cls(
            job_id=str(data.get("job_id") or ""),
            job_dir=job_dir,
            device=data.get("device") or job_spec.training.device,
            checkpoint_dir=Path(data.get("checkpoint_dir") or job_dir / "checkpoints"),
            spec=job_spec,
        )

    def with_advanced(self, advanced: dict) -> Job:
        return dataclasses.replace(self, spec=dataclasses.replace(self.spec, advanced=advanced))


def _require(data: dict, key: str, types: type | tuple, where: str = "") -> Any:
    if key not in data or data[key] is None:
        raise ValueError(f"job spec is missing '{where}{key}'")
    value = data[key]
    if not isinstance(value, types) or isinstance(value, bool):
        raise ValueError(f"job spec field '{where}{key}' has the wrong type: {value!r}")
    return value
