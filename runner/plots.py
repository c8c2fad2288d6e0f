"""PNG figures of validation results, drawn with matplotlib off-screen (no display, no network).

Plain data in, a PNG file out, so that the CLI (`visionyard results --plots DIR`) and the daemon's
MLflow tracking draw the same pictures. matplotlib is imported when a figure is drawn, not before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

#: Tick labels are written on a confusion matrix up to this many labels (above, the axes are indices).
LABELLED_UP_TO = 40
#: Per-class bars drawn at most (the lowest values when there are more).
MAX_BARS = 50


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix(labels: Sequence[str], rows: Sequence[Sequence[int]], path: str | Path, normalise: bool = False,
                     title: str = "") -> Path:
    """The matrix as a heatmap, rows the ground truth and columns the prediction; `normalise`
    divides each row by its sum (the diagonal is then each class's recall)."""
    import numpy as np

    plt = _pyplot()
    matrix = np.asarray(rows, dtype=float)
    if normalise:
        sums = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
    n = len(labels)
    side = min(4 + 0.35 * n, 14)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= LABELLED_UP_TO:
        ax.set_xticks(range(n), labels=labels, rotation=90)
        ax.set_yticks(range(n), labels=labels)
        if n <= 15:
            top = matrix.max() or 1
            for t in range(n):
                for p in range(n):
                    value = matrix[t, p]
                    ax.text(p, t, f"{value:.2f}" if normalise else f"{int(value)}", ha="center", va="center",
                            fontsize=8, color="white" if value > top / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title or ("confusion matrix, normalised by row" if normalise else "confusion matrix"))
    return _save(fig, path)


def per_class_bars(names: Sequence[str], values: Sequence[float | None], key: str, path: str | Path,
                   title: str = "") -> Path:
    """One horizontal bar per class (the `MAX_BARS` lowest when there are more); a class without a
    value is left out."""
    plt = _pyplot()
    pairs = sorted(((v, n) for n, v in zip(names, values, strict=True) if v is not None and not math.isnan(v)),
                   key=lambda pair: pair[0])
    shown = pairs[:MAX_BARS]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.25 * max(len(shown), 6)))
    ax.barh(range(len(shown)), [v for v, _ in shown], color="tab:blue")
    ax.set_yticks(range(len(shown)), labels=[n for _, n in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(key)
    more = f" (the {len(shown)} lowest of {len(pairs)})" if len(pairs) > len(shown) else ""
    ax.set_title((title or f"{key} per class") + more)
    return _save(fig, path)


def curves(epochs: Sequence[dict], keys: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Each of `keys` against the epoch, from `epochs` (``{"epoch", "metrics"}``), one panel per key;
    a key no epoch has is left out."""
    plt = _pyplot()
    present = [k for k in keys if any(k in (e.get("metrics") or {}) for e in epochs)]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(4.5 * max(len(present), 1), 3.5), squeeze=False)
    for ax, key in zip(axes[0], present):
        points = [(e["epoch"], e["metrics"][key]) for e in epochs if key in (e.get("metrics") or {})]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o" if len(points) <= 30 else None)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def overlaid(series: dict[str, Sequence[tuple[float, float, float]]], metric: str, path: str | Path,
             title: str = "") -> Path:
    """One line per entry of `series` (label → [(epoch, minutes, value)]): the metric per epoch, and per
    minute of training, side by side."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, points in series.items():
        marker = "o" if len(points) <= 30 else None
        axes[0].plot([p[0] for p in points], [p[2] for p in points], marker=marker, label=label)
        axes[1].plot([p[1] for p in points], [p[2] for p in points], marker=marker, label=label)
    for ax, x in zip(axes, ("epoch", "minutes of training")):
        ax.set_xlabel(x)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
