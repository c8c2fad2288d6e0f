"""``Scorer``: what every task's scorer of ``eval`` is (``adapters.evaluation.scoring`` has them and their table,
``SCORERS``; ``scoring_text`` those of captioning and visual QA), and what they share.

A scorer is made from the dataset's folder, its class names and the model's (what its predictions' ``index``
means), and the model's upscaling factor (super-resolution). ``eval`` (``adapters.evaluate``) then, batch by
batch, asks it for the file to predict of each record (``inputs``) and for what predict takes besides the
file: per image, in one call for the batch, where the adapter's predict takes it (``per_image_options``: visual
QA's ``questions``), else per group of records predicted alike (``options``: one ``question``); it hands it the records and what the adapter's ``predict_batch``
returned for them (``update``), and at the end takes the ``Evaluation`` (``evaluation``). A model that predicts
inside boxes it is given (top-down pose: its ``prepare_evaluation`` says ``boxes: "truth"``) is given each record's
own boxes (``truth_boxes``), COCO's keypoint protocol with ground-truth boxes, as training's validation crops them.

Host-importable: numpy at import (the validation record).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.evaluation.record import Evaluation


def image_name(path: str, root: str) -> str:
    """``path`` relative to ``root`` when it lies inside it, else its file name."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    return os.path.relpath(path, root) if path.startswith(root + os.sep) else os.path.basename(path)


class Scorer:
    """Turns predict results into one task's evaluation; ``update`` per batch, ``evaluation`` at the end."""

    #: The ``top_k`` to ask the predict path for.
    top_k = 1

    def __init__(self, root: str, dataset_classes: Sequence[str], model_classes: Sequence[str],
                 scale: int | None = None) -> None:
        self.root = str(root)
        self.classes = list(model_classes)
        self.scale = scale

    def inputs(self, records: list, folder: Path) -> list[str]:
        """The image file to predict for each record; ``folder`` takes files made for it (an image embedded in
        its label file, written out)."""
        return [image_file(record, folder, i) for i, record in enumerate(records)]

    def options(self, record) -> dict[str, Any]:
        """What predict takes for ``record`` besides its file (visual QA: the question); records with the same
        options are predicted together."""
        return {}

    def update(self, records: list, results: list) -> None:
        raise NotImplementedError

    def evaluation(self) -> Evaluation:
        raise NotImplementedError

    def name(self, record) -> str:
        return image_name(record.path, self.root)


def truth_boxes(record) -> list[tuple[list[float], int]]:
    """(box x1 y1 x2 y2 in pixels, class id) of each of the record's objects with a box, crowd regions (``ignore``)
    excepted: what a top-down model is given in ``eval``, in the record's order."""
    from adapters.datasets import to_pixels

    return [([float(v) for v in a.box], int(a.class_id)) for a in to_pixels(record).annotations
            if a.box is not None and not a.ignore]


def image_file(record, folder: Path, i: int) -> str:
    """The file of ``record``'s image: its own, or (an image embedded in its label file) written to ``folder``."""
    if not record.embedded:
        return record.path
    from adapters.datasets import open_image

    path = folder / f"embedded-{i}-{Path(record.path).stem}.png"
    open_image(record).save(path)
    return str(path)
