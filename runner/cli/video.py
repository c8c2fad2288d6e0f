"""Videos for `visionyard predict`: frames read here (OpenCV's FFmpeg decoder, already a dependency
of the dataset layer), every `stride`-th sent as a PNG, and the annotated frames written back as a
video. Frames are read as the daemon takes them: a long video is never held in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from runner.client import ClientError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
FRAME_MARK = "#frame="


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


class Video:
    """One video's frames, every `stride`-th: `frames()` yields (name, PNG bytes); after it,
    `problem` says if the video ended before its header's frame count (truncated, or damaged)."""

    def __init__(self, path: str, stride: int = 1):
        import cv2

        self.path, self.stride = path, max(1, stride)
        self._capture = cv2.VideoCapture(path)
        if not self._capture.isOpened():
            raise ClientError(None, f"cannot read video '{path}': no decoder opens it (a truncated file, or not a "
                                    "video)")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 else None
        self.read = 0
        self.problem = ""

    @property
    def expected(self) -> int:
        """How many frames will be sent, as far as the header tells (0 when it doesn't)."""
        return -(-self.frame_count // self.stride) if self.frame_count else 0

    def frames(self) -> Iterator[tuple[str, bytes]]:
        import cv2

        try:
            while True:
                ok, frame = self._capture.read()
                if not ok:
                    break
                if self.read % self.stride == 0:
                    encoded, png = cv2.imencode(".png", frame)
                    if encoded:
                        yield f"{self.path}{FRAME_MARK}{self.read}", png.tobytes()
                self.read += 1
        finally:
            self._capture.release()
        if self.frame_count and self.read < self.frame_count:
            self.problem = (f"video '{self.path}' ended at frame {self.read} of the {self.frame_count} its header "
                            "names (truncated or damaged): the frames before were predicted")

    def time_of(self, frame: int) -> float:
        return frame / self.fps


def frame_of(name: str) -> tuple[str, int] | None:
    """(video path, frame number) of a frame's name; None for an image."""
    path, mark, frame = name.rpartition(FRAME_MARK)
    return (path, int(frame)) if mark and frame.isdigit() else None


class AnnotatedVideo:
    """Annotated frames (PNG) written as an MP4 at the frames' rate (the video's fps / stride)."""

    def __init__(self, path: Path, fps: float):
        self.path, self.fps = path, fps
        self._writer = None
        self.frames = 0

    def add(self, png: bytes) -> None:
        import cv2
        import numpy as np

        frame = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            return
        if self._writer is None:
            height, width = frame.shape[:2]
            self._size = (width, height)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
