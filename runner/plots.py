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


# ---------------------------------------------------------------- precision–recall curves

#: Per-class lines drawn at most beside the mean (the best and the worst halves by AP when there are more).
MAX_CURVE_LINES = 10


def pr_curves(recall: Sequence[float], mean: Sequence[float | None] | None,
              per_class: dict[str, Sequence[float | None]], path: str | Path, ap: dict[str, float | None] | None = None,
              mean_ap: float | None = None, iou: float = 0.5, title: str = "") -> Path:
    """Precision against recall: the mean over the classes bold (``mean_ap``, the mAP50, in the legend) and
    up to ``MAX_CURVE_LINES`` classes' lines (``ap``: each one's AP50 for the legend; a class missing there
    gets its curve's mean, COCO's AP of 101 points). With more classes, the best and the worst half by AP.
    An undefined precision (None, NaN) leaves a gap."""
    plt = _pyplot()

    def values(curve: Sequence[float | None]) -> list[float]:
        return [math.nan if v is None else float(v) for v in curve]

    def curve_ap(name: str, curve: list[float]) -> float:
        given = (ap or {}).get(name)
        if given is not None and not math.isnan(given):
            return float(given)
        known = [v for v in curve if not math.isnan(v)]
        return sum(known) / len(known) if known else math.nan

    lines = sorted(((curve_ap(name, values(curve)), name, values(curve)) for name, curve in per_class.items()),
                   key=lambda line: (-line[0] if not math.isnan(line[0]) else math.inf, line[1]))
    shown, more = lines, ""
    if len(lines) > MAX_CURVE_LINES:
        half = MAX_CURVE_LINES // 2
        shown = lines[:half] + lines[-(MAX_CURVE_LINES - half):]
        more = f" (the {half} best and {MAX_CURVE_LINES - half} worst of {len(lines)} classes)"
    fig, ax = plt.subplots(figsize=(7, 6))
    for value, name, curve in shown:
        ax.plot(recall, curve, linewidth=1, alpha=0.8, label=f"{name} {value:.3f}")  # its AP
    if mean is not None:
        curve = values(mean)
        value = mean_ap if mean_ap is not None and not math.isnan(mean_ap) else curve_ap("", curve)
        ax.plot(recall, curve, linewidth=3, color="tab:blue" if not shown else "black",
                label=f"all classes {value:.3f} (mAP{iou * 100:g})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title((title or f"precision-recall at IoU {iou:g}") + more, fontsize=10)
    return _save(fig, path)


def pr_curve_figures(curves: dict[str, dict], per_class: Sequence[dict], metrics: dict[str, float | None],
                     folder: str | Path, title: str) -> list[Path]:
    """``pr_curves`` of each kind of a record's ``curves`` (``pr``, ``mask_pr``, ``pose_pr``: shape in
    ``adapters.evaluation.record``) into ``folder/<kind>_curves.png``, the legend's APs from the record's
    ``per_class`` rows (``AP50``, ``mask_AP50`` …) and ``metrics`` (``val/mAP50`` …); their paths."""
    written = []
    for kind, curve in curves.items():
        prefix = kind.removesuffix("pr")  # "", mask_, pose_
        what = f" of {prefix[:-1]}s" if prefix else ""
        written.append(pr_curves(curve.get("recall") or [], curve.get("mean"), curve.get("per_class") or {},
                                 Path(folder) / f"{kind}_curves.png",
                                 ap={str(row.get("class")): row.get(prefix + "AP50") for row in per_class},
                                 mean_ap=metrics.get(f"val/{prefix}mAP50"), iou=curve.get("iou") or 0.5,
                                 title=f"{title}: precision-recall{what} at IoU {curve.get('iou') or 0.5:g}"))
    return written


# ---------------------------------------------------------------- gallery

#: A gallery's images at most, its columns, each tile's side in pixels (the image fitted inside), the caption
#: strip above a tile, the gap between tiles, the header with the title and the legend, the box lines' width.
GALLERY_TILES, GALLERY_COLUMNS, TILE, CAPTION, GAP, HEADER, LINE = 16, 4, 256, 30, 4, 24, 3
#: The colours of a gallery: a predicted box that matches an object of its class (TP), one that matches none
#: (FP), an object nothing matched (FN, dashed), a crowd region and a prediction on one (neither), and a
#: classification that is right or wrong.
COLOURS = {"tp": (0, 170, 0), "fp": (220, 20, 20), "fn": (255, 140, 0), "crowd": (150, 150, 150),
           "right": (0, 170, 0), "wrong": (220, 20, 20)}
#: A predicted box matches an object of its class from this IoU on (COCO's AP50), greedily by score.
MATCH_IOU = 0.5
BLANK = (225, 225, 225)
MIN_WIDTH = 2 * TILE + GAP


def gallery_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows of ``rows`` a gallery draws: those with a ``predicted`` and a ``truth`` (an ``eval`` record's
    ``per_image`` of classification or detection: ``adapters.evaluation.scoring``)."""
    return [row for row in rows if isinstance(row, dict) and "truth" in row and "predicted" in row]


def box_iou(first: Sequence[float], second: Sequence[float]) -> float:
    """IoU of two xyxy boxes."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    inter = max(width, 0.0) * max(height, 0.0)
    union = _area(first) + _area(second) - inter
    return inter / union if union > 0 else 0.0


def _area(box: Sequence[float]) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def match_boxes(predicted: Sequence[dict], truth: Sequence[dict],
                iou: float = MATCH_IOU) -> tuple[list[str], list[str]]:
    """What each predicted box and each true box of an image is, as the gallery colours them: predicted boxes,
    the highest score first, each take the untaken object of their class they overlap most at IoU ``iou`` or
    more (``tp``); one that takes none is ``crowd`` when it lies on a crowd region of its class (the region
    covering ``iou`` of it, as COCO ignores it), else ``fp``. A true box is ``tp`` when taken, ``crowd``
    when a crowd region, else ``fn``. Boxes ``{"label", "box": xyxy, "score" (predicted), "crowd" (true)}``."""
    kinds, taken = ["fp"] * len(predicted), ["crowd" if t.get("crowd") else "fn" for t in truth]
    for p in sorted(range(len(predicted)), key=lambda p: -float(predicted[p].get("score") or 0.0)):
        found = predicted[p]
        candidates = [(box_iou(found["box"], t["box"]), k) for k, t in enumerate(truth)
                      if taken[k] == "fn" and t.get("label") == found.get("label")]
        best = max(candidates, default=(0.0, -1))
        if best[0] >= iou:
            kinds[p], taken[best[1]] = "tp", "tp"
            continue
        covered = [_covered(found["box"], t["box"]) for t in truth
                   if t.get("crowd") and t.get("label") == found.get("label")]
        if max(covered, default=0.0) >= iou:
            kinds[p] = "crowd"
    return kinds, taken


def _covered(box: Sequence[float], region: Sequence[float]) -> float:
    """The share of ``box`` inside ``region``."""
    width = min(box[2], region[2]) - max(box[0], region[0])
    height = min(box[3], region[3]) - max(box[1], region[1])
    area = _area(box)
    return max(width, 0.0) * max(height, 0.0) / area if area > 0 else 0.0


def _mistakes(row: dict) -> int:
    if isinstance(row.get("truth"), list):
        kinds, taken = match_boxes(_boxes(row.get("predicted")), _boxes(row.get("truth")))
        return kinds.count("fp") + taken.count("fn")
    return int(row.get("predicted") != row.get("truth"))


def _boxes(boxes) -> list[dict]:
    """The boxes of a row that have four numbers."""
    out = []
    for b in boxes if isinstance(boxes, list) else ():
        box = b.get("box") if isinstance(b, dict) else None
        if isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box):
            out.append({**b, "box": [float(v) for v in box]})
    return out


def tile_origin(index: int, columns: int = GALLERY_COLUMNS) -> tuple[int, int]:
    """Where the image area of the gallery's ``index``-th tile starts in the PNG (its caption is above)."""
    row, column = divmod(index, columns)
    return column * (TILE + GAP), HEADER + row * (CAPTION + TILE + GAP) + CAPTION


def gallery(rows: Sequence[dict], root: str | Path, path: str | Path, limit: int = GALLERY_TILES,
            columns: int = GALLERY_COLUMNS, title: str = "") -> Path:
    """A grid of up to ``limit`` images of an ``eval`` record's gallery rows (``gallery_rows``), the images
    with mistakes first (in the rows' order otherwise), each read from ``root / image`` and fitted into a
    ``TILE`` square. Detection: the true boxes and the predicted ones drawn as ``match_boxes`` calls them (TP
    green, FP red, FN orange and dashed, crowd grey; an object a prediction took thin green), the caption the
    image's name and its counts. Classification: the caption "predicted / true" green when right, red when
    wrong, and a frame of that colour. An image that can't be read is a blank tile with its name. Drawn with
    Pillow at the PNG's own pixels (a box lands where it is drawn; matplotlib would resample the tiles)."""
    from PIL import Image, ImageDraw

    chosen = sorted(gallery_rows(rows), key=lambda row: _mistakes(row) == 0)[:limit]
    columns = max(1, min(columns, len(chosen) or 1))
    lines = -(-max(len(chosen), 1) // columns)
    width = max(columns * TILE + (columns - 1) * GAP, MIN_WIDTH)  # room for the title and the legend
    canvas = Image.new("RGB", (width, HEADER + lines * (CAPTION + TILE + GAP) - GAP), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font()
    _header(draw, font, title or f"{len(chosen)} images, mistakes first", canvas.width,
            boxes=any(isinstance(row.get("truth"), list) for row in chosen))
    for i, row in enumerate(chosen):
        x, y = tile_origin(i, columns)
        _tile(canvas, draw, font, row, Path(root), x, y)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=12)
    except TypeError:  # Pillow before 10.1: its bitmap font
        return ImageFont.load_default()


def _header(draw, font, title: str, width: int, boxes: bool) -> None:
    legend = (("TP", "tp"), ("FP", "fp"), ("FN", "fn"), ("crowd", "crowd")) if boxes else (("right", "right"),
                                                                                            ("wrong", "wrong"))
    x = width - 4 - 60 * len(legend)
    draw.text((4, 5), _fitted(draw, font, title, x - 12), fill="black", font=font)
    for name, kind in legend:
        draw.rectangle([x, 6, x + 14, 18], outline=COLOURS[kind], width=LINE)
        draw.text((x + 18, 5), name, fill="black", font=font)
        x += 60


def _tile(canvas, draw, font, row: dict, root: Path, x: int, y: int) -> None:
    name = str(row.get("image", ""))
    image, size = _read(root / name)
    draw.rectangle([x, y, x + TILE - 1, y + TILE - 1], fill=BLANK)
    place = None  # where the image's pixel (0, 0) lies and its scale: none without an image
    if image is None:
        draw.text((x + 6, y + TILE // 2 - 14), "cannot read", fill="black", font=font)
        draw.text((x + 6, y + TILE // 2 + 2), _fitted(draw, font, name, TILE - 12), fill="black", font=font)
    else:
        scale, dx, dy = _fit(*size)
        canvas.paste(image.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))), (x + dx, y + dy))
        place = (scale, x + dx, y + dy)
    draw.text((x + 2, y - CAPTION + 1), _fitted(draw, font, name, TILE - 4), fill=(60, 60, 60), font=font)
    if isinstance(row.get("truth"), list):
        caption, colour = _detection_boxes(draw, font, row, place), "black"
    else:
        colour = COLOURS["right" if row.get("predicted") == row.get("truth") else "wrong"]
        score = row.get("score")
        caption = f"{row.get('predicted') or '-'} / {row.get('truth')}" + (
            f" ({float(score):.2f})" if isinstance(score, (int, float)) else "")
        draw.rectangle([x, y, x + TILE - 1, y + TILE - 1], outline=colour, width=LINE)
    draw.text((x + 2, y - CAPTION + 15), _fitted(draw, font, caption, TILE - 4), fill=colour, font=font)


def _detection_boxes(draw, font, row: dict, place: tuple[float, int, int] | None) -> str:
    """Draw a detection row's boxes (``place``: none without an image); its caption."""
    predicted, truth = _boxes(row.get("predicted")), _boxes(row.get("truth"))
    kinds, taken = match_boxes(predicted, truth)
    if place is not None:
        for box, kind in zip(truth, taken):
            _box(draw, box["box"], place, COLOURS[kind], dashed=kind == "fn", width=1 if kind == "tp" else LINE)
        for p in sorted(range(len(predicted)), key=lambda p: float(predicted[p].get("score") or 0.0)):
            _box(draw, predicted[p]["box"], place, COLOURS[kinds[p]], width=LINE,
                 text=f"{predicted[p].get('label', '')} {float(predicted[p].get('score') or 0.0):.2f}", font=font)
    return f"TP {kinds.count('tp')}  FP {kinds.count('fp')}  FN {taken.count('fn')}"


def _read(path: Path):
    """The image at ``path`` as RGB, reduced for a tile, and its size in its own pixels; (None, None) when it
    can't be read (missing, not an image, too large for Pillow)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            size = image.size
            image.draft("RGB", (TILE, TILE))  # JPEG: decode at a fraction of its size
            reduced = image.convert("RGB")
            reduced.thumbnail((TILE * 2, TILE * 2))
            return reduced, size
    except Exception:  # noqa: BLE001 (any file: a gallery draws a blank tile rather than fail)
        return None, None


def _fit(width: int, height: int) -> tuple[float, int, int]:
    """The scale of an image of ``width`` x ``height`` into a tile, and its offset there (centred)."""
    scale = min(TILE / max(width, 1), TILE / max(height, 1))
    return scale, (TILE - round(width * scale)) // 2, (TILE - round(height * scale)) // 2


def _box(draw, box: Sequence[float], place: tuple[float, int, int], colour, width: int, dashed: bool = False,
         text: str = "", font=None) -> None:
    scale, x0, y0 = place
    x1, y1, x2, y2 = (x0 + box[0] * scale, y0 + box[1] * scale, x0 + box[2] * scale, y0 + box[3] * scale)
    if not dashed:
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
    else:
        for start, end in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
            _dashed(draw, start, end, colour, width)
    if text:  # white on the box's colour, inside its top left corner
        left, top, right, bottom = draw.textbbox((x1 + width, y1 + width), text, font=font)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=colour)
        draw.text((x1 + width, y1 + width), text, fill="white", font=font)


def _dashed(draw, start: tuple[float, float], end: tuple[float, float], colour, width: int, dash: float = 8,
            gap: float = 5) -> None:
    length = math.hypot(end[0] - start[0], end[1] - start[1])
    if length == 0:
        return
    ux, uy = (end[0] - start[0]) / length, (end[1] - start[1]) / length
    at = 0.0
    while at < length:
        stop = min(at + dash, length)
        draw.line([(start[0] + ux * at, start[1] + uy * at), (start[0] + ux * stop, start[1] + uy * stop)],
                  fill=colour, width=width)
        at = stop + gap


def _fitted(draw, font, text: str, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
