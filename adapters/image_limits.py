"""The largest image a predict decodes, judged from the image's header before any pixel is.

Used twice: by the daemon on the bytes a client sent (before any child starts), and by the predict
child on the file it is about to decode (``adapters.entrypoint --max-pixels``), which also makes
Pillow itself refuse to decode more than that. A 13000×13000 PNG is 164 KB on the wire and 1.6 GB
decoded: the limit is on pixels, not bytes. Pillow's own limit (~89 megapixels warned, twice that
refused) is a guard against bombs, not a budget; ours is well under it.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: e.g. 7700×5200; a decoded RGB copy is 120 MB


class ImageTooLarge(ValueError):
    """The image has more pixels than a predict takes."""


def header_size(image: bytes | str | Path) -> tuple[int, int] | None:
    """(width, height) from the image's header, nothing decoded; None when Pillow knows no format
    that reads it. Unlike ``Image.open``, no size is refused here: the caller judges it."""
    from PIL import Image

    data = image if isinstance(image, bytes) else None
    with (io.BytesIO(data) if data is not None else open(image, "rb")) as fp:
        prefix = fp.read(16)
        Image.init()
        for name in list(Image.ID):
            factory, accept = Image.OPEN[name]
            try:
                accepted = accept(prefix) if accept else True
                if not accepted or isinstance(accepted, str):  # a str: "looks like it, but can't be read"
                    continue
                fp.seek(0)
                opened = factory(fp, "")
            except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError, EOFError):
                continue
            size = opened.size
            opened.close()
            return size
    return None


def too_large(size: tuple[int, int], max_pixels: int) -> str | None:
    """Why an image of `size` is refused, or None when it is within `max_pixels`."""
    width, height = size
    if width * height <= max_pixels:
        return None
    return (f"the image is {width}×{height} ({width * height / 1e6:.1f} megapixels); predict takes at most "
            f"{max_pixels / 1e6:.1f} megapixels ({max_pixels} pixels: `visionyard serve --predict-max-pixels`). "
            "Scale the image down first")


def check_image(image: bytes | str | Path, max_pixels: int) -> tuple[int, int] | None:
    """Raise :class:`ImageTooLarge` when the image's header says it is over `max_pixels`; return
    its size (None when no format reads its header: the decoder will say what is wrong)."""
    size = header_size(image)
    if size is not None and (problem := too_large(size, max_pixels)):
        raise ImageTooLarge(problem)
    return size


def limit_decoding(max_pixels: int) -> None:
    """Make every Pillow decode in this process refuse an image over `max_pixels` (Pillow warns over
    its limit and refuses over twice that: its warning becomes the refusal)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
