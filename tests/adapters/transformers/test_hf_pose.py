"""Transformers top-down pose estimation in the real env: a tiny ViTPose (``tests.hf_models.VITPOSE``) trained as a
bare child on a COCO keypoints dataset made in code, with the task's heatmap loss (VitPose has none) and OKS AP each
epoch; resumed; predicted with for the whole image and for given boxes (also by a warm worker's loop, a batch of
images each with its own boxes); evaluated by ``eval`` with the dataset's boxes, which gives what training's
validation gave; reloaded by plain transformers. The loss and the crop/heatmap geometry are checked on hand-made
cases, and the evaluation path with perfect heatmaps.

Training runs the real entrypoint in a child of its own; the rest shares one child (``one_process``)."""

from __future__ import annotations

import contextlib
import json
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from adapters.transformers.catalog import POSE, check_model
from adapters.transformers.tasks.pose import heatmap_targets
from tests.adapters.transformers.common import EVALUATION_TRAINER
from tests.dataset_fixtures import make_yolo_task
from tests.hf_models import VITPOSE

REPORTED = {"val/loss", "val/pose_precision", "val/pose_recall", "val/pose_mAP50", "val/pose_mAP50-95"}
IMAGE_SIZE = (64, 64)


def make_pose_coco(root: Path, train: int = 4, val: int = 2, seed: int = 0) -> Path:
    """``person_keypoints_{train,val}.json`` with two people per 64x64 image: 24x36 boxes, each with COCO's 17
    keypoints on a 4-column grid, drawn as coloured dots (one colour per keypoint)."""
    rng = random.Random(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    person = [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)], "skeleton": []}]
    ann_id = 1
    for split, count in (("train", train), ("val", val)):
        (root / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for image_id in range(1, count + 1):
            image = Image.new("RGB", IMAGE_SIZE, (20, 20, 20))
            draw = ImageDraw.Draw(image)
            for _ in range(2):
                x0, y0 = rng.randint(2, 36), rng.randint(2, 24)
                points = []
                for k in range(17):
                    x, y = x0 + 3 + (k % 4) * 6 + rng.random(), y0 + 3 + (k // 4) * 7 + rng.random()
                    draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=(255, 255 - 12 * k, 12 * k))
                    points += [round(x, 2), round(y, 2), 2]
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": [x0, y0, 24, 36],
                                    "area": 864, "iscrowd": 0, "keypoints": points, "num_keypoints": 17})
                ann_id += 1
            image.save(root / split / f"{split}{image_id}.png")
            images.append({"id": image_id, "file_name": f"{split}{image_id}.png", "width": IMAGE_SIZE[0],
                           "height": IMAGE_SIZE[1]})
        document = {"images": images, "annotations": annotations, "categories": person}
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(document))
    return root


@pytest.fixture(scope="module")
def trained(hf_script, hf_python, hf_job, child_env, reporter_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("hfpose")
    hf_script(VITPOSE, root / "models")
    dataset = make_pose_coco(root / "data")
    job = hf_job.write(root / "job", POSE, root / "models" / "simple", dataset, "coco", epochs=2, image_size=64)
    with reporter_server() as server:
        done = hf_job.run(hf_python, child_env(server.address), "--spec", job)
    return {"done": done, "server": server, "root": root, "job": job, "dataset": dataset}


#: ``KNOWN_CASES JOB``: the loss on hand-made heatmaps; a keypoint at a known image position → the crop's target
#: peak → decoded back by the processor (DARK) in the image's pixels; the val set's targets given back as perfect
#: heatmaps to ``compute_metrics`` (OKS AP 1), and the same heatmaps mirrored (far lower); the classic decoder's
#: heatmap size.
KNOWN_CASES = """
import json, sys
import numpy as np, torch
from transformers import EvalPrediction
from adapters.datasets import read_dataset
from adapters.job import Job
from adapters.transformers.tasks.pose import PoseTask, heatmap_loss, heatmap_size, heatmap_targets
job = Job.from_file(sys.argv[1])
spec = job.spec
dataset = read_dataset(spec.dataset.path, spec.dataset.format, spec.task)
task = PoseTask(job)
task.class_names, task.dataset = list(dataset.class_names), dataset
model, task.processor = task.build(spec.model, True, dataset)
out = {}
target = torch.rand(2, 3, 8, 6)
weight = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
wrong_where_ignored = target.clone()
wrong_where_ignored[1, 1] += 5.0
out["loss"] = {"perfect": float(heatmap_loss(target, target, weight)),
               "ignored joint": float(heatmap_loss(wrong_where_ignored, target, weight)),
               "counted joint": float(heatmap_loss(wrong_where_ignored, target, torch.ones(2, 3)))}
box = (10.0, 6.0, 34.0, 42.0)
center, scale = task.center_scale(box)
points = np.zeros((17, 3)); points[0] = (21.0, 23.0, 2); points[5] = (33.0, 41.0, 2)
heatmaps, weights = heatmap_targets(points, center, scale, heatmap_size(task.config), 17)
[decoded] = task.decode(heatmaps[None], [box])
out["geometry"] = {"heatmap": list(heatmaps.shape), "weights": weights.tolist(),
                   "peaks": [[int(v) for v in np.unravel_index(int(heatmaps[k].argmax()), heatmaps[k].shape)]
                             for k in (0, 5)],
                   "decoded": decoded[[0, 5], :2].tolist(), "span": (scale * 200).tolist(), "center": center.tolist()}
people = task.samples(dataset.val, train=False)
perfect = np.stack([task.encode(i, train=False)["labels"].numpy() for i in people])
for name, maps in (("perfect", perfect), ("mirrored", perfect[..., ::-1].copy())):
    halves = (slice(0, 3), slice(3, None))  # two batches: keypoints kept across them, scored at the last
    for half, last in zip(halves, (False, True)):
        batch = EvalPrediction(predictions=maps[half], label_ids=np.array(people[half]))
        out[name] = task.compute_metrics(batch, compute_result=last)
out["rows"] = len(task.evaluation.per_image)
from pathlib import Path
from transformers import VitPoseForPoseEstimation
classic = VitPoseForPoseEstimation.from_pretrained(Path(spec.model).parent / "classic").eval()
with torch.no_grad():
    shape = list(classic(pixel_values=torch.zeros(1, 3, 64, 48)).heatmaps.shape[-2:])
out["classic decoder"] = {"heatmaps": shape, "computed": list(heatmap_size(classic.config))}
print(json.dumps(out))
"""

#: ``BOXES JOB CHECKPOINT IMAGE``: the checkpoint predicting for two given boxes and for the whole image.
BOXES = """
import json, sys
from adapters.entrypoint import build_adapter
from adapters.job import Job
from adapters.reporter import Reporter
adapter = build_adapter(Job.from_file(sys.argv[1]), Reporter(None))
adapter.load_checkpoint(sys.argv[2])
given = adapter.predict_batch([sys.argv[3]] * 2, boxes=[[[4, 4, 28, 40], [30, 20, 54, 56]], []])
whole = adapter.predict(sys.argv[3])
refused = []
for boxes in ([[5, 5, 5, 9]], [[0, 10, 65, 20]]):
    try:
        adapter.predict(sys.argv[3], boxes=[boxes])
        refused.append(None)
    except ValueError as exc:
        refused.append(str(exc))
from adapters.serve import answer
items = [{"image": sys.argv[3], "top_k": 1, "boxes": [[4, 4, 28, 40], [30, 20, 54, 56]]},
         {"image": sys.argv[3], "top_k": 1, "boxes": [[30, 20, 54, 56]]}, {"image": sys.argv[3], "top_k": 1}]
served = [r["result"]["predictions"] for r in answer(adapter, "pose_estimation", items, 10**6, 1.0)]
print(json.dumps({"given": given, "whole": whole["predictions"], "refused": refused, "served": served,
                  "evaluation": adapter.prepare_evaluation()}))
"""

#: ``PLAIN_LOAD CHECKPOINT IMAGE``: the checkpoint in plain transformers, its processor cropping a box.
PLAIN_LOAD = """
import json, sys, torch
from PIL import Image
from transformers import AutoImageProcessor, VitPoseForPoseEstimation
model = VitPoseForPoseEstimation.from_pretrained(sys.argv[1]).eval()
processor = AutoImageProcessor.from_pretrained(sys.argv[1])
inputs = processor(Image.open(sys.argv[2]).convert("RGB"), boxes=[[[4, 4, 24, 36]]], return_tensors="pt")
with torch.no_grad():
    outputs = model(**inputs)
found = processor.post_process_pose_estimation(outputs, boxes=[[[4, 4, 24, 36]]])
print(json.dumps({"model": type(model).__name__, "heatmaps": list(outputs.heatmaps.shape),
                  "classes": model.config.object_classes,
                  "keypoints": len(found[0][0]["keypoints"]), "size": dict(processor.size)}))
"""

#: ``HANDED_TO_THE_METRIC JOB``: an epoch's evaluation of the job's model, keeping what each batch hands
#: ``compute_metrics``; and the model's own heatmaps of the same crops, each the mean of the crop's and of its mirror
#: image's (COCO's left/right pairs swapped back), as ViTPose evaluates.
HANDED_TO_THE_METRIC = EVALUATION_TRAINER + """
import json, sys
import numpy as np, torch
adapter, trainer = evaluation_trainer(sys.argv[1])
handed = {"heatmaps": [], "people": []}


def numpy(value):
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def keep(eval_pred, compute_result=True):
    handed["heatmaps"].append(numpy(eval_pred.predictions))
    handed["people"].append(numpy(eval_pred.label_ids).reshape(-1))
    return adapter.task.compute_metrics(eval_pred, compute_result)


trainer.compute_metrics = keep
trainer.evaluate()
pairs = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]])
model, own, people = trainer.model.eval(), [], []
with torch.no_grad():
    for batch in trainer.get_eval_dataloader():
        pixels = batch["pixel_values"]
        mirrored = model(pixel_values=pixels.flip(-1), flip_pairs=pairs).heatmaps
        own.append(((model(pixel_values=pixels).heatmaps + mirrored) / 2).numpy())
        people.append(batch["person"].numpy().reshape(-1))
heatmaps, own = np.concatenate(handed["heatmaps"]), np.concatenate(own)
print(json.dumps({"batches": len(handed["heatmaps"]), "shape": list(heatmaps.shape),
                  "people": np.concatenate(handed["people"]).tolist(), "own people": np.concatenate(people).tolist(),
                  "difference": float(np.abs(heatmaps - own).max()), "largest": float(np.abs(own).max()),
                  "spread": float(own.std())}))
"""


@pytest.fixture(scope="module")
def one_process(trained, hf_python, hf_job, child_env, reporter_server, in_one_process):
    root = trained["root"]
    results = trained["server"].of_kind("result")
    last = results[0].last_checkpoint if results else str(root / "no-checkpoint")
    image = str(trained["dataset"] / "val" / "val1.png")
    jobs = {"resume": hf_job.write(root / "resumed", POSE, root / "models" / "simple", trained["dataset"], "coco",
                                   epochs=3, image_size=64, resume=last),
            "yolo": hf_job.write(root / "yolo", POSE, root / "models" / "simple",
                                 make_yolo_task(root / "yolo-data", POSE, train=4, val=2), "yolo", image_size=64)}
    halves = hf_job.write(root / "halves", POSE, last, trained["dataset"], "coco", image_size=64,
                          training={"epochs": 1, "batch_size": 2, "learning_rate": 1e-3, "device": "cpu",
                                    "num_workers": 0, "seed": 0})
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(reporter_server()) for name in jobs}
        steps = {name: {"argv": ["--spec", str(job)], "env": {
                     k: v for k, v in child_env(servers[name].address).items() if k.startswith("VISIONYARD_")}}
                 for name, job in jobs.items()}
        steps.update({
            "predict": {"argv": ["--spec", str(trained["job"]), "--checkpoint", last, "--predict", image]},
            "boxes": {"script": BOXES, "argv": [str(trained["job"]), last, image]},
            "plain transformers": {"script": PLAIN_LOAD, "argv": [last, image]},
            "known cases": {"script": KNOWN_CASES, "argv": [str(trained["job"])]},
            "handed to the metric": {"script": HANDED_TO_THE_METRIC, "argv": [str(halves)]},
            "eval": {"argv": ["--spec", str(trained["job"]), "--eval", "--checkpoint", last, "--out",
                              str(root / "eval")]},
        })
        out = in_one_process.run(hf_python, child_env(HF_HUB_OFFLINE="1"), steps)
    return {"out": out, "servers": servers, "root": root}


def finished(step: dict) -> dict:
    assert step["code"] == 0, step["error"] or step["stderr"][-4000:]
    return step


def test_targets_peak_where_the_keypoint_lies_in_the_crop():
    """Host side: a 40x40 region centred on (50, 30) onto a 9x9 heatmap: the region's corners land on the heatmap's
    corners (the unbiased warp), so a keypoint at the region's centre peaks at (4, 4), one at its top-left corner at
    (0, 0); an unlabelled keypoint and one far outside the crop weigh 0."""
    points = np.array([[50.0, 30.0, 2], [30.0, 10.0, 1], [40.0, 20.0, 0], [500.0, 30.0, 2]])
    target, weight = heatmap_targets(points, np.array([50.0, 30.0]), np.array([0.2, 0.2]), (9, 9), 4, sigma=1.0)
    assert weight.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert np.unravel_index(target[0].argmax(), (9, 9)) == (4, 4) and target[0, 4, 4] == pytest.approx(1.0)
    assert np.unravel_index(target[1].argmax(), (9, 9)) == (0, 0)
    assert not target[2].any() and not target[3].any()
    with pytest.raises(ValueError, match="a person has 4 keypoints but the model predicts 17"):
        heatmap_targets(points, np.array([50.0, 30.0]), np.array([0.2, 0.2]), (9, 9), 17)


def test_the_catalog_takes_vitpose_for_pose():
    assert check_model("usyd-community/vitpose-base-simple", POSE) is None
    assert "is a model for pose_estimation" in check_model("usyd-community/vitpose-base-simple", "object_detection")


def test_trains_with_the_heatmap_loss_and_reports_oks_ap(trained):
    done, server = trained["done"], trained["server"]
    assert done.returncode == 0, done.stderr[-4000:]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [1, 2]
    for m in metrics:
        assert REPORTED <= set(m.values) and not {"val/mAP50", "val/mAP50-95"} & set(m.values)  # boxes are given
        assert 0 <= m.values["val/pose_mAP50-95"] <= m.values["val/pose_mAP50"] <= 1
        assert 0 < m.values["train/loss"] < 1
    assert metrics[1].values["train/loss"] < metrics[0].values["train/loss"]  # it learns
    assert {c.kind for c in server.of_kind("checkpoint")} == {"last", "best"}
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-4")  # 8 people / 4 per batch, 2 epochs
    record = json.loads((trained["root"] / "job" / "results" / "val" / "epoch-0002.json").read_text())
    assert record["task"] == POSE and record["metrics"]["val/pose_mAP50-95"] == metrics[1].values["val/pose_mAP50-95"]
    assert sorted(row["image"] for row in record["per_image"]) == ["val/val1.png", "val/val2.png"]


def test_loss_and_geometry_on_known_cases(one_process):
    cases = finished(one_process["out"]["known cases"])["json"]
    assert cases["loss"]["perfect"] == 0.0 and cases["loss"]["ignored joint"] == 0.0
    assert cases["loss"]["counted joint"] > 0
    geometry = cases["geometry"]
    assert geometry["heatmap"] == [17, 32, 24] and geometry["weights"][0] == 1 and geometry["weights"][1] == 0
    # the box 24x36 at (10, 6) widened to the 48x64 input's aspect, padded by 1.25: a 33.75 x 45 px region
    assert geometry["span"] == pytest.approx([33.75, 45.0]) and geometry["center"] == pytest.approx([22.0, 24.0])
    col, row = ((21 - 22 + 33.75 / 2) * 23 / 33.75, (23 - 24 + 45 / 2) * 31 / 45)
    assert geometry["peaks"][0] == [round(row), round(col)]
    assert np.abs(np.array(geometry["decoded"]) - [[21.0, 23.0], [33.0, 41.0]]).max() < 1.0  # within a pixel
    assert cases["classic decoder"] == {"heatmaps": [32, 24], "computed": [32, 24]}


def test_perfect_heatmaps_score_oks_ap_1(one_process):
    cases = finished(one_process["out"]["known cases"])["json"]
    assert cases["perfect"]["pose_mAP50-95"] > 0.99 and cases["perfect"]["pose_mAP50"] > 0.99
    assert cases["mirrored"]["pose_mAP50-95"] < 0.5
    assert cases["rows"] == 2


def test_resume_continues_at_the_next_epoch(one_process):
    finished(one_process["out"]["resume"])
    server = one_process["servers"]["resume"]
    metrics = server.of_kind("metrics")
    assert [m.step for m in metrics] == [3] and REPORTED <= set(metrics[0].values)
    assert server.of_kind("result")[0].last_checkpoint.endswith("checkpoint-6")


def test_a_yolo_pose_dataset_with_3_keypoints_trains_a_new_head(one_process):
    """YOLO pose (fractions of the image, 3 keypoints, two classes) read in pixels; the 17-keypoint model gets a
    3-keypoint head (no flip: COCO's pairs don't apply)."""
    finished(one_process["out"]["yolo"])
    [metrics] = one_process["servers"]["yolo"].of_kind("metrics")
    assert REPORTED <= set(metrics.values)
    config = json.loads((one_process["root"] / "yolo" / "checkpoints" / "checkpoint-2" / "config.json").read_text())
    assert len(config["id2label"]) == 3 and config["object_classes"] == ["red", "blue"]


def test_predict_returns_17_keypoints_for_the_whole_image_and_for_given_boxes(one_process):
    response = finished(one_process["out"]["predict"])["json"]
    assert response["task"] == POSE and (response["width"], response["height"]) == IMAGE_SIZE
    [person] = response["predictions"]
    assert person["label"] == "person" and person["box"] == [0.0, 0.0, 64.0, 64.0]
    assert len(person["keypoints"]) == 17 and all(len(point) == 3 for point in person["keypoints"])
    boxes = finished(one_process["out"]["boxes"])["json"]
    given, empty = boxes["given"]
    assert [p["box"] for p in given["predictions"]] == [[4, 4, 28, 40], [30, 20, 54, 56]] and empty["predictions"] == []
    assert all(len(p["keypoints"]) == 17 for p in given["predictions"])
    assert boxes["whole"][0]["box"] == [0.0, 0.0, 64.0, 64.0]
    assert "is not a box [x1, y1, x2, y2]" in boxes["refused"][0]
    assert "boxes: [0.0, 10.0, 65.0, 20.0] reaches outside the 64x64 image" in boxes["refused"][1]
    assert boxes["evaluation"] == {"classes": ["person"], "boxes": "truth"}


def test_a_warm_worker_gives_each_image_of_a_batch_its_own_boxes(one_process):
    """Three items of one request (two people; one of them alone; no boxes) through ``adapters.serve.answer``: each
    gets what predicting it alone gives."""
    boxes = finished(one_process["out"]["boxes"])["json"]
    pair, one, whole = boxes["served"]
    alone = boxes["given"][0]["predictions"]
    assert [p["box"] for p in pair] == [[4, 4, 28, 40], [30, 20, 54, 56]] and [p["box"] for p in one] == [
        [30, 20, 54, 56]]
    for served, expected in ((pair[0], alone[0]), (pair[1], alone[1]), (one[0], alone[1]),
                             (whole[0], boxes["whole"][0])):
        assert np.abs(np.array(served["keypoints"]) - np.array(expected["keypoints"])).max() < 1e-3


def test_eval_with_the_datasets_boxes_equals_trainings_validation(one_process):
    """``eval`` of the last checkpoint gives the model each val image's own boxes (COCO keypoints' protocol with
    ground-truth boxes), as training's validation of that epoch cropped them: the same OKS AP, and no box AP."""
    finished(one_process["out"]["eval"])
    root = one_process["root"]
    trained = json.loads((root / "job" / "results" / "val" / "epoch-0002.json").read_text())
    evaluation = json.loads((root / "eval" / "eval.json").read_text())
    assert (evaluation["source"], evaluation["task"], evaluation["images"]) == ("eval", POSE, 2)
    assert set(evaluation["metrics"]) == {"val/pose_precision", "val/pose_recall", "val/pose_mAP50",
                                          "val/pose_mAP50-95"}
    for name, value in evaluation["metrics"].items():
        assert value == pytest.approx(trained["metrics"][name], rel=1e-5, abs=1e-7), name
    assert sorted(len(row["predicted"]) for row in evaluation["per_image"]) == sorted(
        len(row["predicted"]) for row in trained["per_image"])
    # the people's boxes are the dataset's, as in training (box AP 1: whole-image boxes would match none of them)
    assert evaluation["per_class"] == [{k: pytest.approx(v, rel=1e-5, abs=1e-7) if isinstance(v, float) else v
                                        for k, v in row.items()} for row in trained["per_class"]]
    assert evaluation["per_class"][0]["AP50-95"] == 1.0 and evaluation["per_class"][0]["support"] == 4


def test_an_evaluation_scores_the_models_own_heatmaps(one_process):
    """What an epoch's evaluation hands the metric, batch by batch, is the model's heatmaps of each person's crop
    (flip-averaged, as ViTPose evaluates), with that person's index: not zeros, not another model's."""
    out = finished(one_process["out"]["handed to the metric"])["json"]
    assert out["batches"] == 2 and out["shape"] == [4, 17, 32, 24]  # 2 images x 2 people, two a batch
    assert out["people"] == out["own people"] == [0, 1, 2, 3]
    assert out["largest"] > 1e-3 and out["spread"] > 1e-4  # heatmaps that say something
    assert out["difference"] < 1e-5 * out["largest"]


def test_the_checkpoint_loads_in_plain_transformers(one_process):
    loaded = finished(one_process["out"]["plain transformers"])["json"]
    assert loaded == {"model": "VitPoseForPoseEstimation", "heatmaps": [1, 17, 32, 24], "classes": ["person"],
                      "keypoints": 17, "size": {"height": 64, "width": 48}}
