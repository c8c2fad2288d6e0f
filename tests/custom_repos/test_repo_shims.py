"""The compat shims (custom_repos/shims/sitecustomize.py), run for real in the session's timm env
(torch 2.15: no torch._six, torch.cuda.synchronize fails without a GPU), plus a fake torch for the
cases torch 2.15 cannot show."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from custom_repos import prepare_launch
from custom_repos.registry import shipped_specs
from custom_repos.translate import SHIM_DIR

WITH_SHIMS = textwrap.dedent("""
    import sys
    assert "torch" not in sys.modules, "a shim imported torch at start-up"
    from torch._six import inf, string_classes, int_classes, container_abcs
    import collections.abc, math, torch
    assert inf == math.inf and string_classes == (str, bytes) and int_classes is int
    assert container_abcs is collections.abc
    assert torch.__loader__.__class__.__name__ != "_PatchingLoader"
    if not torch.cuda.is_available():
        assert torch.cuda.synchronize() is None
    assert torch.cuda.synchronize.visionyard_shim
    print("shimmed", torch.__version__)
""")
WITHOUT_SHIMS = textwrap.dedent("""
    import torch
    try:
        import torch._six
    except ModuleNotFoundError:
        print("no torch._six")
    assert not getattr(torch.cuda.synchronize, "visionyard_shim", False)
    if not torch.cuda.is_available():
        try:
            torch.cuda.synchronize()
        except Exception as exc:
            print("synchronize raises", type(exc).__name__)
""")


def run(python: Path | str, code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("VISIONYARD_SHIMS", "PYTHONPATH")}
    full.update(env)
    full.setdefault("PYTHONPYCACHEPREFIX", str(tmp_path / "pycache"))  # never into the source tree
    return subprocess.run([str(python), "-c", code], env=full, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_shims_in_the_real_torch_env(timm_env, tmp_path, imagefolder_dataset):
    launch = prepare_launch(shipped_specs()["convnext"], {
        "task": "image_classification", "model": "convnext_tiny",
        "dataset": {"path": str(imagefolder_dataset()), "format": "imagefolder"}}, tmp_path / "job", tmp_path,
        timm_env.python, "cpu")
    env = dict(launch.env, PYTHONPATH=os.pathsep.join(launch.pythonpath))
    shimmed = run(timm_env.python, WITH_SHIMS, env, tmp_path)
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.startswith("shimmed 2.")

    # The same PYTHONPATH without VISIONYARD_SHIMS changes nothing.
    plain = run(timm_env.python, WITHOUT_SHIMS, {"PYTHONPATH": str(SHIM_DIR)}, tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert "no torch._six" in plain.stdout
    assert not list(SHIM_DIR.glob("__pycache__"))


def fake_torch(root: Path, with_six: bool) -> Path:
    """A stand-in torch package: cuda.synchronize raises, like torch without a GPU."""
    pkg = root / "torch"
    (pkg / "cuda").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from torch import cuda\nLOADED = True\n")
    (pkg / "cuda" / "__init__.py").write_text(
        "def is_available():\n    return False\n"
        "def synchronize(device=None):\n    raise RuntimeError('no GPU')\n")
    if with_six:
        (pkg / "_six.py").write_text("inf = 'the real one'\n")
    return root


def test_a_torch_that_has_six_keeps_it_and_unknown_shims_warn(tmp_path):
    root = fake_torch(tmp_path / "fake", with_six=True)
    env = {"PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(root)]),
           "VISIONYARD_SHIMS": "torch_six, cuda_synchronize_on_cpu,torch_seven"}
    code = ("import importlib.util, sys; assert 'torch' not in sys.modules\n"
            "assert importlib.util.find_spec('torch') is not None  # a probe, as libraries do\n"
            "from torch._six import inf; import torch\n"
            "print(inf, torch.LOADED, torch.cuda.synchronize())\n")
    result = run(sys.executable, code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the real one True None"
    assert "unknown shim 'torch_seven'" in result.stderr


def test_only_the_named_shims_apply(tmp_path):
    root = fake_torch(tmp_path / "fake", with_six=False)
    env = {"PYTHONPATH": os.pathsep.join([str(SHIM_DIR), str(root)]), "VISIONYARD_SHIMS": "torch_six"}
    code = ("from torch._six import inf; import torch\n"
            "try:\n    torch.cuda.synchronize()\nexcept RuntimeError as exc:\n    print(inf, exc)\n")
    result = run(sys.executable, code, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "inf no GPU"
