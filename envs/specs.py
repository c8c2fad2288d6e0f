"""The registry of framework env specs: one ``Registry``, one register function.

Each framework adapter runs in the env named after it. Everything is pinned so that a job run
today and a job run next month install the same versions (and share one env on disk).
``grpcio``/``protobuf`` must equal the host's pins in ``pyproject.toml``: the generated gRPC code
in ``protos/`` is shared by the daemon and the child and needs the same protobuf runtime
(``tests/envs/test_specs.py`` checks this).
"""

from __future__ import annotations

from adapters.registry import Registry
from envs.spec import EnvSpec

SPECS: Registry[EnvSpec] = Registry("env")


def register_spec(spec: EnvSpec) -> EnvSpec:
    """Add ``spec`` under ``spec.name`` and return it; an equal spec again is a no-op, a different
    one under a taken name raises ``AlreadyRegisteredError`` (a ValueError)."""
    return SPECS.register(spec.name, spec)


def get_spec(name: str) -> EnvSpec:
    """The spec named ``name``; ``UnknownNameError`` (a KeyError and a ValueError) lists the valid ones."""
    return SPECS.get(name)


def spec_names() -> list[str]:
    return sorted(SPECS)


# Shared by every framework env: the child reports to the daemon over gRPC.
GRPC_REQUIREMENTS = ("grpcio==1.85.1", "protobuf==7.36.2")
# Every framework env exports to ONNX and predicts with the export (adapters.onnx_export).
ONNX_REQUIREMENTS = ("onnx==1.23.2", "onnxruntime==1.32.0")

TIMM = register_spec(
    EnvSpec(
        name="timm",
        python="3.11",
        requirements=(
            "torch==2.15.0",
            "torchvision==0.29.2",
            "timm==1.0.31",
            "torchmetrics==1.9.0",
            *GRPC_REQUIREMENTS,
            *ONNX_REQUIREMENTS,
            "pillow==13.0.0",
            "numpy==2.4.6",
        ),
        description="timm image classification (torch from the registry, CUDA wheels, runs on CPU)",
    )
)

ULTRALYTICS = register_spec(
    EnvSpec(
        name="ultralytics",
        python="3.11",
        requirements=(
            "torch==2.15.0",
            "torchvision==0.29.2",
            "ultralytics==8.4.190",
            "opencv-python==5.0.0.93",
            "matplotlib==3.11.2",  # Ultralytics' plotting; its DejaVuSans stands in for the Arial it downloads
            "pycocotools==2.0.11",  # the dataset layer: COCO masks when converting to YOLO
            "pyyaml==6.0.4",
            *GRPC_REQUIREMENTS,
            *ONNX_REQUIREMENTS,
            "onnxslim==0.1.98",  # Ultralytics' export simplifies the graph with it
            "pillow==13.0.0",
            "numpy==2.4.6",
        ),
        description="Ultralytics YOLO detection, segmentation, pose, OBB, classification (torch from the registry)",
    )
)

TRANSFORMERS = register_spec(
    EnvSpec(
        name="transformers",
        python="3.11",
        requirements=(
            "torch==2.15.0",
            "torchvision==0.29.2",
            "transformers==5.23.0",
            "accelerate==1.15.0",  # Trainer
            "scipy==1.17.1",  # Hungarian matching in the DETR-family and Mask2Former/EoMT losses
            "pycocotools==2.0.11",  # detection mAP
            "torchmetrics==1.9.0",  # PSNR/SSIM, CER/WER
            "timm==1.0.31",  # backbones some architectures load through timm
            "av==18.1.0",  # PyAV: video classification decodes its clips (FFmpeg in the wheel)
            "pyyaml==6.0.4",
            *GRPC_REQUIREMENTS,
            *ONNX_REQUIREMENTS,
            "pillow==13.0.0",
            "numpy==2.4.6",
        ),
        description="HuggingFace Transformers: classification, detection, segmentation, super-resolution, OCR",
    )
)
