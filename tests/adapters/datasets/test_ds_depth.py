"""The ``depth`` reader on tiny image/depth-map folders written here: records, units, the val split, and each
problem a check names (missing depth map, another size, unreadable, no valid pixel, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.datasets import ImageRecord, inspect_dataset, read_dataset
from adapters.datasets.depth import read_depth
from tests.dataset_fixtures import make_depth_dataset

SIZE = (6, 4)  # width, height


def image(path: Path, size=SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(path)
    return path


def png_depth(path: Path, millimetres, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(millimetres)
    Image.fromarray(array.astype(np.uint16) if mode is None else array.astype(np.uint8), mode).save(path)
    return path


def npy_depth(path: Path, metres) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(metres))
    return path


def make(root: Path, train=("a", "b"), val=("c",)) -> Path:
    """Images of SIZE with 16-bit depth maps of 1.5 m everywhere but a 0 (invalid) corner."""
    depth = np.full(SIZE[::-1], 1500)
    depth[0, 0] = 0
    for split, stems in (("train", train), ("val", val)):
        for stem in stems:
            image(root / split / "images" / f"{stem}.png")
            png_depth(root / split / "depth" / f"{stem}.png", depth)
    return root


def problems_of(root: Path, decode: str = "all") -> list[tuple[str, str, str]]:
    """(severity, kind, file name) of each problem."""
    _, problems = inspect_dataset(root, "depth", "depth_estimation", decode=decode)
    return [(p.severity, p.kind, Path(p.file).name) for p in problems.items]


def test_reads_pairs_and_keeps_the_val_split_on_disk(tmp_path):
    make(tmp_path)
    dataset, problems = inspect_dataset(tmp_path, "depth", "depth_estimation", decode="all")
    assert problems.items == []
    assert (dataset.class_names, dataset.val_source, dataset.format) == ((), "disk", "depth")
    train = tmp_path / "train"
    assert dataset.train == [ImageRecord(str(train / "images" / f"{s}.png"), 6, 4, depth=str(train / "depth" / f"{s}.png"),
                                         label_file=str(train / "depth" / f"{s}.png")) for s in ("a", "b")]
    assert [Path(r.depth).name for r in dataset.val] == ["c.png"]


def test_makes_a_val_split_when_there_is_none(tmp_path):
    make(tmp_path, train=("a", "b", "c", "d", "e"), val=())
    dataset = read_dataset(tmp_path, "depth", "depth_estimation", decode="all")
    assert dataset.val_source == "random"  # the shared split strategy (split.py), seeded
    assert len(dataset.train) == 4 and len(dataset.val) == 1
    again = read_dataset(tmp_path, "depth", "depth_estimation")
    assert [r.path for r in again.val] == [r.path for r in dataset.val]


def test_png_depth_is_millimetres_and_npy_metres_with_invalid_pixels_zero(tmp_path):
    png = png_depth(tmp_path / "d.png", [[0, 1000, 2500], [65535, 1, 10]])
    assert read_depth(png).ravel().tolist() == pytest.approx([0.0, 1.0, 2.5, 65.535, 0.001, 0.01])
    npy = npy_depth(tmp_path / "d.npy", np.array([[0.0, 1.25, np.nan], [np.inf, -2.0, 3.0]]))
    depth = read_depth(npy)
    assert depth.dtype == np.float32 and depth.tolist() == [[0.0, 1.25, 0.0], [0.0, 0.0, 3.0]]
    assert read_depth(npy_depth(tmp_path / "e.npy", np.ones((1, 2, 3), np.float16))).shape == (2, 3)  # 1 x H x W


def test_npy_and_png_maps_mix_and_a_fixture_dataset_checks_clean(tmp_path):
    root = make_depth_dataset(tmp_path / "fixture", train=3, val=2)
    dataset, problems = inspect_dataset(root, "depth", "depth_estimation", decode="all")
    assert problems.items == []
    assert [Path(r.depth).suffix for r in dataset.train + dataset.val] == [".png"] * 3 + [".npy"] * 2
    assert (dataset.train[0].width, dataset.train[0].height) == (40, 32)


def test_a_missing_depth_map_is_an_error_naming_the_image(tmp_path):
    make(tmp_path)
    (tmp_path / "train" / "depth" / "b.png").unlink()
    assert problems_of(tmp_path) == [("error", "missing-depth", "b.png")]
    _, problems = inspect_dataset(tmp_path, "depth", "depth_estimation")
    assert "b.npy" in problems.items[0].message and problems.items[0].file.endswith("images/b.png")


def test_a_depth_map_of_another_size_is_an_error(tmp_path):
    make(tmp_path)
    png_depth(tmp_path / "train" / "depth" / "a.png", np.full((5, 6), 1000))
    npy_depth(tmp_path / "val" / "depth" / "c.npy", np.ones((4, 7)))
    (tmp_path / "val" / "depth" / "c.png").unlink()
    _, problems = inspect_dataset(tmp_path, "depth", "depth_estimation", decode="none")
    assert [(p.kind, Path(p.file).name) for p in problems.items] == [("depth-size", "a.png"), ("depth-size", "c.npy")]
    assert "is 6x5 px but its image" in problems.items[0].message and "is 6x4 px" in problems.items[0].message
    assert "is 7x4 px" in problems.items[1].message


def test_unreadable_and_wrong_kinds_of_depth_maps_are_errors(tmp_path):
    make(tmp_path, train=("a", "b", "c", "d", "e"))
    depth = tmp_path / "train" / "depth"
    (depth / "a.png").write_bytes(b"not a png")
    png_depth(depth / "b.png", np.full(SIZE[::-1], 100), mode="L")  # 8-bit: no millimetres
    (depth / "c.png").unlink()
    npy_depth(depth / "c.npy", np.ones((4, 6, 3)))  # colour, not a depth map
    (depth / "d.png").unlink()
    (depth / "d.npy").write_bytes(b"\x93NUMPY broken")
    _, problems = inspect_dataset(tmp_path, "depth", "depth_estimation")
    found = {Path(p.file).name: (p.kind, p.message) for p in problems.items}
    assert set(found) == {"a.png", "b.png", "c.npy", "d.npy"}
    assert found["a.png"][0] == found["d.npy"][0] == "unreadable-depth"
    assert found["b.png"] == ("depth-format", found["b.png"][1]) and "an 8-bit PNG (mode L)" in found["b.png"][1]
    assert found["c.npy"][0] == "depth-format" and "shape (4, 6, 3)" in found["c.npy"][1]
    assert all(p.severity == "error" for p in problems.items)


def test_a_depth_map_without_a_valid_pixel_or_with_negative_depths_is_an_error(tmp_path):
    make(tmp_path, train=("a", "b", "c"))
    png_depth(tmp_path / "train" / "depth" / "a.png", np.zeros(SIZE[::-1]))
    (tmp_path / "train" / "depth" / "b.png").unlink()
    npy_depth(tmp_path / "train" / "depth" / "b.npy", np.full(SIZE[::-1], np.nan))
    (tmp_path / "val" / "depth" / "c.png").unlink()
    npy_depth(tmp_path / "val" / "depth" / "c.npy", -np.ones(SIZE[::-1]))
    assert problems_of(tmp_path) == [("error", "no-valid-depth", "a.png"), ("error", "no-valid-depth", "b.npy"),
                                     ("error", "negative-depth", "c.npy")]
    assert problems_of(tmp_path, decode="none") == []  # values need pixels: the submit's "none" reads headers only


def test_two_maps_for_one_image_shared_stems_and_orphans(tmp_path):
    make(tmp_path)
    npy_depth(tmp_path / "train" / "depth" / "a.npy", np.ones(SIZE[::-1]))
    image(tmp_path / "train" / "images" / "b.jpg")  # b.png and b.jpg would share depth/b.png
    png_depth(tmp_path / "train" / "depth" / "z.png", np.ones(SIZE[::-1]))
    assert problems_of(tmp_path) == [("error", "two-depth-maps", "a.png"), ("error", "shared-depth", "b.png"),
                                     ("warning", "orphan-depth", "z.png")]


def test_the_layout_is_checked_and_the_format_serves_depth_only(tmp_path):
    image(tmp_path / "train" / "images" / "a.png")
    assert problems_of(tmp_path) == [("error", "no-depth-folder", "depth")]
    _, problems = inspect_dataset(tmp_path / "nothing", "depth", "depth_estimation")
    assert problems.has_errors
    make(tmp_path / "ok")
    _, problems = inspect_dataset(tmp_path / "ok", "depth", "semantic_segmentation")
    assert [p.kind for p in problems.items] == ["format-task"]
    _, problems = inspect_dataset(tmp_path / "ok", "masks", "depth_estimation")
    assert "for depth_estimation use: depth" in problems.items[0].message


def test_png_sizes_come_from_the_header_and_a_damaged_header_is_still_an_error(tmp_path):
    from adapters.datasets.images import file_image_size, png_header

    png_depth(tmp_path / "d.png", np.full((5, 7), 1000))
    Image.new("RGB", (9, 4)).save(tmp_path / "rgb.png")
    Image.new("RGB", (9, 4)).save(tmp_path / "photo.jpg")
    assert png_header(tmp_path / "d.png") == (7, 5, 16, 0)
    assert png_header(tmp_path / "rgb.png") == (9, 4, 8, 2)
    assert png_header(tmp_path / "photo.jpg") is None and file_image_size(tmp_path / "photo.jpg") == (9, 4)
    damaged = bytearray((tmp_path / "rgb.png").read_bytes())
    damaged[17] ^= 0xFF  # the width, so the IHDR CRC no longer matches: Pillow reads it and refuses it
    (tmp_path / "damaged.png").write_bytes(bytes(damaged))
    assert png_header(tmp_path / "damaged.png") is None
    with pytest.raises(Exception, match="cannot identify image file"):  # Pillow's word for a broken header
        file_image_size(tmp_path / "damaged.png")

    make(tmp_path / "data")
    (tmp_path / "data" / "train" / "images" / "a.png").write_bytes(bytes(damaged))
    _, problems = inspect_dataset(tmp_path / "data", "depth", "depth_estimation", decode="none")
    assert [(p.kind, Path(p.file).name) for p in problems.errors] == [("unreadable-image", "a.png")]
