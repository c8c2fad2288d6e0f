"""visionyard's compatibility shims for cloned repos, applied at interpreter start.

The daemon puts this folder on PYTHONPATH only for repos whose spec lists shims, and names them
in VISIONYARD_SHIMS (comma-separated). Python imports ``sitecustomize`` by itself at start-up;
with VISIONYARD_SHIMS unset or empty this module does nothing.

Nothing here imports torch (a ~2 s import a repo may never need, e.g. ``main.py --help``):
each shim is an import hook that acts when the module it fixes is imported.

- ``torch_six``: a ``torch._six`` module (removed in torch 2.0) with ``inf``, ``nan``,
  ``string_classes``, ``int_classes`` and ``container_abcs``, used only when torch has none.
- ``cuda_synchronize_on_cpu``: once ``torch`` is imported, ``torch.cuda.synchronize`` becomes a
  no-op while CUDA is not available (ConvNeXt calls it every iteration, also on CPU).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys


class _TorchSixFinder(importlib.abc.MetaPathFinder):
    """Finds ``torch._six``; appended last to sys.meta_path, so a torch that has it wins."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch._six":
            return None
        return importlib.util.spec_from_loader(fullname, _TorchSixLoader(), origin="visionyard shim")


class _TorchSixLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        import collections.abc
        import math

        module.inf = math.inf
        module.nan = math.nan
        module.string_classes = (str, bytes)
        module.int_classes = int
        module.container_abcs = collections.abc


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs callbacks on a module right after it has executed, without importing it early.

    First on sys.meta_path: for a hooked name it asks the other finders for the real spec and
    wraps the spec's loader; the wrapper puts the real loader back before the module runs.
    """

    def __init__(self):
        self.hooks = {}

    def add(self, name, callback):
        if name in sys.modules:  # already imported (e.g. by a .pth file): patch now
            _run(callback, sys.modules[name])
        else:
            self.hooks.setdefault(name, []).append(callback)

    def find_spec(self, fullname, path=None, target=None):
        if not self.hooks.get(fullname) or fullname in sys.modules:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, self)
        return spec


class _PatchingLoader(importlib.abc.Loader):
    # The hooks stay registered until the module has really run: libraries often probe with
    # importlib.util.find_spec("torch") long before (or without) importing it.
    def __init__(self, loader, finder):
        self.loader = loader
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        for callback in self.finder.hooks.pop(module.__name__, []):
            _run(callback, module)


def _run(callback, module):
    try:
        callback(module)
    except Exception as exc:  # a broken shim must not hide the repo's own output
        print(f"[visionyard] shim {callback.__name__} failed: {exc!r}", file=sys.stderr)


def cuda_synchronize_on_cpu(torch):
    original = torch.cuda.synchronize

    def synchronize(device=None):
        if not torch.cuda.is_available():
            return None
        return original(device)

    synchronize.__doc__ = original.__doc__
    synchronize.__wrapped__ = original
    synchronize.visionyard_shim = True
    torch.cuda.synchronize = synchronize


def install(names):
    """Apply the named shims; unknown names are reported on stderr and skipped."""
    after_import = None
    for name in names:
        if name == "torch_six":
            sys.meta_path.append(_TorchSixFinder())
        elif name == "cuda_synchronize_on_cpu":
            if after_import is None:
                after_import = _AfterImport()
                sys.meta_path.insert(0, after_import)
            after_import.add("torch", cuda_synchronize_on_cpu)
        else:
            print(f"[visionyard] unknown shim {name!r} in VISIONYARD_SHIMS; ignored", file=sys.stderr)


install([n.strip() for n in os.environ.get("VISIONYARD_SHIMS", "").split(",") if n.strip()])
