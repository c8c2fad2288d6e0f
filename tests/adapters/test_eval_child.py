"""``eval``'s child side (``adapters.evaluate``) on the host, with known answers: a stand-in adapter whose
predictions are made from the dataset's own labels (so every metric is known) goes through the real dataset
reading, class mapping, batching, scoring, record and exit codes of each task. The frameworks' own runs (the
same evaluation of a trained timm and D-FINE checkpoint, equal to what training recorded) live in their test
files (``test_timm_child.py``, ``transformers/test_hf_detection.py``).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adapters.entrypoint
from adapters.datasets import read_dataset
from adapters.evaluate import dataset_hash, evaluate
from adapters.evaluation.restoration import PSNR_CAP_DB, psnr
from tests.dataset_fixtures import (CAPTION_VAL, ann, caption_references, make_captions_dataset, make_coco,
                                    make_depth_dataset, make_masks, make_ocr_dataset, make_sr_pairs,
                                    make_vqa_dataset, make_yolo_task)


class StandIn:
    """An adapter whose ``predict_batch`` answers each image with ``answer(path)``; it records its batches."""

    def __init__(self, answer, classes=(), scale=None) -> None:
        self.answer, self.info = answer, {"classes": list(classes), "scale": scale}
        self.batches: list[int] = []
        self.loaded = None

    def load_checkpoint(self, path):
        self.loaded = str(path)

    def prepare_evaluation(self):
        return dict(self.info)

    def predict_batch(self, images, top_k, annotate):
        assert self.loaded and not annotate
        self.batches.append(len(images))
        return [self.answer(str(path)) for path in images]


def run(tmp_path: Path, monkeypatch, task: str, dataset: Path, fmt: str, adapter: StandIn,
        **options) -> tuple[int, dict | None, list[dict]]:
    """``evaluate`` of a job on ``dataset`` with ``adapter`` standing in for the framework's: (exit code,
    eval.json or None, the progress lines)."""
    spec = {"framework": "timm", "task": task, "model": "m", "dataset": {"path": str(dataset), "format": fmt},
            "training": {"epochs": 1, "batch_size": 2, "learning_rate": 0.1}}
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"job_id": "job-7", "job_dir": str(tmp_path), "spec": spec}))
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"weights")
    monkeypatch.setattr(adapters.entrypoint, "build_adapter", lambda job, reporter: adapter)
    progress = io.StringIO()
    code = evaluate(str(job), options.pop("checkpoint", str(checkpoint)), str(tmp_path / "out"), progress=progress,
                    **options)
    written = tmp_path / "out" / "eval.json"
    return (code, json.loads(written.read_text()) if written.exists() else None,
            [json.loads(line) for line in progress.getvalue().splitlines()])


# ---------------------------------------------------------------- classification


def colour_folder(root: Path, per_class: dict[str, int], split: str = "val") -> Path:
    for name, count in per_class.items():
        (root / "train" / name).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(root / "train" / name / "t.png")
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(root / split / name / f"{name}{i}.png")
    return root


def by_folder(wrong: dict[str, str], classes: list[str]):
    """Top-5 answers: the image's folder name (``wrong`` maps some to another class) first."""
    def answer(path: str) -> dict:
        truth = Path(path).parent.name
        first = wrong.get(truth, truth)
        order = [first, *(c for c in classes if c != first)]
        return {"predictions": [{"label": c, "index": classes.index(c), "score": 0.9 - 0.1 * i}
                                for i, c in enumerate(order[:5])]}
    return answer


def test_classification_maps_classes_by_name_and_counts_every_image_once(tmp_path, monkeypatch):
    dataset = colour_folder(tmp_path / "data", {"blue": 3, "green": 3, "red": 3})  # ids 0, 1, 2 here
    classes = ["red", "green", "blue", "yellow", "magenta"]  # the model's: another order, more classes
    adapter = StandIn(by_folder({"blue": "green"}, classes), classes)
    code, written, progress = run(tmp_path, monkeypatch, "image_classification", dataset, "imagefolder", adapter,
                                     batch=4)
    assert code == 0
    assert progress[:-1] == [{"done": 4, "total": 9}, {"done": 8, "total": 9}, {"done": 9, "total": 9}]
    assert progress[-1] == {"eval": str(tmp_path / "out" / "eval.json"), "metrics": written["metrics"]}
    assert adapter.batches == [4, 4, 1] and adapter.loaded == str(tmp_path / "best.pt")
    assert written["classes"] == written["confusion_labels"] == classes
    assert written["confusion_matrix"] == [[3, 0, 0, 0, 0], [0, 3, 0, 0, 0], [0, 3, 0, 0, 0], [0] * 5, [0] * 5]
    assert written["metrics"]["val/accuracy"] == pytest.approx(6 / 9)
    assert written["metrics"]["val/top5"] == 1.0  # the truth is always among the five
    assert (written["task"], written["source"], written["epoch"], written["step"], written["job"]) == (
        "image_classification", "eval", None, None, "job-7")
    assert (written["dataset"], written["split"], written["images"], written["checkpoint"]) == (
        str(dataset), "val", 9, str(tmp_path / "best.pt"))
    rows = written["per_image"]
    assert [(r["truth"], r["predicted"]) for r in rows[:3]] == [("blue", "green")] * 3  # the mistakes first
    assert {r["image"] for r in rows} == {f"val/{c}/{c}{i}.png" for c in ("blue", "green", "red") for i in range(3)}


def test_a_dataset_without_a_val_split_evaluates_its_train_split(tmp_path, monkeypatch):
    one_each = colour_folder(tmp_path / "one", {"red": 0, "green": 0})  # a train image per class: too few to split
    code, written, _ = run(tmp_path, monkeypatch, "image_classification", one_each, "imagefolder",
                           StandIn(by_folder({}, ["red", "green"]), ["red", "green"]), split="train")
    assert (code, written["split"], written["images"], written["metrics"]["val/accuracy"]) == (0, "train", 2, 1.0)


@pytest.mark.parametrize(("case", "message"), [
    ("unknown class", "eval failed: the dataset's class(es) 'teal' are not classes of the model, whose classes are "
                      "'red', 'green': evaluate on a dataset whose class names are the model's"),
    ("no val", "eval failed: nothing to evaluate in split 'val' of {root}: it has no val split on disk and too few "
               "images to make one; evaluate --split all"),
    ("no dataset", "eval failed: the dataset {root} does not exist or is not a folder"),
    ("no checkpoint", "eval failed: checkpoint {root}/gone.pt does not exist"),
])
def test_bad_input_exits_1_with_what_is_wrong_on_stderr(tmp_path, monkeypatch, capsys, case, message):
    classes = ["red", "green"]
    root = tmp_path / "data"
    if case == "unknown class":
        colour_folder(root, {"red": 1, "teal": 1})
    elif case == "no val":
        colour_folder(root, {"red": 0, "green": 0})
    elif case == "no checkpoint":
        colour_folder(root, {"red": 1, "green": 1})
    options = {"checkpoint": str(tmp_path / "data" / "gone.pt")} if case == "no checkpoint" else {}
    code, written, progress = run(tmp_path, monkeypatch, "image_classification", root, "imagefolder",
                                     StandIn(by_folder({}, classes), classes), **options)
    assert (code, written, progress) == (1, None, [])
    assert message.format(root=root) in capsys.readouterr().err


# ---------------------------------------------------------------- detection


def yolo_boxes(path: str) -> list[tuple[int, list[float]]]:
    """The (class id, pixel xyxy) of a ``make_yolo_task`` image's label file (64 px images)."""
    label = Path(path.replace("/images/", "/labels/")).with_suffix(".txt")
    out = []
    for line in label.read_text().split("\n"):
        if line.strip():
            c, cx, cy, w, h = (float(v) for v in line.split())
            out.append((int(c), [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64, (cy + h / 2) * 64]))
    return out


def test_detection_scores_every_box_against_the_labels_in_pixels(tmp_path, monkeypatch):
    """2 val images, a red and a blue box each (dataset ids 0, 1; the model's 1, 0). Each image's boxes are
    found exactly (score 0.9), after a more confident red box on nothing (0.95): red's precision is 1/2 at
    every recall (AP 0.5), blue's 1 (AP 1)."""
    dataset = make_yolo_task(tmp_path / "data", "object_detection", train=2, val=2)
    classes = ["blue", "red", "green"]

    def answer(path: str) -> dict:
        found = [{"label": "red", "index": 1, "score": 0.95, "box": [-9.0, -9.0, -1.0, -1.0]}]
        for c, box in yolo_boxes(path):
            found.append({"label": classes[1 - c], "index": 1 - c, "score": 0.9, "box": box})
        return {"predictions": found}

    code, written, _ = run(tmp_path, monkeypatch, "object_detection", dataset, "yolo", StandIn(answer, classes))
    assert code == 0
    assert written["metrics"] == pytest.approx({"val/mAP50": 0.75, "val/mAP50-95": 0.75, "val/mAP75": 0.75,
                                                "val/precision": 0.75, "val/recall": 1.0})
    assert [(r["class"], r["AP50"], r["support"]) for r in written["per_class"]] == [
        ("blue", 1.0, 2), ("red", 0.5, 2), ("green", None, 0)]
    assert written["confusion_labels"] == [*classes, "background"]
    assert written["confusion_matrix"] == [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 2, 0, 0]]
    first = written["per_image"][0]
    assert first["image"] == "images/val/0.png" and len(first["predicted"]) == 3
    assert sorted(t["label"] for t in first["truth"]) == ["blue", "red"]


def test_a_crowd_region_is_neither_a_hit_nor_a_miss(tmp_path, monkeypatch):
    """COCO ``iscrowd``: a detection on it is ignored, as COCO does; the car is found."""
    anns = [ann(1, 1, 3, (10, 5, 20, 10)), ann(2, 1, 7, (0, 0, 12, 10), iscrowd=1)]
    dataset = make_coco(tmp_path / "data", {"train": anns, "val": anns})
    found = {"predictions": [{"label": "bike", "index": 1, "score": 0.99, "box": [1.0, 1.0, 11.0, 9.0]},
                             {"label": "car", "index": 0, "score": 0.8, "box": [10.0, 5.0, 30.0, 15.0]}]}
    nothing = {"predictions": []}
    adapter = StandIn(lambda path: found if path.endswith("val1.png") else nothing, ["car", "bike"])
    code, written, _ = run(tmp_path, monkeypatch, "object_detection", dataset, "coco", adapter)
    assert code == 0 and written["metrics"]["val/mAP50-95"] == pytest.approx(1.0)
    assert [r["support"] for r in written["per_class"]] == [1, 0]
    assert written["per_image"][0]["truth"][1] == {"label": "bike", "box": [0.0, 0.0, 12.0, 10.0], "crowd": True}


# ---------------------------------------------------------------- segmentation, super-resolution, OCR


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_segmentation_compares_class_maps_pixel_by_pixel_ignoring_255(tmp_path, monkeypatch):
    """The true map with the bar (2) predicted as the square (1): background IoU 1, square IoU
    square / (square + bar), bar IoU 0; the ignored corner (predicted 0) counts nowhere."""
    dataset = make_masks(tmp_path / "data", train=2, val=2)
    data = read_dataset(dataset, "masks", "semantic_segmentation")
    masks = {r.path: np.array(Image.open(r.mask)) for r in data.val}
    classes = ["background", "bar", "square"]  # the model's: bar and square swapped

    def answer(path: str) -> dict:
        truth = masks[path]
        predicted = np.select([truth == 1, truth == 2], [2, 2], 0).astype(np.uint8)  # model ids: square = 2
        return {"predictions": [], "mask_png": png(predicted)}

    code, written, _ = run(tmp_path, monkeypatch, "semantic_segmentation", dataset, "masks",
                              StandIn(answer, classes))
    assert code == 0
    square = sum(int((m == 1).sum()) for m in masks.values())
    bar = sum(int((m == 2).sum()) for m in masks.values())
    background = sum(int((m == 0).sum()) for m in masks.values())
    assert written["confusion_matrix"] == [[background, 0, 0], [0, 0, bar], [0, 0, square]]
    assert [r["iou"] for r in written["per_class"]] == pytest.approx([1.0, 0.0, square / (square + bar)])
    assert written["metrics"]["val/pixel_accuracy"] == pytest.approx((background + square) / (background + square + bar))
    assert {r["image"] for r in written["per_image"]} == {"val/images/0.png", "val/images/1.png"}


def test_super_resolution_scores_the_upscaled_image_against_its_hr_image(tmp_path, monkeypatch):
    """Paired LR images: the HR image itself scores the capped PSNR and SSIM 1; a grey one what PSNR says.
    HR only: the LR image is made from the HR image at the model's scale (half its size here)."""
    dataset = make_sr_pairs(tmp_path / "data", train=1, val=2)
    hr = {str(p): np.array(Image.open(p)) for p in (dataset / "val" / "HR").iterdir()}
    grey = np.full((32, 32, 3), 128, np.uint8)

    def answer(path: str) -> dict:
        high = hr[path.replace("LR_x2", "HR")]
        return {"predictions": [], "image_png": png(grey if path.endswith("1.png") else high)}

    code, written, _ = run(tmp_path, monkeypatch, "super_resolution", dataset, "sr_pairs", StandIn(answer, [], 2))
    assert code == 0
    worst = psnr(grey.transpose(2, 0, 1) / 255.0, hr[str(dataset / "val" / "HR" / "1.png")].transpose(2, 0, 1) / 255.0)
    assert [(r["image"], r["psnr"]) for r in written["per_image"]] == [("val/HR/1.png", pytest.approx(worst)),
                                                                       ("val/HR/0.png", PSNR_CAP_DB)]
    assert written["per_image"][1]["ssim"] == pytest.approx(1.0)
    assert written["metrics"]["val/psnr"] == pytest.approx((worst + PSNR_CAP_DB) / 2)

    only_hr = make_sr_pairs(tmp_path / "hr-only", train=1, val=2, with_lr=False)
    sizes = []

    def upscale(path: str) -> dict:
        low = Image.open(path)
        sizes.append(low.size)
        return {"predictions": [], "image_png": png(np.array(low.resize((32, 32), Image.Resampling.NEAREST)))}

    shutil.rmtree(tmp_path / "out")
    code, written, _ = run(tmp_path, monkeypatch, "super_resolution", only_hr, "sr_pairs", StandIn(upscale, [], 2))
    assert code == 0 and sizes == [(16, 16), (16, 16)] and written["images"] == 2
    assert 10 < written["metrics"]["val/psnr"] < PSNR_CAP_DB


def test_ocr_scores_the_predicted_text_against_the_label(tmp_path, monkeypatch):
    """Val texts "ab", "ba", "abc", "a b" (10 characters); "abc" read as "ab": one edit."""
    dataset = make_ocr_dataset(tmp_path / "data")
    texts = {"0.png": "ab", "1.png": "ba", "2.png": "ab", "3.png": "a b"}
    adapter = StandIn(lambda path: {"predictions": [], "text": texts[Path(path).name]})
    code, written, _ = run(tmp_path, monkeypatch, "ocr", dataset, "ocr", adapter)
    assert code == 0
    assert written["metrics"]["val/cer"] == pytest.approx(1 / 10)
    assert written["per_image"][0] == {"image": "val/images/2.png", "target": "abc", "prediction": "ab",
                                       "cer": pytest.approx(1 / 3)}


# ---------------------------------------------------------------- depth, captioning, visual QA


def test_depth_scores_each_map_against_its_depth_map_invalid_pixels_left_out(tmp_path, monkeypatch):
    """Every val image's depth predicted 10 % too deep (and 50 m on its invalid corner): AbsRel 0.1, δ1 1."""
    from adapters.datasets.depth import read_depth

    dataset = make_depth_dataset(tmp_path / "data", train=2, val=3)

    def answer(path: str) -> dict:
        truth = read_depth(path.replace("/images/", "/depth/").replace(".png", ".npy"))
        return {"predictions": [], "depth": {"kind": "metric", "unit": "m"},
                "depth_m": np.where(truth > 0, truth * 1.1, 50.0)}

    code, written, _ = run(tmp_path, monkeypatch, "depth_estimation", dataset, "depth", StandIn(answer))
    assert code == 0
    assert written["metrics"] == pytest.approx({"val/abs_rel": 0.1, "val/delta1": 1.0,
                                                "val/rmse": written["metrics"]["val/rmse"]}, rel=1e-5)
    assert (written["evaluator"], written["images"]) == ("visionyard.depth", 3)
    assert {r["image"] for r in written["per_image"]} == {f"val/images/{i}.png" for i in range(3)}


def test_captions_are_scored_against_all_their_references(tmp_path, monkeypatch):
    """Each val image captioned with its second reference: BLEU-4 1 (the first reference alone would not give it)."""
    dataset = make_captions_dataset(tmp_path / "data")
    adapter = StandIn(lambda path: {"predictions": [], "text": caption_references(*CAPTION_VAL[int(Path(path).stem)])[1]})
    code, written, _ = run(tmp_path, monkeypatch, "image_captioning", dataset, "captions", adapter)
    assert code == 0 and written["evaluator"] == "visionyard.captions"
    assert written["metrics"]["val/bleu4"] == pytest.approx(1.0) and written["metrics"]["val/cider"] > 0
    assert written["per_image"][0]["references"] == caption_references(*CAPTION_VAL[int(
        Path(written["per_image"][0]["image"]).stem)])


class Asked(StandIn):
    """A visual QA stand-in: answers ``answer(path, question)``; records (question, images) of each call."""

    def __init__(self, answer) -> None:
        super().__init__(answer)
        self.calls: list[tuple[str, int]] = []

    def predict_batch(self, images, top_k, annotate, question=None):
        self.calls.append((question, len(images)))
        return [{"predictions": [], "text": self.answer(str(path), question)} for path in images]


def test_visual_qa_asks_each_records_question_and_scores_the_vqa_accuracy(tmp_path, monkeypatch):
    """Val: red, green, blue squares, each asked its colour (answers e.g. red, RED, the red, white: the colour is 3
    of the 4 answers once normalised, 0.75) and "Is it red?" (one answer). Answered with the colour, and "yes"
    always: (3 x 0.75 + 1 + 0 + 0) / 6. The questions of a batch go to predict one question at a time."""
    dataset = make_vqa_dataset(tmp_path / "data")
    colours = {"0": "red", "1": "green", "2": "blue"}
    adapter = Asked(lambda path, question: "yes" if question == "Is it red?" else colours[Path(path).stem])
    code, written, _ = run(tmp_path, monkeypatch, "visual_qa", dataset, "vqa", adapter, batch=4)
    assert code == 0 and written["evaluator"] == "visionyard.vqa" and written["images"] == 6
    assert written["metrics"] == pytest.approx({"val/vqa_accuracy": (3 * 0.75 + 1.0) / 6})
    assert adapter.calls == [("What colour is it?", 2), ("Is it red?", 2), ("What colour is it?", 1),
                             ("Is it red?", 1)]
    assert [(r["question"], r["prediction"], r["score"]) for r in written["per_image"][:2]] == [
        ("Is it red?", "yes", 0.0), ("Is it red?", "yes", 0.0)]


# ---------------------------------------------------------------- the dataset hash


def test_the_dataset_hash_follows_the_evaluated_files_contents_not_their_folder(tmp_path):
    dataset = make_yolo_task(tmp_path / "data", "object_detection", train=2, val=2)
    copy = Path(shutil.copytree(dataset, tmp_path / "elsewhere"))

    def fingerprint(root: Path, split: str = "val") -> str:
        data = read_dataset(root, "yolo", "object_detection")
        return dataset_hash(data.val if split == "val" else data.train + data.val, str(root), data.class_names)

    first = fingerprint(dataset)
    assert first.startswith("blake2b:") and len(first) == len("blake2b:") + 64
    assert fingerprint(copy) == first
    assert fingerprint(dataset, "all") != first
    (copy / "labels" / "train" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # not an evaluated file
    assert fingerprint(copy) == first
    (copy / "labels" / "val" / "0.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    assert fingerprint(copy) != first
    (copy / "data.yaml").write_text("names: [red, green]\n")  # what the class ids mean
    shutil.copy(dataset / "labels" / "val" / "0.txt", copy / "labels" / "val" / "0.txt")
    assert fingerprint(copy) != first
