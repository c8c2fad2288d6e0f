"""Coordinates at the image's edge: rounding is clipped, anything further is an error.

Annotation tools and exporters round. A YOLO line written to 5 decimals puts the corner of a box
that touches the edge at -5e-06; a COCO box's ``x + w`` lands half a pixel past the width; a
polygon vertex or a keypoint sits a rounding step outside. The frameworks train on such labels
(Ultralytics clips box corners and takes coordinates up to 1% past [0, 1]; the Transformers
detection processors clip boxes to the image), so a coordinate that overshoots the image by at
most the **tolerance** is clipped to the image when the dataset is read:

    tolerance = max(2 px, 1% of the side)    (the width for x, the height for y)

2 px covers pixel conventions on small images (a box edge on the far side of the last pixel,
VOC's 1-based coordinates, a vertex dropped a pixel past the canvas); 1% covers normalized values
written to 2 decimals and is Ultralytics' own allowance. Normalized coordinates (YOLO) are held
to 1% without opening the image; only an overshoot beyond that reads the image's size from its
header to measure 2 px. An overshoot beyond the tolerance is an error naming the file and line.

Strict (``datasets check --strict``) keeps exactness: 1 px for pixel coordinates, 1e-6 for
normalized ones. Either way an overshoot of float noise (``NOISE`` of the side: ``x + w``
computed in floating point) is clipped without a word; anything more is counted in one warning
(``Clipped.message``): "23 boxes clipped to the image by ≤ 0.4 px".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from adapters.datasets.records import Annotation, ImageRecord

TOLERANCE_PX = 2.0
TOLERANCE_FRACTION = 0.01
STRICT_PX = 1.0
STRICT_NORMALIZED = 1e-6
#: Overshoots up to this fraction of the side are float arithmetic, not labelling: clipped silently.
NOISE = 1e-9
TOLERANCE_TEXT = "max(2 px, 1% of the side)"


def inside(ann: Annotation, w: float, h: float) -> bool:
    """Whether every coordinate of ``ann`` lies in [0, w] x [0, h]: the check nearly every
    annotation passes, so it is kept to plain comparisons (it runs once per annotation at submit)."""
    box = ann.box
    if box is not None and (box[0] < 0 or box[1] < 0 or box[2] > w or box[3] > h):
        return False
    polygons = ann.polygons
    if polygons:  # one polygon (nearly every object) is checked in place, parts as one flat list
        points = polygons[0] if len(polygons) == 1 else [v for p in polygons for v in p]
        if points and _outside(points[0::2], points[1::2], w, h):
            return False
    if ann.rbox and _outside(ann.rbox[0::2], ann.rbox[1::2], w, h):
        return False
    if ann.keypoints:
        xs, ys = _labelled(ann.keypoints)
        if _outside(xs, ys, w, h):
            return False
    return True


@dataclass
class Clipped:
    """What clipping changed in a dataset: counts per geometry, the largest overshoot, the first place."""

    counts: Counter = field(default_factory=Counter)
    #: The largest overshoot in pixels (pixel records, and normalized ones whose size was read).
    max_px: float = 0.0
    #: The largest overshoot as a fraction of the side (normalized records whose size was not read).
    max_fraction: float = 0.0
    first: str = ""
    #: What each clipped annotation added to ``counts`` (by ``id``), taken back when it is dropped.
    added: dict = field(default_factory=dict)

    def forget(self, ann: Annotation) -> None:
        """``ann`` was dropped after clipping (zero area, a duplicate): it is not counted as clipped."""
        added = self.added.pop(id(ann), None)
        if added:
            self.counts.subtract(added)
            self.counts = +self.counts  # no zero counts left behind

    def message(self) -> str | None:
        """"23 boxes and 2 keypoints clipped to the image by ≤ 0.4 px (...)", or None when nothing was."""
        if not self.counts:
            return None
        parts = [_count(n, name) for name, n in self.counts.items()]
        what = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        amounts = []
        if self.max_px:
            amounts.append(f"{_num(self.max_px)} px")
        if self.max_fraction:
            amounts.append(f"{_num(100 * self.max_fraction)}% of the image side")
        return (f"{what} clipped to the image by ≤ {' / '.join(amounts)} (an overshoot up to {TOLERANCE_TEXT} is "
                f"rounding; first at {self.first})")


class EdgeFit:
    """Clips the annotations of one image to it, within the tolerance (see the module's docstring)."""

    def __init__(self, record: ImageRecord, strict: bool, clipped: Clipped):
        self.record, self.strict, self.clipped = record, strict, clipped
        self.normalized = record.normalized
        self.w = 1.0 if record.normalized else float(record.width)
        self.h = 1.0 if record.normalized else float(record.height)
        #: The image's size in pixels: known for pixel records, read for normalized ones only when needed.
        self.size: tuple[int, int] | None = None if record.normalized else (record.width, record.height)
        self._size_read = not record.normalized

    def fit(self, ann: Annotation, where: str) -> str | None:
        """Clip ``ann`` in place when it overshoots by at most the tolerance; else what is wrong (unchanged)."""
        shapes = self._shapes(ann)
        over = [(name, *self._overshoot(xs, ys)) for name, xs, ys in shapes]
        for name, ox, oy in over:
            tol_x, tol_y = self._tolerance(ox, oy)
            if ox > tol_x or oy > tol_y:
                return self._too_far(ann, name, ox, oy, tol_x if ox > tol_x else tol_y)
        noise_x, noise_y = NOISE * self.w, NOISE * self.h
        counted = {name for name, ox, oy in over if ox > noise_x or oy > noise_y}
        if counted:
            self._count(ann, counted, over, where)
        self._clip(ann)
        return None

    # ------------------------------------------------------------------ measuring

    def _shapes(self, ann: Annotation) -> list[tuple[str, list, list]]:
        """(name, xs, ys) of each geometry, the polygon or rotated box before the box that may be made from it."""
        shapes = []
        if ann.polygons:
            points = [v for p in ann.polygons for v in p]
            shapes.append(("polygon", points[0::2], points[1::2]))
        if ann.rbox:
            shapes.append(("rotated box", ann.rbox[0::2], ann.rbox[1::2]))
        if ann.box is not None:
            x1, y1, x2, y2 = ann.box
            shapes.append(("box", [x1, x2], [y1, y2]))
        if ann.keypoints:
            xs, ys = _labelled(ann.keypoints)
            if xs:
                shapes.append(("keypoint", xs, ys))
        return shapes

    def _overshoot(self, xs: list, ys: list) -> tuple[float, float]:
        return max(0.0, -min(xs), max(xs) - self.w), max(0.0, -min(ys), max(ys) - self.h)

    def _tolerance(self, ox: float, oy: float) -> tuple[float, float]:
        """(x, y) tolerance in the record's unit; reads a normalized record's size only for an overshoot past 1%."""
        if self.strict:
            tol = STRICT_NORMALIZED if self.normalized else STRICT_PX
            return tol, tol
        if self.normalized:
            if max(ox, oy) > TOLERANCE_FRACTION and not self._size_read:
                self._read_size()
            if self.size is None:
                return TOLERANCE_FRACTION, TOLERANCE_FRACTION
            width, height = self.size
            return max(TOLERANCE_FRACTION, TOLERANCE_PX / width), max(TOLERANCE_FRACTION, TOLERANCE_PX / height)
        return max(TOLERANCE_PX, TOLERANCE_FRACTION * self.w), max(TOLERANCE_PX, TOLERANCE_FRACTION * self.h)

    def _read_size(self) -> None:
        from adapters.datasets.images import image_size
        from adapters.datasets.problems import DatasetError

        self._size_read = True
        try:
            self.size = image_size(self.record)
        except DatasetError:  # the decode check reports an unreadable image
            self.size = None

    # ------------------------------------------------------------------ results

    def _too_far(self, ann: Annotation, name: str, ox: float, oy: float, tol: float) -> str:
        amount, limit = self._amount(max(ox, oy)), self._amount(tol)
        if name == "box":
            x1, y1, x2, y2 = ann.box
            if x1 >= self.w or y1 >= self.h or x2 <= 0 or y2 <= 0:
                return f"box {fmt(ann.box)} lies entirely outside the image ({self.unit()})"
            return (f"box {fmt(ann.box)} lies outside the image ({self.unit()}): {amount} past its edge, more "
                    f"than the {limit} clipped as rounding")
        return (f"{name} point outside the image ({self.unit()}): {amount} past its edge, more than the {limit} "
                "clipped as rounding")

    def unit(self) -> str:
        if self.normalized:
            return "normalized coordinates must lie in [0, 1]"
        return f"the image is {self.record.width}x{self.record.height} px"

    def _amount(self, value: float) -> str:
        return _num(value) if self.normalized else f"{_num(value)} px"

    def _count(self, ann: Annotation, counted: set[str], over: list, where: str) -> None:
        clipped = self.clipped
        if not clipped.counts:
            clipped.first = f"{self.record.label_file or self.record.path}:{where}" if where else \
                (self.record.label_file or self.record.path)
        if "box" in counted and ({"polygon", "rotated box"} & counted):
            counted = counted - {"box"}  # the box around a polygon follows it: one object, counted once
        added = Counter()
        for name in counted:
            if name == "keypoint":
                added[name] += sum(1 for x, y in zip(*_labelled(ann.keypoints))
                                   if x < 0 or y < 0 or x > self.w or y > self.h)
            else:
                added[name] += 1
        clipped.counts.update(added)
        clipped.added[id(ann)] = added
        worst_x = max(ox for _, ox, _ in over)
        worst_y = max(oy for _, _, oy in over)
        if not self.normalized:
            clipped.max_px = max(clipped.max_px, worst_x, worst_y)
        elif self.size is not None:
            clipped.max_px = max(clipped.max_px, worst_x * self.size[0], worst_y * self.size[1])
        else:
            clipped.max_fraction = max(clipped.max_fraction, worst_x, worst_y)

    def _clip(self, ann: Annotation) -> None:
        w, h = self.w, self.h
        if ann.box is not None:
            x1, y1, x2, y2 = ann.box
            ann.box = (min(w, max(0, x1)), min(h, max(0, y1)), min(w, max(0, x2)), min(h, max(0, y2)))
        if ann.polygons:
            ann.polygons = [_clip_flat(p, w, h) for p in ann.polygons]
        if ann.rbox:
            ann.rbox = _clip_flat(ann.rbox, w, h)
        if ann.keypoints:
            points = list(ann.keypoints)
            for i in range(0, len(points) - 2, 3):
                if points[i + 2] > 0:
                    points[i] = min(w, max(0, points[i]))
                    points[i + 1] = min(h, max(0, points[i + 1]))
            ann.keypoints = points


def same_object(a: Annotation, b: Annotation) -> bool:
    """Whether two annotations are exact duplicates: class, geometry and ignore flag."""
    return (a.class_id == b.class_id and a.box == b.box and a.polygons == b.polygons and a.rle == b.rle
            and a.keypoints == b.keypoints and a.rbox == b.rbox and a.ignore == b.ignore)


def fmt(box) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def _labelled(keypoints: list) -> tuple[list, list]:
    """x and y of the labelled keypoints (v > 0): an unlabelled one may hold any placeholder."""
    xs, ys = [], []
    for i in range(0, len(keypoints) - 2, 3):
        if keypoints[i + 2] > 0:
            xs.append(keypoints[i])
            ys.append(keypoints[i + 1])
    return xs, ys


def _outside(xs, ys, w: float, h: float) -> bool:
    """Whether a point (xs[i], ys[i]) lies outside [0, w] x [0, h]; False when there are none."""
    return bool(xs) and (min(xs) < 0 or min(ys) < 0 or max(xs) > w or max(ys) > h)


def _clip_flat(values: list, w: float, h: float) -> list:
    return [min(w if i % 2 == 0 else h, max(0, v)) for i, v in enumerate(values)]


def _count(n: int, name: str) -> str:
    plural = {"box": "boxes", "polygon": "polygons", "rotated box": "rotated boxes", "keypoint": "keypoints"}
    return f"{n} {name if n == 1 else plural[name]}"


def _num(value: float) -> str:
    return f"{value:.2g}" if value < 0.01 else f"{value:.3g}"
