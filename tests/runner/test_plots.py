"""`runner.plots`' precision–recall curves and gallery, drawn into PNGs that Pillow opens, with the gallery's
colours read back from the pixels of boxes drawn on a synthetic image; and the figures a run's MLflow gets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from runner import plots

BACKGROUND = (20, 40, 80)  # the synthetic image: no drawn colour is near it


def colours(path) -> int:
    with Image.open(path) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16))


def test_pr_curves_are_a_png_with_the_mean_and_up_to_ten_classes(tmp_path):
    recall = np.linspace(0, 1, 101).tolist()
    per_class = {f"class {i}": [1.0 - r * i / 20 for r in recall] for i in range(20)}
    per_class["class 3"][100] = None  # undefined: a gap
    path = plots.pr_curves(recall, [0.6] * 101, per_class, tmp_path / "pr" / "pr_curves.png",
                           ap={"class 0": 1.0}, mean_ap=0.6, title="job j, epoch 3")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (700, 600)
    assert colours(path) > 20


def test_boxes_are_matched_greedily_by_score_within_their_class():
    truth = [{"label": "cat", "box": [0, 0, 10, 10]}, {"label": "dog", "box": [20, 0, 30, 10]},
             {"label": "cat", "box": [40, 0, 60, 20], "crowd": True}]
    predicted = [{"label": "cat", "score": 0.6, "box": [0, 0, 10, 10]},    # second on the cat: a false positive
                 {"label": "cat", "score": 0.9, "box": [1, 0, 10, 10]},    # IoU 0.9, the first to take the cat
                 {"label": "cat", "score": 0.8, "box": [20, 0, 30, 10]},   # on the dog: another class
                 {"label": "cat", "score": 0.7, "box": [42, 2, 50, 10]}]   # inside the crowd region: neither
    kinds, taken = plots.match_boxes(predicted, truth)
    assert kinds == ["fp", "tp", "fp", "crowd"] and taken == ["tp", "fn", "crowd"]
    assert plots.match_boxes([{"label": "a", "score": 1, "box": [0, 0, 10, 10]}],
                             [{"label": "a", "box": [0, 0, 10, 20]}]) == (["tp"], ["tp"])  # IoU 0.5: a hit
    assert plots.match_boxes([{"label": "a", "score": 1, "box": [0, 0, 10, 10]}],
                             [{"label": "a", "box": [0, 0, 10, 21]}]) == (["fp"], ["fn"])


def detection_row(image="street.png"):
    return {"image": image,
            "predicted": [{"label": "cat", "score": 0.9, "box": [22, 22, 100, 100]},     # on the cat: TP
                          {"label": "cat", "score": 0.8, "box": [150, 20, 230, 100]}],   # on nothing: FP
            "truth": [{"label": "cat", "box": [20, 20, 100, 100]},
                      {"label": "dog", "box": [20, 150, 100, 230]},                      # missed: FN
                      {"label": "cat", "box": [150, 150, 230, 230], "crowd": True}]}


def test_a_detection_gallery_colours_tp_fp_fn_and_crowd_boxes(tmp_path):
    Image.new("RGB", (256, 256), BACKGROUND).save(tmp_path / "street.png")
    path = plots.gallery([detection_row()], tmp_path, tmp_path / "out" / "gallery.png")
    x, y = plots.tile_origin(0, columns=1)  # a 256 px image fills its tile at scale 1
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (plots.MIN_WIDTH, plots.HEADER + plots.CAPTION + plots.TILE)
        pixels = image.convert("RGB")
        assert pixels.getpixel((x + 23, y + 60)) == plots.COLOURS["tp"]        # the TP box's left edge
        assert pixels.getpixel((x + 151, y + 60)) == plots.COLOURS["fp"]       # the FP box's
        assert pixels.getpixel((x + 22, y + 150)) == plots.COLOURS["fn"]       # the FN box's top edge, a dash
        assert pixels.getpixel((x + 20 + 8 + 2, y + 150)) == BACKGROUND        # and the gap after it
        assert pixels.getpixel((x + 151, y + 190)) == plots.COLOURS["crowd"]   # the crowd region's
        assert pixels.getpixel((x + 60, y + 125)) == BACKGROUND                # between the boxes: the image


def test_a_classification_gallery_puts_mistakes_first_in_red_frames(tmp_path):
    for name in ("a.png", "b.png"):
        Image.new("RGB", (512, 256), BACKGROUND).save(tmp_path / name)  # wider: fitted at scale 0.5, centred
    rows = [{"image": "a.png", "predicted": "cat", "truth": "cat", "score": 0.9},
            {"image": "b.png", "predicted": "dog", "truth": "cat", "score": 0.7},
            {"image": "c.png", "pixel_accuracy": 0.5}]  # not a gallery row (segmentation)
    assert plots.gallery_rows(rows) == rows[:2]
    path = plots.gallery(rows, tmp_path, tmp_path / "gallery.png")
    with Image.open(path) as image:
        pixels = image.convert("RGB")
        assert image.width == 2 * plots.TILE + plots.GAP
        (x0, y0), (x1, y1) = plots.tile_origin(0, 2), plots.tile_origin(1, 2)
        assert pixels.getpixel((x0 + 1, y0 + 128)) == plots.COLOURS["wrong"]   # b.png, the mistake, first
        assert pixels.getpixel((x1 + 1, y1 + 128)) == plots.COLOURS["right"]
        assert pixels.getpixel((x0 + 128, y0 + 128)) == BACKGROUND             # the image, centred
        assert pixels.getpixel((x0 + 128, y0 + 20)) == plots.BLANK             # above it: the tile


def test_an_image_that_cannot_be_read_is_a_blank_tile_with_its_name(tmp_path):
    (tmp_path / "broken.jpg").write_text("not an image")
    rows = [detection_row("broken.jpg"), detection_row("missing/none.png"),
            {"image": "../../etc/nothing.png", "predicted": None, "truth": "cat"}]
    path = plots.gallery(rows, tmp_path, tmp_path / "gallery.png")
    with Image.open(path) as image:
        pixels = image.convert("RGB")
        x, y = plots.tile_origin(2, 3)
        assert pixels.getpixel((x + 200, y + 200)) == plots.BLANK
        assert image.width == 3 * plots.TILE + 2 * plots.GAP and colours(path) > 5  # names and boxes drawn


def test_the_mlflow_figures_include_the_pr_curves_of_the_best_epoch(tmp_path):
    from adapters.evaluation.detection import detection_results
    from adapters.evaluation.record import ResultsWriter, ValidationRecord
    from runner.core.result_files import log_results

    evaluation = detection_results([{"boxes": [[10, 10, 50, 50]], "labels": [0]}],
                                   [{"boxes": [[10, 10, 50, 50]], "labels": [0], "scores": [0.9]}], ["cat"])
    ResultsWriter(tmp_path, "object_detection").write(ValidationRecord.of(
        evaluation, task="object_detection", epoch=1, step=1, source="training", job="j"))

    class Client:  # what log_results asks of MLflow's client
        def __init__(self):
            self.logged = []

        def log_artifact(self, run_id, path, folder):
            assert Image.open(path).format == "PNG" if path.endswith(".png") else True
            self.logged.append(f"{folder}/{path.rsplit('/', 1)[1]}")

        def log_table(self, run_id, data, name):
            self.logged.append(name)

    client = Client()
    log_results(client, "run", tmp_path, "object_detection")
    assert "results/pr_curves.png" in client.logged and "results/confusion_matrix.png" in client.logged


@pytest.mark.parametrize("size", [(40, 10), (10, 40)])
def test_an_image_is_fitted_into_its_tile_keeping_its_shape(size):
    scale, dx, dy = plots._fit(*size)
    assert scale == plots.TILE / 40 and (dx == 0 or dy == 0) and max(dx, dy) == (plots.TILE - 64) // 2
