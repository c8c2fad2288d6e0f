"""``video_folder``: video classification. ``train/<class>/<video>`` and optionally ``val/<class>/<video>``
(mp4, mov, avi, webm, mkv), class ids the sorted names of train/'s class folders (``imagefolder``'s order).

The host needs no decoder. What a read checks depends on how much it may decode (``ReadOptions.decode``)
and on whether PyAV (``av``) is importable, which it is in the Transformers env and not in the host's:

- always: a file of another extension in a class folder (a warning: not used), a class folder without
  videos, an empty file, and a file whose first bytes are no video container's (MP4/QuickTime, AVI,
  Matroska/WebM): all errors, on the host too;
- ``sample`` (a submit), with PyAV: the container headers of a few videos per split (a video stream, its
  size, its frame count);
- ``all`` (``visionyard datasets check``), with PyAV: every video decoded to its last frame.

``video_problem`` is what a predict worker checks before a video reaches the model: its container, the frames'
size, and how many packets its video stream holds, counted without decoding and only up to
``MAX_PREDICT_FRAMES`` (a file within the size limit can hold millions of tiny frames, which a clip's sampling
would decode to its end). ``read_clip`` decodes
what training and predict take: ``num_frames`` frames sampled uniformly over the
clip (the middle of each of ``num_frames`` equal segments; a random point of each for training). PyAV is
imported when it is called, in the child.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from adapters.datasets.formats import RawDataset, ReadOptions, register_format
from adapters.datasets.imagefolder import class_folders, read_val
from adapters.datasets.images import SUBMIT_SAMPLE
from adapters.datasets.problems import Problems
from adapters.datasets.records import ImageRecord
from adapters.datasets.walk import check_cancelled, walk_files

LAYOUT = "train/<class>/<video> and optionally val/<class>/<video> (mp4, mov, avi, webm, mkv)"
VIDEO_EXTENSIONS = frozenset((".mp4", ".m4v", ".mov", ".avi", ".webm", ".mkv"))
#: Tasks whose inputs are videos: predict opens them as videos, not images (``adapters.serve``).
VIDEO_TASKS = ("video_classification",)
#: The most frames (packets of its video stream) a video to predict from may have: 10 minutes at 30 fps.
MAX_PREDICT_FRAMES = 18_000


def is_video(name: str) -> bool:
    return os.path.splitext(str(name))[1].lower() in VIDEO_EXTENSIONS


def sniff_container(head: bytes) -> str | None:
    """The container family that ``head`` (a file's first 12 bytes or more) starts: "mp4" (MP4, QuickTime),
    "avi" or "matroska" (MKV, WebM); None when it is none of them."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    return None


def has_pyav() -> bool:
    """PyAV is importable here (the child env), without importing it."""
    import importlib.util

    return importlib.util.find_spec("av") is not None


@register_format("video_folder", tasks=("video_classification",), layout=LAYOUT)
def read_video_folder(root: Path, options: ReadOptions, problems: Problems) -> RawDataset | None:
    train_dir = root / "train"
    if not train_dir.is_dir():
        problems.error(root, f"has no train/ folder (expected {LAYOUT})", kind="layout")
        return None
    class_names = class_folders(train_dir)
    if len(class_names) < 2:
        problems.error(train_dir, f"video classification needs at least 2 class folders, found {len(class_names)} "
                       f"({', '.join(class_names) or 'none'}): train/<class>/<video>", kind="too-few-classes")
        if not class_names:
            return None
    index = {name: i for i, name in enumerate(class_names)}
    raw = RawDataset(class_names, {"train": _videos(train_dir, class_names, index, problems, required=True)})
    val_dir = root / "val"
    val = read_val(val_dir, class_names, index, _videos, problems)
    if val is not None:
        raw.splits["val"] = val
        missing = [name for name in class_names if not any(r.label == index[name] for r in raw.splits["val"])]
        if missing and raw.splits["val"]:
            problems.warning(val_dir, f"class(es) with no validation videos: {', '.join(missing[:10])}; their "
                             "validation metrics will be missing", kind="class-without-val")
    if options.decode != "none" and has_pyav():
        for records in raw.splits.values():
            chosen = records
            if options.decode == "sample" and len(records) > SUBMIT_SAMPLE:
                chosen = random.Random(0).sample(records, SUBMIT_SAMPLE)
            for record in chosen:
                check_cancelled()
                _check_decodes(record, problems, full=options.decode == "all")
    return raw


def _videos(split_dir: Path, classes, index, problems: Problems, required: bool) -> list[ImageRecord]:
    records = []
    for name in classes:
        files = walk_files(split_dir / name, lambda _: True)
        videos = []
        for path in files:
            if not is_video(path.name):
                problems.warning(path, f"is not a video ({', '.join(sorted(e[1:] for e in VIDEO_EXTENSIONS))}); not "
                                 "used (convert it or remove it)", kind="unknown-extension")
            elif _sniffed(path, problems):
                videos.append(path)
        if not videos and (required or files):
            problems.error(split_dir / name, "class folder has no videos (mp4, mov, avi, webm, mkv); add videos or "
                           "remove the folder", kind="empty-class")
        records.extend(ImageRecord(str(p), label=index[name]) for p in videos)
    return records


def _sniffed(path: Path, problems: Problems) -> bool:
    """The file is not empty and starts like a video container; else an error says which."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        problems.error(path, f"cannot read the file ({exc})", kind="unreadable-video")
        return False
    if not head:
        problems.error(path, "is empty (0 bytes); replace or remove it", kind="unreadable-video")
        return False
    if sniff_container(head) is None:
        problems.error(path, "is not a video file (its first bytes are no MP4/QuickTime, AVI or Matroska/WebM "
                       "header); replace or remove it", kind="unreadable-video")
        return False
    return True


def _check_decodes(record: ImageRecord, problems: Problems, full: bool) -> None:
    """Open the container (its video stream's header); ``full``: decode every frame too. An error names what
    failed; the record gets the stream's size."""
    try:
        width, height, frames = video_info(record.path, decode_all=full)
    except Exception as exc:  # noqa: BLE001 (any decoder error is the file's problem)
        problems.error(record.path, f"cannot decode the video ({type(exc).__name__}: {exc}); replace or remove it",
                       kind="unreadable-video")
        return
    if full and frames == 0:
        problems.error(record.path, "has no video frames; replace or remove it", kind="unreadable-video")
        return
    record.width, record.height = width, height


def video_info(path, decode_all: bool = False) -> tuple[int, int, int]:
    """(width, height, frames) of the first video stream (PyAV); ``decode_all``: the frames counted by
    decoding them all (a broken stream raises), else the container's count (0 when it does not say)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("the file has no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if not decode_all:
            return width, height, int(stream.frames or 0)
        count = sum(1 for _ in container.decode(stream))
    return width, height, count


def video_problem(path, max_pixels: int = 0, max_frames: int | None = None) -> str | None:
    """Why the file at ``path`` is no video to predict from (a phrase to follow its name), or None: no video
    container's first bytes (an image says so), a header PyAV can't read, frames over ``max_pixels``, or more
    than ``max_frames`` frames (default ``MAX_PREDICT_FRAMES``; the container's count, and the stream's packets
    counted up to one past the limit, nothing decoded)."""
    from adapters.image_limits import header_size

    with open(path, "rb") as f:
        head = f.read(16)
    if sniff_container(head) is None:
        if header_size(str(path)) is not None:
            return ("is an image; a video classification model predicts from a video file (MP4/QuickTime, AVI, "
                    "Matroska/WebM): send the whole video")
        return "is not a video file (its first bytes are no MP4/QuickTime, AVI or Matroska/WebM header)"
    try:
        width, height, _ = video_info(path)
    except Exception as exc:  # noqa: BLE001 (any decoder error is the file's problem)
        why = str(exc).replace(f": {str(path)!r}", "")  # the file is named by whoever reads this
        return f"cannot be read as a video ({type(exc).__name__}: {why})"
    if max_pixels and width * height > max_pixels:
        return (f"has frames of {width}×{height} ({width * height / 1e6:.1f} megapixels); predict takes at most "
                f"{max_pixels / 1e6:.1f} megapixels ({max_pixels} pixels: `visionyard serve --predict-max-pixels`). "
                "Scale the video down first")
    limit = MAX_PREDICT_FRAMES if max_frames is None else max_frames
    try:
        frames = count_frames(path, limit)
    except Exception as exc:  # noqa: BLE001
        return f"cannot be read as a video ({type(exc).__name__}: {exc})"
    if frames > limit:
        return (f"has more than {limit:,} frames; predict reads videos of up to {limit:,} frames "
                f"(video_folder.MAX_PREDICT_FRAMES, 10 minutes at 30 fps): trim it or lower its frame rate first")
    return None


def count_frames(path, most: int) -> int:
    """The first video stream's frames as far as ``most + 1``: the container's count when it says more, else its
    packets with data counted (demuxed, not decoded), stopping one past ``most``."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if int(stream.frames or 0) > most:
            return int(stream.frames)
        count = 0
        for packet in container.demux(stream):
            if packet.size:
                count += 1
                if count > most:
                    break
    return count


def frame_indices(total: int, num_frames: int, rng: random.Random | None = None) -> list[int]:
    """``num_frames`` frame numbers of a clip of ``total`` frames: one per equal segment, its middle (or, with
    ``rng``, a random frame of it). A clip shorter than ``num_frames`` repeats frames."""
    total = max(1, int(total))
    out = []
    for i in range(num_frames):
        start, end = i * total / num_frames, (i + 1) * total / num_frames
        point = rng.uniform(start, end) if rng is not None else (start + end) / 2
        out.append(min(total - 1, int(point)))
    return out


def read_clip(path, num_frames: int, rng: random.Random | None = None) -> list:
    """``num_frames`` RGB frames (``uint8`` arrays, height x width x 3) sampled uniformly over the video at
    ``path`` (``frame_indices``), decoded with PyAV. A stream that decodes fewer frames than its container
    says repeats its last one."""
    import av

    total = _frame_count(path)
    wanted = frame_indices(total, num_frames, rng)
    picked: dict[int, object] = {}
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: the file has no video stream")
        for number, frame in enumerate(container.decode(container.streams.video[0])):
            if number in wanted:
                picked[number] = frame.to_ndarray(format="rgb24")
            if number >= wanted[-1]:
                break
    if not picked:
        raise ValueError(f"{path}: no video frame could be decoded")
    frames, previous = [], picked[min(picked)]
    for number in wanted:
        previous = picked.get(number, previous)
        frames.append(previous)
    return frames


def _frame_count(path) -> int:
    """The first video stream's frame count: the container's, else its packets counted (no decoding)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: the file has no video stream")
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)
