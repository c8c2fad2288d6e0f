"""`visionyard predict JOB` over many images (files, folders, globs) and videos: streamed through the
job's warm worker, answers taken as they come, one at a time (a folder or a video of any size never
holds its results in memory).

Without `--out`: one line per image (`--json`: one JSON object per line). With `--out DIR`:
`DIR/predictions.jsonl` (one object per image, the `predict --json` shape plus `file` and `index`,
a video's frames also `frame` and `time_s`; or `file`, `index` and `error`), the annotated images
(`DIR/<name>.png`; a video's as `DIR/<name>.annotated.mp4`), with `--format coco` also
`DIR/results.coco.json` (COCO's results format), and a progress bar with images/s on a terminal. The exit code is 0 when every image was predicted, 1 when some were not (each named with
its reason).

A job whose model predicts from videos (video classification) gets each video file whole instead of
its frames (one answer per video: its top-k classes), and its folders give only their videos.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from pathlib import Path

from runner.cli.output import Output
from runner.cli.predict import describe, prediction_json
from runner.cli.video import VIDEO_SUFFIXES, AnnotatedVideo, Video, frame_of, is_video
from runner.client import ClientError
from runner.settings import MAX_IMAGE_BYTES

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"})
PREDICTIONS_FILE = "predictions.jsonl"
COCO_FILE = "results.coco.json"


def expand(sources: list[str], skipped: list[str], suffixes: frozenset[str] = IMAGE_SUFFIXES | VIDEO_SUFFIXES
           ) -> list[str]:
    """The images and videos `sources` name, in order: a file as given (whatever it holds: the
    daemon says if it is no image), a folder's files of `suffixes` (image and video files by
    default; recursively, sorted), a glob's matches; a folder that can't be read is added to
    `skipped`, named with its reason."""
    images: list[str] = []
    for source in sources:
        if Path(source).is_dir():
            images += _folder(source, skipped, suffixes)
        elif not Path(source).exists() and glob.has_magic(source):
            for match in sorted(glob.glob(source, recursive=True)):
                images += _folder(match, skipped, suffixes) if Path(match).is_dir() else [match]
        else:
            images.append(source)
    return images


def _folder(folder: str, skipped: list[str], suffixes: frozenset[str]) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder, onerror=lambda exc: skipped.append(f"{exc.filename}: {exc.strerror}")):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if Path(f).suffix.lower() in suffixes]
    return found


def predict_many(client, args, out: Output) -> int:
    skipped: list[str] = []
    whole = takes_whole_videos(client, args)
    if whole and getattr(args, "stride", 1) != 1:
        raise ClientError(None, f"--stride {args.stride} picks frames of a video to predict one by one; a video "
                                "classification model predicts from the whole video (it samples its own frames): "
                                "predict without --stride")
    suffixes = VIDEO_SUFFIXES if whole else IMAGE_SUFFIXES | VIDEO_SUFFIXES
    sources = expand(args.images, skipped, suffixes)
    videos: dict[str, Video] = {}
    if whole:  # each video sent as its file, whole: refused here when the daemon would refuse its size
        problems = {s: why for s in sources if (why := whole_video_problem(s))}
        skipped += problems.values()
        sources = [s for s in sources if s not in problems]
    else:
        for source in [s for s in sources if is_video(s)]:
            try:
                videos[source] = Video(source, args.stride)
            except ClientError as exc:
                skipped.append(str(exc))
        sources = [s for s in sources if not is_video(s) or s in videos]
    for reason in skipped:
        out.error(f"skipped {reason}")
    if not sources:
        raise ClientError(None, f"no {'videos' if whole else 'images'} in {', '.join(args.images)} (looked for "
                                f"{', '.join(sorted(suffixes))})")
    if whole and len(args.images) == 1 and len(sources) == 1 and not args.out and is_video(args.images[0]):
        return _predict_one_video(client, args, sources[0], out)
    target = Path(args.out) if args.out else None
    if args.format == "coco" and target is None:
        raise ClientError(None, "--format coco writes DIR/results.coco.json: give --out DIR")
    if target is not None:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ClientError(None, f"cannot create --out {target}: {exc.strerror}") from None
    total = sum(videos[s].expected if s in videos else 1 for s in sources)
    answers = client.predict_many(args.job, _items(sources, videos), top_k=args.top_k, checkpoint=args.checkpoint,
                                  annotate=target is not None, runtime=getattr(args, "runtime", "pytorch"),
                                  device=getattr(args, "device", ""), labels=getattr(args, "labels", None),
                                  question=getattr(args, "question", ""), boxes=getattr(args, "boxes", None))
    failed, started, count = [], time.monotonic(), 0
    writers: dict[str, AnnotatedVideo] = {}
    coco = _CocoResults(target / COCO_FILE) if target is not None and args.format == "coco" else _NoFile()
    with _Progress(total, enabled=target is not None and not args.json) as progress, coco, \
            (open(target / PREDICTIONS_FILE, "w") if target is not None else _NoFile()) as jsonl:
        names: set[str] = set()
        for answer in answers:
            count += 1
            record = {"file": answer.name, "index": answer.index}
            frame = frame_of(answer.name)
            if frame is not None and frame[0] in videos:
                record.update(file=frame[0], frame=frame[1], time_s=round(videos[frame[0]].time_of(frame[1]), 3))
            if answer.error:
                record["error"] = answer.error
                failed.append(f"{answer.name}: {answer.error}")
            else:
                record.update(prediction_json(answer.result))
                coco.add(answer.index, answer.result)
                if target is not None and answer.result.image_png:
                    if frame is not None and frame[0] in videos:
                        record["annotated"] = _frame_into_video(target, videos[frame[0]], answer.result.image_png,
                                                                writers)
                    else:
                        record["annotated"] = _write_annotated(target, answer.name, answer.result.image_png, names)
            line = json.dumps(record)
            jsonl.write(line + "\n")
            if args.json:
                print(line, flush=True)
            elif target is None:
                out.line(_summary_line(answer))
            progress.advance()
    for writer in writers.values():
        writer.close()
    done = count - len(failed)
    failed += [video.problem for video in videos.values() if video.problem]
    seconds = time.monotonic() - started
    if not args.json:
        noun = "video" if whole else "image"
        out.line(f"{done} of {count} {noun}(s) predicted in {seconds:.1f} s ({done / max(seconds, 1e-9):.1f} "
                 f"{noun}s/s)" + (f"; {target / PREDICTIONS_FILE}" if target is not None else ""))
    for reason in failed:
        out.error(f"not predicted: {reason}")
    return 1 if failed or skipped else 0


def takes_whole_videos(client, args) -> bool:
    """Whether the job (or the model without a job) predicts from whole video files (a video
    classification model), asked of the daemon only when a source may hold videos (a video file, a
    folder, a glob): its videos are then sent whole, not split into frames, and its folders give
    only their videos."""
    if not any(is_video(s) or Path(s).is_dir() or (not Path(s).exists() and glob.has_magic(s)) for s in args.images):
        return False
    from adapters.datasets.video_folder import VIDEO_TASKS

    task = args.job.get("task", "") if isinstance(args.job, dict) else client.get(args.job).spec.task
    return task in VIDEO_TASKS


def whole_video_problem(path: str) -> str | None:
    """Why a video can't be sent whole (it can't be read, or is over the daemon's message limit), or None."""
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        return f"cannot read video '{path}': {exc.strerror}"
    if size > MAX_IMAGE_BYTES:
        return (f"video '{path}' is {size / 2**20:.1f} MiB; the daemon takes files of up to "
                f"{MAX_IMAGE_BYTES / 2**20:.1f} MiB (its message limit): trim or re-encode it first")
    return None


def _predict_one_video(client, args, video: str, out: Output) -> int:
    """One video of a video job, shown as one image's prediction is."""
    from runner.cli.predict import boxes_of, show_prediction

    response = client.predict(args.job, video, top_k=args.top_k, checkpoint=args.checkpoint,
                              runtime=getattr(args, "runtime", "pytorch"), device=getattr(args, "device", ""),
                              labels=getattr(args, "labels", None), question=getattr(args, "question", ""),
                              boxes=boxes_of(getattr(args, "boxes", None), video))
    show_prediction(response, {}, out, as_json=args.json, what="video")
    return 0


def _items(sources: list[str], videos: dict[str, Video]):
    """What is sent, in order: an image's path (read by the client as it goes), a video's frames."""
    for source in sources:
        if source in videos:
            yield from videos[source].frames()
        else:
            yield source


def _frame_into_video(target: Path, video: Video, png: bytes, writers: dict[str, AnnotatedVideo]) -> str:
    if video.path not in writers:
        writers[video.path] = AnnotatedVideo(target / f"{Path(video.path).stem}.annotated.mp4",
                                             video.fps / video.stride)
    writers[video.path].add(png)
    return writers[video.path].path.name


def _summary_line(answer) -> str:
    if answer.error:
        return f"{answer.name}: error: {answer.error}"
    best = answer.result.predictions[0] if answer.result.predictions else None
    found = f"{len(answer.result.predictions)} prediction(s); best {describe(best).strip()}" if best else "nothing found"
    text = f"; text: {answer.result.text}" if answer.result.text else ""
    return f"{answer.name}: {found}{text}"


def _write_annotated(target: Path, name: str, png: bytes, names: set[str]) -> str:
    stem = Path(name).stem or "image"
    file = f"{stem}.png"
    n = 1
    while file in names:
        n += 1
        file = f"{stem}-{n}.png"
    names.add(file)
    (target / file).write_bytes(png)
    return file


class _NoFile:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def write(self, text: str) -> None:
        pass

    def add(self, image_id: int, result) -> None:
        pass


class _CocoResults:
    """COCO's results format (what pycocotools' `loadRes` reads), written as answers come: one
    object per box, `image_id` the image's index (its `index` in predictions.jsonl), `category_id`
    the class index, `bbox` [x, y, w, h] in pixels, and the polygon (`segmentation`) and
    `keypoints` [x, y, v, ...] where the task has them."""

    def __init__(self, path: Path):
        self.path, self.count = path, 0

    def __enter__(self):
        self.file = open(self.path, "w")
        self.file.write("[")
        return self

    def add(self, image_id: int, result) -> None:
        for p in result.predictions:
            if not p.HasField("box"):
                continue
            entry = {"image_id": image_id, "category_id": p.index, "score": round(p.score, 5),
                     "bbox": [round(v, 2) for v in (p.box.x1, p.box.y1, p.box.x2 - p.box.x1, p.box.y2 - p.box.y1)]}
            if p.polygon:
                entry["segmentation"] = [[round(v, 2) for q in p.polygon for v in (q.x, q.y)]]
            if p.keypoints:
                entry["keypoints"] = [round(v, 2) for k in p.keypoints for v in (k.x, k.y, k.visibility)]
            self.file.write(("," if self.count else "") + "\n" + json.dumps(entry))
            self.count += 1

    def __exit__(self, *exc) -> None:
        self.file.write("\n]\n")
        self.file.close()


class _Progress:
    """A rich progress bar with images/s on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.bar, self.task = total, None, None
        if enabled and sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("predict"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=True)
        self.started = time.monotonic()
        self.done = 0

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
            self.task = self.bar.add_task("predict", total=self.total, rate="")
        return self

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            rate = self.done / max(time.monotonic() - self.started, 1e-9)
            self.bar.update(self.task, advance=1, rate=f"{rate:.1f} images/s")

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

