"""``ocr``: text recognition. ``{train,val}/images/<image>`` + ``{train,val}/labels.jsonl``, one
JSON object per line: ``{"file": "<path relative to images/>", "text": "<transcription>"}``.

Blank lines are skipped; every other line must name an existing image once, with a non-empty
text (whitespace alone counts as empty). Images under ``images/`` that no line lists are warned
about and not used. No image is opened (the record has no size).
"""

from __future__ import annotations

from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.jsonl import entries, image_key, missing_image, present_images, read_splits, warn_unlisted
from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord

LAYOUT = '{train,val}/images/<image> + {train,val}/labels.jsonl ({"file": ..., "text": ...} per line)'
LINE_SHAPE = '{"file": "<path relative to images/>", "text": "<transcription>"}'


@register_format("ocr", tasks=("ocr",), layout=LAYOUT)
def read_ocr(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    return read_splits(root, problems, listing="labels.jsonl", layout=LAYOUT, read_split=_read_split,
                       missing="list each image of {split}/images/ as a line " + LINE_SHAPE)


def _read_split(images_dir: Path, labels: Path, problems: Problems) -> list[ImageRecord]:
    present = present_images(images_dir)
    records = []
    first_line: dict[str, str] = {}  # image key -> the line that listed it
    for where, name, entry in entries(labels, problems, LINE_SHAPE):
        key = image_key(name)
        if key in first_line:
            problems.error(labels, f"lists {name} again (first on {first_line[key]}); keep one line per image",
                           where=where, kind="duplicate-file")
            continue
        first_line[key] = where
        text = entry.get("text")
        if not isinstance(text, str):
            problems.error(labels, f'needs "text": the transcription as a string ({LINE_SHAPE})', where=where,
                           kind="bad-text")
            continue
        if not text.strip():
            problems.error(labels, f'has an empty "text" for {name}; transcribe the image or remove the line',
                           where=where, kind="empty-text")
            continue
        image = present.get(key)
        if image is None:
            problems.error(labels, missing_image(images_dir, name, key, present), where=where, kind="missing-image")
            continue
        records.append(ImageRecord(str(image), text=text, label_file=str(labels)))
    warn_unlisted(present, set(first_line), labels, problems)
    return records
