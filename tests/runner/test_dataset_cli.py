"""`visionyard datasets check|convert` through main(argv): no daemon involved."""

from __future__ import annotations

import json

from runner.cli import main
from tests.dataset_fixtures import ann, make_coco


def test_check_prints_a_summary_and_each_problem_with_its_file(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2, 7, (0, 0, 40, 30)), ann(3, 2, 7, (30, 5, 20, 10))],
                                         "val": [ann(4)]})
    code = main(["datasets", "check", str(root), "--format", "coco", "--task", "object_detection"])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert code == 1
    assert "2 train / 2 val images (val on disk)" in out and "car" in out and "bike" in out
    assert "instances_train.json:annotation id 3: box [30, 5, 50, 15] lies outside the image" in out
    assert "class(es) with no validation images: bike" in out and "1 error(s), 2 warning(s)" in out

    code = main(["datasets", "check", str(root), "--format", "coco", "--task", "object_detection", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and not summary["ok"]
    assert summary["classes"] == [{"id": 0, "name": "car", "train": 1, "val": 1},
                                  {"id": 1, "name": "bike", "train": 2, "val": 0}]
    assert summary["images"] == {"train": 2, "val": 2} and summary["annotations"] == {"boxes": 4}
    assert summary["image_sizes"]["min"] == [40, 30]
    [error] = summary["errors"]
    assert error["file"] == str(root / "annotations" / "instances_train.json") and error["where"] == "annotation id 3"


def test_check_of_a_clean_dataset_exits_zero(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2)], "val": [ann(3), ann(4, 2)]})
    assert main(["datasets", "check", str(root), "--format", "coco", "--task", "object_detection"]) == 0
    assert "ok, 0 warning(s)" in capsys.readouterr().out


def test_a_split_is_made_as_asked(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2)]})
    code = main(["datasets", "check", str(root), "--format", "coco", "--task", "object_detection", "--json",
                 "--split", "sequential", "--val-ratio", "0.5"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["val_source"] == "sequential" and summary["images"] == {"train": 1, "val": 1}


def test_convert_writes_a_new_dataset_and_refuses_a_used_folder(tmp_path, capsys):
    root = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2, 7)], "val": [ann(3)]})
    out = tmp_path / "yolo"
    argv = ["datasets", "convert", str(root), "--from", "coco", "--to", "yolo", "--task", "object_detection",
            "-o", str(out)]
    assert main(argv) == 0
    assert f"wrote yolo dataset to {out}" in " ".join(capsys.readouterr().out.split())
    assert (out / "labels" / "train" / "train1.txt").read_text() == "0 0.500000 0.333333 0.500000 0.333333\n"
    assert main(["datasets", "check", str(out), "--format", "yolo", "--task", "object_detection"]) == 0
    capsys.readouterr()
    assert main(argv) == 1  # the output folder is no longer empty
    assert str(out) in " ".join(capsys.readouterr().out.split())
