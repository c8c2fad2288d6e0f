"""A dataset's summary as plain data: classes per split, images, annotations, sizes, problems."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from adapters.datasets.images import image_size
from adapters.datasets.problems import ERROR, WARNING, DatasetError, Problems
from adapters.datasets.records import Dataset


def summarize(dataset: Dataset | None, problems: Problems, *, read_sizes: bool = True) -> dict[str, Any]:
    """Everything ``visionyard datasets check`` shows; ``--json`` prints exactly this."""
    out: dict[str, Any] = {
        "ok": not problems.has_errors,
        "errors": [p.to_dict() for p in problems.errors],
        "warnings": [p.to_dict() for p in problems.warnings],
        "more_errors": problems.more(ERROR),
        "more_warnings": problems.more(WARNING),
    }
    if dataset is None:
        return out
    splits = {"train": dataset.train, "val": dataset.val}
    counts = {name: Counter() for name in splits}
    kinds: Counter = Counter()
    for name, records in splits.items():
        for record in records:
            if record.label is not None:
                counts[name][record.label] += 1
            for ann in record.annotations:
                counts[name][ann.class_id] += 1
                kinds["boxes"] += ann.box is not None
                kinds["polygons"] += ann.polygons is not None
                kinds["rle_masks"] += ann.rle is not None
                kinds["keypoint_sets"] += ann.keypoints is not None
                kinds["rotated_boxes"] += ann.rbox is not None
                kinds["ignored"] += ann.ignore
            kinds["masks"] += record.mask is not None
            kinds["lr_images"] += record.lr is not None
            kinds["texts"] += record.text is not None
    out.update(
        root=dataset.root, format=dataset.format, task=dataset.task, val_source=dataset.val_source,
        images={name: len(records) for name, records in splits.items()},
        classes=[{"id": i, "name": name, "train": counts["train"][i], "val": counts["val"][i]}
                 for i, name in enumerate(dataset.class_names)],
        counted={"image_classification": "images", "zero_shot_classification": "images",
                 "video_classification": "videos"}.get(dataset.task, "objects"),
        annotations={k: v for k, v in kinds.items() if v},
        image_sizes=_sizes(dataset, read_sizes),
    )
    if dataset.kpt_shape:
        out["kpt_shape"] = list(dataset.kpt_shape)
    if dataset.scale:
        out["scale"] = dataset.scale
    texts = [r.text for r in dataset.train + dataset.val if r.text]
    if texts:
        out["text"] = {"characters": len(set("".join(texts))), "max_length": max(map(len, texts))}
    return out


def _sizes(dataset: Dataset, read_sizes: bool) -> dict[str, Any]:
    sizes = []
    for record in dataset.train + dataset.val:
        if record.width and record.height:
            sizes.append((record.width, record.height))
        elif read_sizes:
            try:
                sizes.append(image_size(record))
            except DatasetError:
                continue  # reported by the decode check
    if not sizes:
        return {}
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return {"images": len(sizes), "distinct": len(set(sizes)),
            "min": [min(widths), min(heights)], "max": [max(widths), max(heights)],
            "median": [statistics.median_low(widths), statistics.median_low(heights)]}
