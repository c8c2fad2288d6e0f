"""Regenerate the gRPC modules from protos/visionyard.proto.

Run from anywhere: ``python -m protos.generate``. The generated files are committed;
tests/protos/test_generated.py fails when they are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = "protos/visionyard.proto"


def generate(out_dir: Path) -> None:
    """Write visionyard_pb2.py, visionyard_pb2.pyi and visionyard_pb2_grpc.py under out_dir/protos."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT)
