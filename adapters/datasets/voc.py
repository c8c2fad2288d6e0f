"""``voc``: Pascal VOC. ``Annotations/<id>.xml`` + ``JPEGImages/<image>``, optionally
``ImageSets/Main/{train,val}.txt`` (one id, the XML file's stem, per line) naming the splits.

- Boxes: ``bndbox`` ``xmin ymin xmax ymax`` in pixels (``normalized=False``), kept exactly as
  written. VOC's own files count from 1 and its devkit subtracts 1; we do not: a one-pixel shift
  is below labelling noise, and a file written from these records reads back unchanged.
- ``difficult`` 1 → ``Annotation.ignore``; the image size comes from ``<size>``, not the image.
- Class names: ``classes.txt`` or ``labels.txt`` in the root (line order = class ids), else the
  sorted set of object names.
- The image: ``JPEGImages/<filename>``, else ``JPEGImages/<xml stem>.<any image extension>``.
- Splits: ``val.txt`` lists val; ``train.txt`` lists train (without it, every other XML is
  train). Only ``train.txt``: val is made by the split strategy. Neither: all images are train.
  XML files that the lists leave out, and images without an XML file, are warned about and unused.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.images import is_image
from adapters.datasets.problems import Problems
from adapters.datasets.records import SPLITS, Annotation, ImageRecord

LAYOUT = "Annotations/*.xml + JPEGImages/ (+ ImageSets/Main/{train,val}.txt)"
NAME_FILES = ("classes.txt", "labels.txt")
BOX_KEYS = ("xmin", "ymin", "xmax", "ymax")


@dataclass
class VocFile:
    """What one annotation file says; objects are (name, box, difficult, where)."""

    path: Path
    filename: str
    width: int | None
    height: int | None
    objects: list[tuple[str, tuple[float, float, float, float], bool, str]] = field(default_factory=list)


@register_format("voc", tasks=("object_detection",), layout=LAYOUT)
def read_voc(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    ann_dir, images_dir = root / "Annotations", root / "JPEGImages"
    for folder in (ann_dir, images_dir):
        if not folder.is_dir():
            problems.error(root, f"has no {folder.name}/ folder (expected {LAYOUT})", kind="layout")
            return None
    xml_files = sorted(ann_dir / n for n in os.listdir(ann_dir) if n.lower().endswith(".xml") and n[0] != ".")
    if not xml_files:
        problems.error(ann_dir, "has no .xml annotation files", kind="layout")
        return None
    names_file, names = _given_names(root, problems)
    if names_file is not None and names is None:
        return None
    docs = [doc for path in xml_files if (doc := _parse(path, problems)) is not None]
    if names is None:
        names = sorted({name for doc in docs for name, _, _, _ in doc.objects})
    raw = RawDataset(tuple(names))
    records = _records(images_dir, docs, names_file, names, problems)
    lists = {s: root / "ImageSets" / "Main" / f"{s}.txt" for s in SPLITS}
    lists = {s: path for s, path in lists.items() if path.is_file()}
    if not lists:
        raw.splits["train"] = [records[stem] for stem in sorted(records)]
        return raw
    for split, stems in _image_sets(lists, xml_files, problems).items():
        raw.splits[split] = [records[stem] for stem in stems if stem in records]
    return raw


def _records(images_dir: Path, docs: list[VocFile], names_file: Path | None, names: list[str],
             problems: Problems) -> dict[str, ImageRecord]:
    """The record of each annotation file whose image is found, by the file's stem."""
    images = sorted(n for n in os.listdir(images_dir) if is_image(n) and n[0] != ".")
    by_stem: dict[str, str] = {}
    for name in images:
        by_stem.setdefault(os.path.splitext(name)[0], name)
    index = {name: i for i, name in enumerate(names)}
    records: dict[str, ImageRecord] = {}
    used: set[str] = set()
    for doc in docs:
        image = _find_image(images_dir, doc, by_stem)
        if image is None:
            problems.error(doc.path, f"image not found: no JPEGImages/{doc.filename or doc.path.stem} and no "
                           f"JPEGImages/{doc.path.stem}.<image extension>; add the image or remove the annotation "
                           "file", kind="missing-image")
            continue
        used.add(os.path.relpath(image, images_dir))
        if doc.width is None or doc.height is None:
            problems.error(doc.path, "has no <size> with positive <width> and <height>; add them"
                           f"{_actual_size(image)}", kind="missing-size")
            continue
        record = ImageRecord(str(image), doc.width, doc.height, label_file=str(doc.path))
        for name, box, difficult, where in doc.objects:
            if name not in index:
                source = names_file.name if names_file else "the class names"
                problems.error(doc.path, f"object name '{name}' is not in {source} ({len(names)} classes); fix the "
                               f"name or add it to {source}", where=where, kind="unknown-class")
                continue
            record.annotations.append(Annotation(index[name], box, ignore=difficult, where=where))
        records[doc.path.stem] = record
    for name in images:
        if name not in used:
            problems.warning(images_dir / name, f"has no annotation file Annotations/{Path(name).stem}.xml; it is "
                             "not used (add one, even without objects, to train on it)", kind="unannotated-image")
    return records


def _image_sets(lists: dict[str, Path], xml_files: list[Path], problems: Problems) -> dict[str, list[str]]:
    """The ids of each split from ImageSets/Main/{train,val}.txt (train: every other id when only val.txt)."""
    known = {p.stem for p in xml_files}
    ids = {split: _read_ids(path, known, problems) for split, path in lists.items()}
    if "val" in ids:
        in_train = dict(ids.get("train", []))
        for stem, line in ids["val"]:
            if stem in in_train:
                problems.error(lists["val"], f"id '{stem}' is also in train.txt (line {in_train[stem]}); an image "
                               "belongs to one split", where=f"line {line}", kind="id-in-both-splits")
        if "train" not in ids:
            in_val = {stem for stem, _ in ids["val"]}
            ids["train"] = [(p.stem, 0) for p in xml_files if p.stem not in in_val]
    listed = {stem for pairs in ids.values() for stem, _ in pairs}
    for path in xml_files:
        if path.stem not in listed:
            problems.warning(path, f"is not listed in {' or '.join(p.name for p in lists.values())} under "
                             "ImageSets/Main; it is not used", kind="unlisted-annotation")
    return {split: [stem for stem, _ in pairs] for split, pairs in ids.items()}


def _given_names(root: Path, problems: Problems) -> tuple[Path | None, list[str] | None]:
    """(file, class names) from classes.txt/labels.txt; (None, None) without one, (file, None) after an error."""
    for filename in NAME_FILES:
        path = root / filename
        if not path.is_file():
            continue
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            problems.error(path, f"cannot read it ({exc})", kind="class-names")
            return path, None
        if not names:
            problems.error(path, "is empty; write one class name per line (or remove it to use the object names)",
                           kind="class-names")
            return path, None
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            problems.error(path, f"lists {', '.join(repeated)} more than once; each class once", kind="class-names")
            return path, None
        return path, names
    return None, None


def _parse(path: Path, problems: Problems) -> VocFile | None:
    try:
        top = ET.parse(path).getroot()
    except ET.ParseError as exc:
        problems.error(path, f"not valid XML ({exc}); fix or remove the file", where=f"line {exc.position[0]}",
                       kind="bad-xml")
        return None
    except OSError as exc:
        problems.error(path, f"cannot read it ({exc})", kind="bad-xml")
        return None
    if top.tag != "annotation":
        problems.error(path, f"not a VOC annotation: the root element is <{top.tag}>, expected <annotation>",
                       kind="bad-xml")
        return None
    doc = VocFile(path, (top.findtext("filename") or "").strip(), _size(top.findtext("size/width")),
                  _size(top.findtext("size/height")))
    for i, obj in enumerate(top.findall("object")):
        where = f"object {i}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            problems.error(path, "object without a <name>; name its class or remove it", where=where, kind="bad-object")
            continue
        texts = [obj.findtext(f"bndbox/{key}") for key in BOX_KEYS]
        try:
            box = tuple(float(text) for text in texts)
        except (TypeError, ValueError):
            shown = ", ".join(f"{k}={t.strip() if t is not None else 'missing'}" for k, t in zip(BOX_KEYS, texts))
            problems.error(path, f"object '{name}': <bndbox> needs numbers in pixels for xmin, ymin, xmax, ymax "
                           f"(found {shown})", where=where, kind="bad-box")
            continue
        difficult = (obj.findtext("difficult") or "0").strip().lower() in ("1", "true")
        doc.objects.append((name, box, difficult, where))
    return doc


def _size(text: str | None) -> int | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value > 0 and value == int(value) else None


def _find_image(images_dir: Path, doc: VocFile, by_stem: dict[str, str]) -> Path | None:
    """JPEGImages/<filename> (a Windows or absolute path in <filename> by its base name), else by the XML's stem."""
    filename = doc.filename.replace("\\", "/")
    for name in (filename, os.path.basename(filename)):
        if name and not os.path.isabs(name) and (images_dir / name).is_file():
            return images_dir / name
    found = by_stem.get(doc.path.stem)
    return images_dir / found if found else None


def _actual_size(image: Path) -> str:
    """" (the image is W x H px)" from the image header, or "" when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(image) as opened:
            width, height = opened.size
    except Exception:  # the decode check reports unreadable images
        return ""
    return f" (the image is {width}x{height} px)"


def _read_ids(path: Path, stems: set[str], problems: Problems) -> list[tuple[str, int]]:
    """(id, line number) of each id in an ImageSets list that has an annotation file."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.error(path, f"cannot read it ({exc})", kind="bad-image-set")
        return []
    found: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        stem = line.strip()
        if not stem or stem in found:
            continue
        if stem not in stems:
            problems.error(path, f"id '{stem}' has no Annotations/{stem}.xml; add the file or remove the line",
                           where=f"line {number}", kind="unknown-id")
            continue
        found[stem] = number
    return list(found.items())
