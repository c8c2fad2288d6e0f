"""``eval``'s scorers of instance segmentation, pose and OBB (``adapters.evaluation.scoring`` and
``scoring_instances``), on hand-made cases whose answers are known.

As in ``test_eval_detection``: COCO's AP averages the best precision at 101 recall points over IoU 0.50,
0.55, … 0.95, so one object found by one detection with nothing above it scores 1.0 at every
threshold its overlap passes, and an overlap between 0.50 and 0.55 scores 1.0 at AP50 and 0.1 at
AP50-95. A false positive scoring above the only hit halves the precision at every recall (AP 0.5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adapters.datasets import Annotation, ImageRecord, read_dataset, to_pixels
from adapters.evaluation.scoring import (InstanceSegmentationScorer, PoseScorer, RotatedBoxScorer,
                                         make_scorer)
from adapters.evaluation.record import Evaluation
from adapters.evaluation.scoring_instances import rotated_corners
from adapters.metrics import primary_metric
from tests.dataset_fixtures import ann, make_coco, make_yolo_task

ROOT = "/data"
BOX = ("AP50", "AP50-95", "precision", "recall")
SQUARE = (10, 10, 30, 30)  # 20 x 20 px
OTHER = (50, 50, 80, 70)


def corners(box) -> list[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def record(*annotations, name="a.png", size=(100, 100)) -> ImageRecord:
    return ImageRecord(f"{ROOT}/{name}", width=size[0], height=size[1], annotations=list(annotations))


def shape(box, class_id=0, **extra) -> Annotation:
    """An instance segmentation object: its box and that box as its polygon."""
    return Annotation(class_id, tuple(box), polygons=[corners(box)], **extra)


def outline(box, dx=0.0) -> list[list[float]]:
    """A predicted polygon: the box's corners, shifted ``dx`` px."""
    x1, y1, x2, y2 = box
    return [[x1 + dx, y1], [x2 + dx, y1], [x2 + dx, y2], [x1 + dx, y2]]


def item(classes, index, score, box, **geometry) -> dict:
    return {"label": classes[index], "index": index, "score": score, "box": [float(v) for v in box], **geometry}


def scored(task, classes, records, found):
    scorer = make_scorer(task, ROOT, classes, classes)
    scorer.update(records, [{"predictions": items} for items in found])
    return scorer.evaluation()


def rows(evaluation) -> dict[str, dict]:
    return {row["class"]: row for row in evaluation.per_class}


# ---------------------------------------------------------------- instance segmentation


def test_instance_segmentation_reports_boxes_and_masks_as_training_does():
    classes = ["cat", "dog"]
    image = record(shape(SQUARE, 0), shape(OTHER, 1))
    found = [item(classes, 0, 0.9, SQUARE, polygon=outline(SQUARE)), item(classes, 1, 0.8, OTHER, polygon=outline(OTHER))]
    result = scored("instance_segmentation", classes, [image], [found])
    assert isinstance(make_scorer("instance_segmentation", ROOT, classes, classes), InstanceSegmentationScorer)
    assert result.evaluator == "visionyard.coco" and result.classes == classes
    assert result.metrics == pytest.approx({
        "val/precision": 1.0, "val/recall": 1.0, "val/mAP50": 1.0, "val/mAP50-95": 1.0,
        "val/mask_precision": 1.0, "val/mask_recall": 1.0, "val/mask_mAP50": 1.0, "val/mask_mAP50-95": 1.0})
    assert primary_metric("instance_segmentation").name in result.metrics
    # the keys of a training record's rows (adapters.ultralytics.results), in its order
    assert [list(row) for row in result.per_class] == [["class", *BOX, *(f"mask_{k}" for k in BOX), "support"]] * 2
    assert rows(result)["dog"]["support"] == 1
    assert result.confusion_matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert result.confusion_labels == [*classes, "background"]
    assert result.per_image == [{"image": "a.png",
                                 "predicted": [{"label": "cat", "score": 0.9, "box": [10.0, 10.0, 30.0, 30.0]},
                                               {"label": "dog", "score": 0.8, "box": [50.0, 50.0, 80.0, 70.0]}],
                                 "truth": [{"label": "cat", "box": [10.0, 10.0, 30.0, 30.0]},
                                           {"label": "dog", "box": [50.0, 50.0, 80.0, 70.0]}]}]


def test_a_mask_off_by_6_px_is_a_hit_at_iou_0_50_only_while_its_exact_box_hits_everywhere():
    # 20 x 20 px, shifted 6 px: IoU 14 x 20 / (26 x 20) = 0.538, a hit at 0.50 but not at 0.55
    found = [item(["cat"], 0, 0.9, SQUARE, polygon=outline(SQUARE, dx=6))]
    result = scored("instance_segmentation", ["cat"], [record(shape(SQUARE))], [found])
    assert result.metrics["val/mask_mAP50"] == pytest.approx(1.0)
    assert result.metrics["val/mask_mAP50-95"] == pytest.approx(0.1)
    assert result.metrics["val/mAP50-95"] == pytest.approx(1.0)
    assert rows(result)["cat"]["mask_AP50-95"] == pytest.approx(0.1)


def test_a_prediction_without_a_polygon_has_an_empty_mask():
    found = [item(["cat"], 0, 0.9, SQUARE)]
    result = scored("instance_segmentation", ["cat"], [record(shape(SQUARE))], [found])
    assert result.metrics["val/mAP50-95"] == pytest.approx(1.0) and result.metrics["val/mask_mAP50-95"] == 0.0


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """A binary mask as COCO's uncompressed RLE (as COCO files keep crowd regions): run lengths in
    column-major order, starting with zeros."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def test_detection_reports_map75_as_detection_training_does():
    """The box metrics and ``val/mAP75`` (Transformers detection and PP-YOLOE report it each epoch): a box
    shifted by a quarter of its side overlaps at IoU 0.6, a hit at 0.50-0.55-0.60 only."""
    classes = ["cat", "dog"]
    image = record(shape(SQUARE, 0), shape(OTHER, 1))
    found = [item(classes, 0, 0.9, SQUARE), item(classes, 1, 0.8, OTHER)]
    exact = scored("object_detection", classes, [image], [found])
    assert exact.metrics == pytest.approx({"val/precision": 1.0, "val/recall": 1.0, "val/mAP50": 1.0,
                                           "val/mAP50-95": 1.0, "val/mAP75": 1.0})
    moved = item(classes, 0, 0.9, (15, 10, 35, 30))
    shifted = scored("object_detection", classes[:1], [record(shape(SQUARE, 0))], [[moved]])
    assert shifted.metrics["val/mAP50"] == pytest.approx(1.0) and shifted.metrics["val/mAP75"] == 0.0
    assert shifted.metrics["val/mAP50-95"] == pytest.approx(0.3)


def test_crowd_regions_of_a_coco_file_take_the_detections_on_them(tmp_path):
    """Read from a COCO file: a car polygon of two parts, a crowd RLE region with a more confident
    detection on it (no false positive, nor in the matrix), and an image without objects, whose
    detection is a false positive."""
    crowd = np.zeros((30, 40), dtype=np.uint8)
    crowd[15:30, 20:40] = 1
    car = ann(1, bbox=(2, 2, 12, 10), segmentation=[[2, 2, 8, 2, 8, 12, 2, 12], [8, 2, 14, 2, 14, 12, 8, 12]])
    region = ann(2, bbox=(20, 15, 20, 15), iscrowd=1, segmentation=_uncompressed_rle(crowd))
    root = make_coco(tmp_path / "coco", {"train": [ann(3, segmentation=[[0, 0, 9, 0, 9, 9]])], "val": [car, region]})
    data = read_dataset(root, "coco", "instance_segmentation")
    first, second = sorted(data.val, key=lambda r: r.path)
    assert [a.ignore for a in first.annotations] == [False, True] and not second.annotations
    classes = list(data.class_names)  # car, bike
    on_crowd = item(classes, 0, 0.95, (22, 16, 38, 29), polygon=outline((22, 16, 38, 29)))
    hit = item(classes, 0, 0.9, (2, 2, 14, 12), polygon=outline((2, 2, 14, 12)))
    scorer = make_scorer("instance_segmentation", root, classes, classes)
    scorer.update([first, second], [{"predictions": [on_crowd, hit]}, {"predictions": []}])
    result = scorer.evaluation()
    assert result.metrics["val/mask_mAP50-95"] == pytest.approx(1.0) and result.metrics["val/mAP50-95"] == pytest.approx(1.0)
    assert rows(result)["car"]["support"] == 1 and rows(result)["bike"]["mask_AP50"] is None  # no bike at all
    assert result.confusion_matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert result.per_image[0]["truth"][1] == {"label": "car", "box": [20.0, 15.0, 40.0, 30.0], "crowd": True}
    assert result.per_image[0]["image"].endswith("val1.png")

    fp = item(classes, 0, 0.99, (2, 2, 14, 12), polygon=outline((2, 2, 14, 12)))
    scorer = make_scorer("instance_segmentation", root, classes, classes)
    scorer.update([first, second], [{"predictions": [hit]}, {"predictions": [fp]}])
    result = scorer.evaluation()
    assert result.metrics["val/mask_mAP50"] == pytest.approx(0.5) and result.metrics["val/mAP50"] == pytest.approx(0.5)
    assert result.confusion_matrix.tolist() == [[1, 0, 0], [0, 0, 0], [1, 0, 0]]  # the false positive: background row


def test_a_class_never_predicted_has_mask_ap_0_and_one_without_objects_none():
    classes = ["cat", "dog", "fox"]
    found = [item(classes, 0, 0.9, SQUARE, polygon=outline(SQUARE))]
    result = scored("instance_segmentation", classes, [record(shape(SQUARE, 0), shape(OTHER, 1))], [found])
    dog, fox = rows(result)["dog"], rows(result)["fox"]
    assert (dog["AP50-95"], dog["mask_AP50-95"], dog["mask_recall"], dog["support"]) == (0.0, 0.0, 0.0, 1)
    assert (fox["AP50-95"], fox["mask_AP50-95"], fox["support"]) == (None, None, 0)
    assert result.metrics["val/mask_mAP50-95"] == pytest.approx(0.5)


# ---------------------------------------------------------------- OBB


def rotated(cx, cy, w, h, angle, class_id=0) -> Annotation:
    """An OBB object as a reader gives it: the rotated box's 4 corners and the box around them."""
    points = rotated_corners([cx, cy, w, h, angle])
    return Annotation(class_id, (min(points[0::2]), min(points[1::2]), max(points[0::2]), max(points[1::2])),
                      rbox=points)


def test_obb_scores_rotated_boxes_by_their_rotated_overlap_named_as_detection():
    angle = math.pi / 4
    image = record(rotated(100, 100, 80, 40, angle), name="b.png", size=(200, 200))
    exact = [{"label": "ship", "index": 0, "score": 0.9, "rotated_box": [100, 100, 80, 40, angle]}]  # no box: made
    result = scored("obb_detection", ["ship"], [image], [exact])
    assert isinstance(make_scorer("obb_detection", ROOT, ["ship"], ["ship"]), RotatedBoxScorer)
    assert result.metrics == pytest.approx({"val/precision": 1.0, "val/recall": 1.0, "val/mAP50": 1.0,
                                            "val/mAP50-95": 1.0})
    assert [list(row) for row in result.per_class] == [["class", *BOX, "support"]]
    assert result.confusion_matrix.tolist() == [[1, 0], [0, 0]]
    [predicted] = result.per_image[0]["predicted"]
    assert predicted["box"] == [57.6, 57.6, 142.4, 142.4]  # the axis-aligned box around it: 100 ± 60 cos 45°
    # shifted 24 px along its long side: IoU (80 - 24) / (80 + 24) = 0.538 up to pixel rounding
    dx, dy = 24 * math.cos(angle), 24 * math.sin(angle)
    shifted = [{"label": "ship", "index": 0, "score": 0.9, "rotated_box": [100 + dx, 100 + dy, 80, 40, angle]}]
    result = scored("obb_detection", ["ship"], [image], [shifted])
    assert result.metrics["val/mAP50"] == pytest.approx(1.0) and result.metrics["val/mAP50-95"] == pytest.approx(0.1)


def test_a_thin_box_turned_a_right_angle_misses_though_the_boxes_around_them_are_one():
    # two 60 x 10 px boxes at +45 and -45 degrees cross in a 10 x 10 px square: IoU 100 / 1100 = 0.09
    image = record(rotated(100, 100, 60, 10, math.pi / 4), size=(200, 200))
    crossed = [{"label": "ship", "index": 0, "score": 0.9, "rotated_box": [100, 100, 60, 10, -math.pi / 4],
                "box": list(image.annotations[0].box)}]
    result = scored("obb_detection", ["ship"], [image], [crossed])
    assert result.metrics["val/mAP50"] == 0.0 and rows(result)["ship"]["recall"] == 0.0
    assert result.confusion_matrix.tolist() == [[0, 1], [1, 0]]  # matched by the rotated overlap, not the boxes


# ---------------------------------------------------------------- pose


POINTS = [[10, 10, 2], [40, 10, 2], [25, 30, 2], [25, 45, 0]]  # the last one not labelled


def person(box=(0, 0, 50, 50), points=POINTS, **extra) -> Annotation:
    return Annotation(0, tuple(box), keypoints=[v for point in points for v in point], **extra)


def test_pose_with_exact_keypoints_scores_1_reporting_boxes_and_keypoints():
    found = [item(["person"], 0, 0.9, (0, 0, 50, 50), keypoints=[[x, y, 0.8] for x, y, _ in POINTS])]
    result = scored("pose_estimation", ["person"], [record(person())], [found])
    assert isinstance(make_scorer("pose_estimation", ROOT, ["person"], ["person"]), PoseScorer)
    assert result.metrics == pytest.approx({
        "val/precision": 1.0, "val/recall": 1.0, "val/mAP50": 1.0, "val/mAP50-95": 1.0,
        "val/pose_precision": 1.0, "val/pose_recall": 1.0, "val/pose_mAP50": 1.0, "val/pose_mAP50-95": 1.0})
    assert primary_metric("pose_estimation").name in result.metrics
    assert [list(row) for row in result.per_class] == [["class", *BOX, *(f"pose_{k}" for k in BOX), "support"]]
    assert result.per_image[0]["truth"] == [{"label": "person", "box": [0.0, 0.0, 50.0, 50.0]}]


def test_keypoints_off_by_10_px_pass_oks_up_to_0_85():
    # 4 keypoints: sigma 1/4 each (Ultralytics' and detection.py's default); the object's area is its box's
    # x 0.53 = 1325; each labelled point 10 px off: e = 100 / (2 x 0.25)^2 / 1325 / 2 = 0.151, OKS 0.860,
    # a hit at 0.50 ... 0.85 (8 of 10 thresholds); the unlabelled fourth point does not count
    off = [[x + 6, y + 8, 0.8] for x, y, _ in POINTS[:3]] + [[90.0, 90.0, 0.1]]
    found = [item(["person"], 0, 0.9, (0, 0, 50, 50), keypoints=off)]
    result = scored("pose_estimation", ["person"], [record(person())], [found])
    assert math.exp(-100 / 0.25 / 1325 / 2) == pytest.approx(0.860, abs=1e-3)
    assert result.metrics["val/pose_mAP50-95"] == pytest.approx(0.8)
    assert result.metrics["val/mAP50-95"] == pytest.approx(1.0)


def test_pose_crowd_and_empty_images():
    crowd = person((60, 60, 99, 99), [[0, 0, 0]] * 4, ignore=True)
    images = [record(person(), crowd, name="a.png"), record(name="b.png")]
    exact = [[x, y, 1.0] for x, y, _ in POINTS]
    on_crowd = item(["person"], 0, 0.95, (62, 62, 98, 98), keypoints=[[70.0, 70.0, 1.0]] * 4)
    result = scored("pose_estimation", ["person"], images,
                    [[on_crowd, item(["person"], 0, 0.9, (0, 0, 50, 50), keypoints=exact)], []])
    # the detection on the crowd region is ignored, by its box and by its keypoints (COCO measures those
    # of an object without labelled keypoints against its box)
    assert result.metrics["val/mAP50-95"] == result.metrics["val/pose_mAP50-95"] == pytest.approx(1.0)
    assert result.confusion_matrix.tolist() == [[1, 0], [0, 0]]
    assert rows(result)["person"]["support"] == 1
    fp = item(["person"], 0, 0.99, (0, 0, 50, 50), keypoints=exact)
    result = scored("pose_estimation", ["person"], images,
                    [[item(["person"], 0, 0.9, (0, 0, 50, 50), keypoints=exact)], [fp]])
    assert result.metrics["val/pose_mAP50"] == pytest.approx(0.5) and result.metrics["val/mAP50"] == pytest.approx(0.5)


def test_a_model_predicting_other_keypoints_than_the_dataset_labels_is_named():
    found = [item(["person"], 0, 0.9, (0, 0, 50, 50), keypoints=[[10.0, 10.0, 1.0]] * 17)]
    with pytest.raises(ValueError, match="the model predicts 17 keypoints per object but the dataset's objects have 4"):
        scored("pose_estimation", ["person"], [record(person())], [found])


# ---------------------------------------------------------------- read from a dataset


def _perfect(task: str, annotation: Annotation, classes) -> dict:
    """The prediction of an object that the predict path would give if it were exact."""
    geometry = {}
    if task == "instance_segmentation":
        geometry["polygon"] = [list(p) for p in zip(annotation.polygons[0][0::2], annotation.polygons[0][1::2],
                                                    strict=True)]
    elif task == "pose_estimation":
        geometry["keypoints"] = np.asarray(annotation.keypoints).reshape(-1, 3).tolist()
    else:  # the fixture's rotated boxes are upright rectangles: angle 0
        x1, y1, x2, y2 = annotation.box
        geometry["rotated_box"] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0]
    return item(classes, annotation.class_id, 0.9, annotation.box, **geometry)


@pytest.mark.parametrize("task", ["instance_segmentation", "pose_estimation", "obb_detection"])
def test_exact_predictions_of_a_yolo_datasets_labels_score_1(tmp_path, task):
    """YOLO labels (fractions of the image) read by the dataset layer, predictions in pixels."""
    data = read_dataset(make_yolo_task(tmp_path / "data", task), "yolo", task)
    classes = list(data.class_names)
    scorer = make_scorer(task, data.root, classes, classes)
    found = [{"predictions": [_perfect(task, a, classes) for a in to_pixels(r).annotations]} for r in data.val]
    scorer.update(data.val, found)
    result = scorer.evaluation()
    assert result.metrics[primary_metric(task).name] == pytest.approx(1.0)
    assert all(value == pytest.approx(1.0) for value in result.metrics.values()), result.metrics
    assert result.confusion_matrix.tolist() == [[4, 0, 0], [0, 4, 0], [0, 0, 0]]
    assert [row["image"] for row in result.per_image] == [f"images/val/{i}.png" for i in range(4)]


def test_the_object_tasks_are_scored():
    from adapters.datasets.records import OBJECT_TASKS
    from adapters.evaluation.scoring import SCORERS

    assert set(OBJECT_TASKS) <= set(SCORERS)


@pytest.mark.skipif(not hasattr(Evaluation("", [], {}, []), "curves"), reason="records keep no curves")
@pytest.mark.parametrize(("task", "kinds"), [("instance_segmentation", {"pr", "mask_pr"}),
                                             ("pose_estimation", {"pr", "pose_pr"}), ("obb_detection", {"pr"})])
def test_the_precision_recall_curves_are_named_as_training_names_them(task, kinds):
    """A training record's curves of the task (adapters.ultralytics.results): the boxes' and their twin's;
    OBB's rotated boxes as detection's boxes."""
    image = record(Annotation(0, SQUARE, polygons=[corners(SQUARE)], keypoints=[15, 15, 2], rbox=corners(SQUARE)))
    found = item(["cat"], 0, 0.9, SQUARE, polygon=outline(SQUARE), keypoints=[[15.0, 15.0, 1.0]],
                 rotated_box=[20, 20, 20, 20, 0])
    result = scored(task, ["cat"], [image], [[found]])
    assert set(result.curves) == kinds
    assert all(np.mean(curve["mean"]) == pytest.approx(1.0) for curve in result.curves.values())
