"""The committed gRPC modules must match protos/visionyard.proto."""

from pathlib import Path

from protos.generate import ROOT, generate

GENERATED = ("visionyard_pb2.py", "visionyard_pb2.pyi", "visionyard_pb2_grpc.py")


def test_generated_modules_are_fresh(tmp_path: Path):
    generate(tmp_path)
    stale = [name for name in GENERATED
             if (tmp_path / "protos" / name).read_text() != (ROOT / "protos" / name).read_text()]
    assert not stale, f"regenerate with `make proto`: {stale} differ from protos/visionyard.proto"


def test_generated_imports_are_package_relative():
    text = (ROOT / "protos" / "visionyard_pb2_grpc.py").read_text()
    assert "from protos import visionyard_pb2" in text
