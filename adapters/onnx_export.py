"""ONNX export of a job's model, checked against PyTorch, and predictions with the export.

``python -m adapters.entrypoint --spec job.json --export onnx --checkpoint P --out DIR [--dynamic]
[--half] [--opset N] [--images PATH ...] [--count N]`` loads the checkpoint, exports with the
framework's own exporter (the adapter's ``export_onnx``: Ultralytics ``export``, ``torch.onnx`` for
timm and Transformers), then validates the file: the same images go through PyTorch and
onnxruntime,

- **raw**: the model's own input tensors (the adapter's ``onnx_inputs``) through the PyTorch model
  (``onnx_reference``) and the ONNX session; the largest absolute difference of any output must be
  within ``atol + rtol * max |PyTorch output|`` (float32: 1e-3, 1e-3; float16: 2e-2, 2e-2);
- **agreement**: the whole predict path with each runtime (the adapter's ``use_onnx`` swaps the
  model for the session; pre- and post-processing are the adapter's own), compared per task:
  top-1 class (a near tie in PyTorch's scores counts as agreeing), boxes (same class, IoU ≥ 0.5,
  as an F1 over both sets) or pixels of the class map; at least ``MIN_AGREEMENT`` of it.

``DIR/model.onnx`` and ``DIR/export.json`` (what was exported, the validation's numbers, images/s
of each runtime) are written; exit 0 when the export passed, 3 when its validation failed (the
numbers say how), 1 on any error (the reason on stderr).
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("visionyard.export")

FORMATS = ("onnx",)
DEFAULT_OPSET = 17
DEFAULT_COUNT = 8  # validation images
MODEL_FILE = "model.onnx"
REPORT_FILE = "export.json"
TOLERANCES = {False: (1e-3, 1e-3), True: (2e-2, 2e-2)}  # half -> (atol, rtol) of the raw outputs
MIN_AGREEMENT = 0.9
EXIT_INVALID = 3
BOX_TASKS = ("object_detection", "instance_segmentation", "pose_estimation", "obb_detection")
EXPORTED_TASKS = ("image_classification", *BOX_TASKS, "semantic_segmentation")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ExportError(RuntimeError):
    """An export that can't be made, with what to do instead."""


# ---------------------------------------------------------------- exporting with torch.onnx


def torch_export(model, example: dict[str, Any], path: Path, *, dynamic: bool, half: bool, opset: int | None,
                 keyword: bool = False) -> dict[str, Any]:
    """``torch.onnx.export`` of `model` called with `example` (input name -> tensor; by keyword when
    `keyword`, else positionally), every output tensor it returns named (a ``ModelOutput``'s own
    names, else ``output0``...). Batch is always dynamic; height and width too when `dynamic`.
    `half`: the weights and the float inputs in float16. Returns the export's description."""
    import copy

    import torch

    names = list(example)
    with torch.no_grad():
        sample = model(**example) if keyword else model(*example.values())
    output_names = _output_names(sample)
    module = _Named(model, names, output_names, keyword)
    inputs = dict(example)
    if half:
        module = copy.deepcopy(module).half()
        inputs = {k: v.half() if v.is_floating_point() else v for k, v in inputs.items()}
    axes: dict[str, dict[int, str]] = {}
    for name, tensor in inputs.items():
        axes[name] = {0: "batch"}
        if dynamic and tensor.dim() >= 3:  # images (batch, channels, height, width), masks (batch, height, width)
            axes[name].update({tensor.dim() - 2: "height", tensor.dim() - 1: "width"})
    for name in output_names:
        axes[name] = {0: "batch"}
    opset = opset or DEFAULT_OPSET
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(module.eval(), tuple(inputs.values()), str(path), input_names=names,
                          output_names=output_names, dynamic_axes=axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    return {"exporter": f"torch.onnx {torch.__version__}", "opset": opset, "inputs": names, "outputs": output_names}


def _output_names(sample) -> list[str]:
    import torch

    if isinstance(sample, torch.Tensor):
        return ["output0"]
    if isinstance(sample, dict):  # a ModelOutput: its tensors, in its order
        return [k for k, v in sample.items() if isinstance(v, torch.Tensor)]
    return [f"output{i}" for i, v in enumerate(sample) if isinstance(v, torch.Tensor)]


def _named_module():
    import torch

    class Named(torch.nn.Module):
        """`model` with positional inputs in `inputs`' order and a tuple of the named outputs: what
        ``torch.onnx.export`` traces."""

        def __init__(self, model, inputs: list[str], outputs: list[str], keyword: bool) -> None:
            super().__init__()
            self.model, self.inputs, self.outputs, self.keyword = model, inputs, outputs, keyword

        def forward(self, *tensors):
            out = self.model(**dict(zip(self.inputs, tensors, strict=True))) if self.keyword else self.model(*tensors)
            if isinstance(out, torch.Tensor):
                return (out,)
            if isinstance(out, dict):
                return tuple(out[name] for name in self.outputs)
            return tuple(v for v in out if isinstance(v, torch.Tensor))

    return Named


def _Named(model, inputs, outputs, keyword):  # noqa: N802 (builds the torch module class lazily)
    return _named_module()(model, inputs, outputs, keyword)


# ---------------------------------------------------------------- running an export


def onnx_session(path: str | Path, device: str = "cpu"):
    """An onnxruntime session for `path`: CUDA when `device` is one and this onnxruntime has it, else CPU;
    as many threads as ``OMP_NUM_THREADS`` says (a warm worker shares the cores with training jobs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    threads = int(os.environ.get("OMP_NUM_THREADS") or 0)
    if threads > 0:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.partition(":")[2] or 0)
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    return ort.InferenceSession(str(path), options, providers=providers)


class Fields(dict):
    """Named outputs with attribute access, as a Transformers ``ModelOutput`` gives them."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class OnnxModel:
    """An ONNX session standing in for a PyTorch model in an adapter's predict path: called with the
    model's inputs (positional, or by keyword; keywords the export has no input for are dropped),
    it returns torch tensors: the one output, or all as :class:`Fields` (``fields=True``). Float16
    exports get float16 inputs and give float32 outputs."""

    def __init__(self, path: str | Path, device: str = "cpu", config: Any = None, fields: bool = False) -> None:
        import torch

        self.session = onnx_session(path, str(device))
        self.inputs = [(i.name, i.type) for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.config, self.fields = config, fields
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.path = str(path)

    def eval(self) -> OnnxModel:
        return self

    def to(self, *args, **kwargs) -> OnnxModel:
        return self

    def run(self, feeds: dict[str, Any]) -> list:
        """The session's outputs (numpy) for input name -> tensor or array."""
        arrays = {}
        for name, kind in self.inputs:
            value = feeds[name]
            value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
            if kind == "tensor(float16)":
                value = value.astype("float16")
            elif kind == "tensor(float)":
                value = value.astype("float32")
            arrays[name] = value
        return self.session.run(None, arrays)

    def __call__(self, *args, **kwargs):
        import torch

        feeds = dict(zip((name for name, _ in self.inputs), args))
        feeds.update({k: v for k, v in kwargs.items() if any(k == name for name, _ in self.inputs)})
        missing = [name for name, _ in self.inputs if name not in feeds]
        if missing:
            raise ValueError(f"the ONNX model needs inputs {missing}; it was given {sorted(kwargs) or len(args)}")
        tensors = [torch.from_numpy(out).float() if out.dtype.kind == "f" else torch.from_numpy(out)
                   for out in self.run(feeds)]
        if self.fields:
            return Fields(zip(self.outputs, tensors, strict=True))
        return tensors[0]


# ---------------------------------------------------------------- validation


def raw_difference(adapter, session: OnnxModel, images: list[str]) -> dict[str, tuple[float, float]]:
    """Per output name: (largest |PyTorch - ONNX|, largest |PyTorch output|) over `images`, on the
    adapter's own inputs for them. A non-finite value where the other runtime has a finite one is an
    infinite difference."""
    import numpy as np

    found: dict[str, tuple[float, float]] = {}
    for feeds in adapter.onnx_inputs(images):
        reference = adapter.onnx_reference(feeds)
        try:
            got = dict(zip(session.outputs, session.run(feeds), strict=True))
        except Exception as exc:  # noqa: BLE001 (onnxruntime's own errors have no common base)
            shapes = {k: list(v.shape) for k, v in feeds.items()}
            raise ExportError(f"onnxruntime refused inputs {shapes}: {str(exc).strip()[:500]}. An export without "
                              "--dynamic takes the one image size it was made at; this model's inputs vary (its "
                              "processor keeps each image's aspect ratio): export with --dynamic") from exc
        for name, want in reference.items():
            if name not in got:
                raise ExportError(f"the ONNX model has no output {name} (it has {', '.join(session.outputs)})")
            want = want.detach().float().cpu().numpy()
            have = np.asarray(got[name], dtype=np.float32)
            if have.shape != want.shape:
                raise ExportError(f"output {name} of the ONNX model has shape {list(have.shape)}, PyTorch's "
                                  f"{list(want.shape)}")
            finite = np.isfinite(want)
            diff, scale = found.get(name, (0.0, 0.0))
            if not np.array_equal(finite, np.isfinite(have)):
                diff = float("inf")
            elif finite.any():
                diff = max(diff, float(np.abs(have[finite] - want[finite]).max()))
                scale = max(scale, float(np.abs(want[finite]).max()))
            found[name] = (diff, scale)
    return found


def worst_output(differences: dict[str, tuple[float, float]], half: bool) -> tuple[str, float, float]:
    """(name, difference, tolerance) of the output furthest past (or nearest to) its tolerance,
    ``atol + rtol * max |PyTorch output|``."""
    atol, rtol = TOLERANCES[half]
    rows = [(name, diff, atol + rtol * scale) for name, (diff, scale) in differences.items()]
    return max(rows, key=lambda row: row[1] / row[2])


def agreement(task: str, reference: list[dict], got: list[dict], tie: float) -> tuple[str, float]:
    """(what was compared, the share that agrees) between PyTorch's and ONNX's predictions of the same images."""
    if task == "image_classification":
        return "top-1", _mean(_top1(a, b, tie) for a, b in zip(reference, got, strict=True))
    if task in BOX_TASKS:
        return "boxes", _mean(_boxes(a, b) for a, b in zip(reference, got, strict=True))
    if task == "semantic_segmentation":
        return "pixels", _mean(_pixels(a, b) for a, b in zip(reference, got, strict=True))
    raise ExportError(f"no agreement measure for task {task}")


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 1.0


def _top1(a: dict, b: dict, tie: float) -> float:
    pa, pb = a.get("predictions") or [], b.get("predictions") or []
    if not pa or not pb:
        return float(not pa and not pb)
    if pa[0]["index"] == pb[0]["index"]:
        return 1.0
    scores = {p["index"]: p["score"] for p in pa}  # a near tie in PyTorch's own scores is no disagreement
    return float(pb[0]["index"] in scores and pa[0]["score"] - scores[pb[0]["index"]] <= tie)


def _boxes(a: dict, b: dict) -> float:
    pa, pb = a.get("predictions") or [], b.get("predictions") or []
    if not pa and not pb:
        return 1.0
    taken: set[int] = set()
    matched = 0
    for p in sorted(pa, key=lambda p: -p["score"]):
        best, best_iou = None, 0.5
        for j, q in enumerate(pb):
            if j in taken or q["index"] != p["index"] or "box" not in p or "box" not in q:
                continue
            overlap = _iou(p["box"], q["box"])
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            taken.add(best)
            matched += 1
    return 2 * matched / (len(pa) + len(pb))


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(a == b)


def _pixels(a: dict, b: dict) -> float:
    import numpy as np
    from PIL import Image

    ma, mb = a.get("mask_png"), b.get("mask_png")
    if not ma or not mb:
        return float(not ma and not mb)
    la, lb = (np.asarray(Image.open(io.BytesIO(bytes(m)))) for m in (ma, mb))
    return float((la == lb).mean()) if la.shape == lb.shape else 0.0


def find_images(given: list[str], job, count: int) -> list[str]:
    """`count` images to validate with: from `given` (files, or folders walked), else the job's
    validation split as the dataset layer reads it (its val images on disk, or the split the job
    made), sorted; ExportError when there are none."""
    if given:
        found = []
        for path in map(Path, given):
            found += [str(path)] if path.is_file() else sorted(
                str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise ExportError(f"no image in {', '.join(given)} (looked for {', '.join(IMAGE_SUFFIXES)})")
        return found[:count]
    from adapters.datasets import read_dataset, split_options

    spec = job.spec
    if not spec.dataset.path or not Path(spec.dataset.path).exists():
        raise ExportError(f"the job's dataset {spec.dataset.path or '(none)'} is not there to validate the export "
                          "with: pass images (export --images PATH)")
    try:
        data = read_dataset(spec.dataset.path, spec.dataset.format, spec.task, quiet=True,
                            split=split_options(spec.dataset.as_dict(), spec.training.seed))
    except Exception as exc:  # noqa: BLE001 (the dataset's own message says what is wrong)
        raise ExportError(f"the job's dataset can't be read to validate the export ({exc}): pass images "
                          "(export --images PATH)") from exc
    found = sorted({r.path for r in (data.val or data.train) if r.path and Path(r.path).is_file()})
    if not found:
        raise ExportError(f"no image file in the job's dataset {spec.dataset.path}: pass images (export --images PATH)")
    return found[:count]


def _timed_predict(adapter, images: list[str]) -> tuple[list[dict], float]:
    """The adapter's predictions of `images` (one warm-up image first) and images per second."""
    batch = getattr(adapter, "predict_batch", None)
    run = (lambda: batch(images, 5, False)) if batch else (lambda: [adapter.predict(i, 5) for i in images])
    (batch([images[0]], 5, False) if batch else adapter.predict(images[0], 5))
    started = time.perf_counter()
    answers = run()
    seconds = max(time.perf_counter() - started, 1e-9)
    return [a if isinstance(a, dict) else {"predictions": a} for a in answers], len(images) / seconds


def export(spec_path: str, checkpoint: str, out_dir: str, fmt: str = "onnx", dynamic: bool = False,
           half: bool = False, opset: int | None = None, images: list[str] | None = None,
           count: int = DEFAULT_COUNT, device: str = "cpu") -> int:
    """Export, validate, write the model and ``export.json`` into `out_dir`; the exit code (see the module)."""
    import dataclasses

    from adapters.entrypoint import build_adapter
    from adapters.job import Job
    from adapters.reporter import Reporter

    out = Path(out_dir)
    try:
        if fmt not in FORMATS:
            raise ExportError(f"format {fmt!r} is not one this exports; valid: {', '.join(FORMATS)}")
        job = dataclasses.replace(Job.from_file(spec_path), device=device)
        task = job.spec.task
        if task not in EXPORTED_TASKS:
            raise ExportError(f"{task} models are not exported to ONNX (their predict path is not one forward "
                              f"pass: generation or tiling); exported tasks: {', '.join(EXPORTED_TASKS)}")
        chosen = find_images(list(images or ()), job, max(1, count))
        out.mkdir(parents=True, exist_ok=True)
        path = out / MODEL_FILE
        started = time.perf_counter()
        torch_side = build_adapter(job, Reporter(None))
        torch_side.load_checkpoint(checkpoint)
        if not hasattr(torch_side, "export_onnx"):
            raise ExportError(f"the {job.spec.framework} adapter does not export to ONNX")
        described = torch_side.export_onnx(path, dynamic=dynamic, half=half, opset=opset)
        exported_s = time.perf_counter() - started
        log.info("exported %s in %.1f s; validating on %d image(s)", path, exported_s, len(chosen))

        session = OnnxModel(path, device)
        differences = raw_difference(torch_side, session, chosen)
        output, worst, tolerance = worst_output(differences, half)
        reference, torch_speed = _timed_predict(torch_side, chosen)
        onnx_side = build_adapter(job, Reporter(None))
        onnx_side.load_checkpoint(checkpoint)
        onnx_side.use_onnx(path)
        got, onnx_speed = _timed_predict(onnx_side, chosen)
        kind, agreed = agreement(task, reference, got, tie=max(tolerance, 1e-4))
        passed = worst <= tolerance and agreed >= MIN_AGREEMENT
        report = {
            "format": fmt, "file": str(path), "size_bytes": path.stat().st_size, "task": task,
            "framework": job.spec.framework, "model": job.spec.model, "checkpoint": checkpoint,
            "dynamic": dynamic, "half": half, "device": device, **described,
            "export_seconds": exported_s,
            "validation": {
                "images": len(chosen), "max_abs_diff": worst, "tolerance": tolerance, "worst_output": output,
                "outputs": {name: {"max_abs_diff": d, "max_abs": m} for name, (d, m) in differences.items()},
                "agreement_kind": kind, "agreement": agreed, "min_agreement": MIN_AGREEMENT, "passed": passed,
                "pytorch_images_per_s": torch_speed, "onnx_images_per_s": onnx_speed,
                "image_files": chosen,
            },
        }
    except Exception as exc:  # noqa: BLE001 (the reason goes to the daemon on stderr)
        log.debug("export failed", exc_info=True)
        print(f"export failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
    print(json.dumps(report), flush=True)
    if not passed:
        print(f"export validation failed: max |PyTorch - ONNX| of {output} {worst:.3g} (tolerance {tolerance:.3g}), "
              f"{kind} agreement {agreed:.3f} (at least {MIN_AGREEMENT})", file=sys.stderr, flush=True)
        return EXIT_INVALID
    return 0
