"""A repo's predict (its spec's ``predict:``): the command for one batch of images, and its answers
read back into the shape every framework's predict has (``adapters.entrypoint``), so a custom
repo's job predicts through the same RPCs, CLI and ``predictions.jsonl`` as a framework's."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from adapters.catalog import resolve_advanced
from adapters.entrypoint import normalise_prediction_result
from custom_repos import template
from custom_repos.spec import RepoSpec
from custom_repos.translate import CONFIG_DIR, SHIM_DIR

#: What a repo spec without `predict:` is told to add.
MISSING = ("its spec has no `predict:` section. Add one that predicts a folder of images with a checkpoint, "
           "e.g. for a YOLO-style detect.py:\n"
           "predict:\n"
           "  command: [\"{python}\", detect.py, --weights, \"{checkpoint}\", --source, \"{source}\", "
           "--save-txt, --save-conf, --nosave, --project, \"{output_dir}\", --name, run, --exist-ok]\n"
           "  output: yolo_txt\n"
           "  labels: run/labels\n"
           "or, for a classifier, a command printing one JSON line per image with `output: json_lines` "
           "(the shipped convnext spec's). (custom_repos/README.md, \"Predict\")")


def predict_command(spec: RepoSpec, job: Mapping[str, Any], job_dir: Path, python: Path, checkpoint: str,
                    source: Path, output_dir: Path, top_k: int, device: str = "cpu") -> tuple[list[str], dict[str, str]]:
    """(argv, env) of the repo's predict over the images in `source`, answers into `output_dir`."""
    assert spec.predict is not None
    training = job.get("training") or {}
    model = job.get("model") or ""
    preset = model if model in spec.model_defaults else None
    advanced = resolve_advanced(spec.catalog(), job.get("advanced") or {}, preset)
    device_type = device.split(":", 1)[0]
    values: dict[str, Any] = {
        "python": str(Path(python).absolute()), "model": model, "checkpoint": checkpoint, "source": str(source),
        "output_dir": str(output_dir), "job_dir": str(job_dir), "top_k": top_k, "device": device,
        "device_index": "cpu" if device_type == "cpu" else device.split(":", 1)[-1], "device_type": device_type,
        "image_size": job.get("image_size") or training.get("image_size") or spec.default_image_size,
        "num_classes": len(class_names(job_dir, job)) or job.get("num_classes") or 0,
        "shim_dir": str(SHIM_DIR), "use_gpu": device_type != "cpu",
    }
    for name in spec.config_files:  # as the job's training wrote them (custom_repos/translate.py)
        values[f"{template.CONFIG_FILES}.{name}"] = str(Path(job_dir) / CONFIG_DIR / name)
    for key in spec.advanced:
        value: Any = advanced
        for part in key.split("."):
            value = value[part]
        values[f"advanced.{key}"] = value
    env = {}
    for name, value in [*spec.env.items(), *spec.predict.env.items()]:
        if set(template.placeholders(value)) <= set(values):  # the training env's, where they make sense here
            env[name] = template.render(value, values)
    if spec.shims:  # the training's compat shims apply here too (custom_repos/translate.py)
        env["VISIONYARD_SHIMS"] = ",".join(spec.shims)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SHIM_DIR), env.get("PYTHONPATH")]))
    return template.render_command(list(spec.predict.command), values), env


def class_names(job_dir: Path, job: Mapping[str, Any] | None = None) -> list[str]:
    """The job's class names, index by index: from the `data.yaml` its training wrote (YOLO-format
    repos), else, for an image-folder dataset, the sorted folder names of the train folder the repo
    read (torchvision ImageFolder's numbering: `job_dir/data/train` for a converted dataset, else
    the dataset's own `train/`); [] when neither is there."""
    try:
        names = yaml.safe_load((Path(job_dir) / "data.yaml").read_text()).get("names")
    except (OSError, AttributeError, yaml.YAMLError):
        names = None
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names)]
    if isinstance(names, list):
        return [str(n) for n in names]
    categories = _coco_categories(Path(job_dir))
    if categories:
        return [name for _, name in categories]
    train = _imagefolder_train_dir(Path(job_dir), job or {})
    try:  # ImageFolder's find_classes: every folder (links followed), sorted by name
        return sorted(entry.name for entry in os.scandir(train) if entry.is_dir()) if train else []
    except OSError:
        return []


def _coco_categories(job_dir: Path) -> list[tuple[int, str]]:
    """(category id, name) of the COCO annotations a COCO-format repo's training read, by id; [] when none."""
    try:
        doc = json.loads((job_dir / "data" / "annotations" / "instances_train.json").read_text(encoding="utf-8"))
        return sorted((int(c["id"]), str(c["name"])) for c in doc["categories"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _imagefolder_train_dir(job_dir: Path, job: Mapping[str, Any]) -> Path | None:
    staged = job_dir / "data" / "train"  # a dataset converted to image folders at launch
    if staged.is_dir():
        return staged
    dataset = job.get("dataset") or {}
    if dataset.get("path") and (dataset.get("format") or "imagefolder") == "imagefolder":
        return Path(str(dataset["path"])).expanduser() / "train"
    return None


def read_answers(spec: RepoSpec, task: str, output_dir: Path, stdout: str, images: list[Path],
                 names: list[str], top_k: int | list[int], annotate: list[bool] | None = None,
                 job_dir: Path | None = None) -> list[dict[str, Any] | str]:
    """Per image (in `images`' order, the files the command was given): the result object, or why
    there is none; with the drawn image (`image_png`) where `annotate` asks and the spec says
    where the command draws. `top_k`: for all images, or per image (a batch's requests may differ;
    the command ran with their largest)."""
    assert spec.predict is not None
    if spec.predict.output == "yolo_txt":
        raws = [_yolo_txt(output_dir / spec.predict.labels / f"{image.stem}.txt", image, names) for image in images]
    elif spec.predict.output == "coco_json":
        raws = _coco_json(output_dir / spec.predict.labels, images, names, job_dir)
    else:
        raws = _json_lines(stdout, images, names, top_k if isinstance(top_k, list) else [top_k] * len(images))
    answers: list[dict[str, Any] | str] = []
    for n, (image, raw) in enumerate(zip(images, raws, strict=True)):
        if isinstance(raw, str):
            answers.append(raw)
            continue
        if annotate and annotate[n] and spec.predict.annotated:
            drawn = output_dir / spec.predict.annotated.replace("{name}", image.name)
            if drawn.is_file():
                raw["image_png"] = _as_png(drawn)
        try:
            answers.append(normalise_prediction_result(raw, task, str(image)))
        except (TypeError, ValueError) as exc:
            answers.append(f"the repo's predict answered {image.name} with something malformed: {exc}")
    return answers


def _as_png(path: Path) -> bytes:
    import io

    from PIL import Image

    with Image.open(path) as image:
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def _label(index: int, names: list[str]) -> str:
    return names[index] if 0 <= index < len(names) else str(index)


def _yolo_txt(path: Path, image: Path, names: list[str]) -> dict[str, Any] | str:
    from adapters.image_limits import header_size

    size = header_size(image)
    if size is None:
        return f"{image.name} is not an image the repo's predict could read"
    width, height = size
    predictions = []
    try:
        lines = path.read_text().splitlines() if path.exists() else []  # no file: nothing found
    except OSError as exc:
        return f"cannot read the repo's answer {path}: {exc.strerror}"
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        try:
            index, cx, cy, w, h = int(float(parts[0])), *map(float, parts[1:5])
            score = float(parts[5]) if len(parts) > 5 else 1.0
        except (ValueError, TypeError):
            return f"{path.name}:{number}: not `class cx cy w h [confidence]`: {line[:100]!r}"
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        predictions.append({"label": _label(index, names), "score": score, "index": index,
                            "box": [round(v, 2) for v in box]})
    predictions.sort(key=lambda p: -p["score"])
    return {"predictions": predictions, "width": width, "height": height}


def _coco_json(path: Path, images: list[Path], names: list[str], job_dir: Path | None
               ) -> list[dict[str, Any] | str]:
    """COCO detection results (``[{"category_id", "bbox": [x, y, w, h], "score", "im_file" | "file_name"}]``,
    PaddleDetection's ``infer.py --save_results True --rtn_im_file True``): each result's image by its file
    name (``im_file`` may be a one-element list), its class by the category's place among the job's COCO
    categories (ids in ascending order). No file: nothing found in any image."""
    from adapters.image_limits import header_size

    try:
        results = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    except (OSError, ValueError) as exc:
        return [f"cannot read the repo's answer {path.name}: {exc}"] * len(images)
    if not isinstance(results, list):
        return [f"the repo's answer {path.name} is not a list of COCO results"] * len(images)
    index_of = {cid: i for i, (cid, _) in enumerate(_coco_categories(job_dir) if job_dir else [])}
    by_image: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        try:
            where = result.get("im_file") or result.get("file_name")
            where = where[0] if isinstance(where, list) else where
            x, y, w, h = map(float, result["bbox"])
            cid, score = int(result["category_id"]), float(result["score"])
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            return [f"the repo's answer {path.name} holds a result that is not COCO's (category_id, bbox, score, "
                    f"im_file or file_name): {str(result)[:100]}"] * len(images)
        index = index_of.get(cid, cid)
        by_image.setdefault(Path(str(where)).name, []).append(
            {"label": _label(index, names), "score": score, "index": index, "box": [x, y, x + w, y + h]})
    answers: list[dict[str, Any] | str] = []
    for image in images:
        size = header_size(image)
        if size is None:
            answers.append(f"{image.name} is not an image the repo's predict could read")
            continue
        width, height = size
        predictions = sorted(by_image.get(image.name, []), key=lambda p: -p["score"])
        for p in predictions:  # within the image, as every framework's boxes are
            x1, y1, x2, y2 = p["box"]
            p["box"] = [round(min(max(v, 0.0), limit), 2) for v, limit in ((x1, width), (y1, height), (x2, width),
                                                                            (y2, height))]
        answers.append({"predictions": predictions, "width": width, "height": height})
    return answers


def _json_lines(stdout: str, images: list[Path], names: list[str], top_ks: list[int]) -> list[dict[str, Any] | str]:
    by_image: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "image" in data:
            by_image[str(Path(str(data["image"])).name)] = data
    answers: list[dict[str, Any] | str] = []
    for image, top_k in zip(images, top_ks, strict=True):
        data = by_image.get(image.name)
        if data is None:
            answers.append(f"the repo's predict printed no answer for {image.name}")
            continue
        if data.get("error"):
            answers.append(f"the repo's predict could not predict {image.name}: {str(data['error'])[:500]}")
            continue
        predictions = list(data.get("predictions") or [])
        for p in predictions:
            if isinstance(p, dict) and not p.get("label") and "index" in p:
                p["label"] = _label(int(p["index"]), names)
        if not any(isinstance(p, dict) and "box" in p for p in predictions):  # classes: the best `top_k`
            predictions = sorted(predictions, key=lambda p: -float(p.get("score", 0)) if isinstance(p, dict) else 0)
            predictions = predictions[:top_k]
        answers.append({"predictions": predictions})
    return answers
