"""A spec's `config_files` (a config written per job) and the COCO dataset format, on the shipped `ppyoloe`
spec (PaddleDetection: a generated config that `_BASE_`-inherits the repo's own) and on small specs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from custom_repos import prepare_launch, validate_job
from custom_repos.registry import shipped_specs
from custom_repos.spec import RepoSpecError, parse_repo_spec

PY = Path("/envs/repo-ppyoloe/bin/python")


def checkout(tmp_path: Path) -> Path:
    (tmp_path / "checkout").mkdir(exist_ok=True)
    return tmp_path / "checkout"


def ppyoloe_job(path, fmt="yolo", **changes):
    job = {"task": "object_detection", "model": "ppyoloe_crn_s", "dataset": {"path": str(path), "format": fmt},
           "training": {"epochs": 3, "batch_size": 4, "learning_rate": 0.002, "image_size": 160, "seed": 5,
                        "num_workers": 2}}
    job.update(changes)
    return job


def test_ppyoloe_launch_writes_a_config_that_inherits_the_repos_own(tmp_path, yolo_dataset):
    spec = shipped_specs()["ppyoloe"]
    job_dir = tmp_path / "jobs" / "1"
    launch = prepare_launch(spec, ppyoloe_job(yolo_dataset()), job_dir, checkout(tmp_path), PY, "cpu")

    written = job_dir / "config" / "ppyoloe.yml"
    assert launch.config_files == {"ppyoloe.yml": written}
    assert launch.argv[:2] == [str(PY), "-c"] and launch.argv[3:] == ["-c", str(written), "--eval"]
    assert "paddle.seed(5); numpy.random.seed(5); random.seed(5)" in launch.argv[2]
    config = yaml.safe_load(written.read_text())
    data, out = job_dir / "data", job_dir / "output"
    assert config["_BASE_"] == [str(job_dir / "repo" / "configs" / "ppyoloe" / "ppyoloe_crn_s_300e_coco.yml")]
    assert {k: config[k] for k in ("pretrain_weights", "weights", "save_dir", "use_gpu", "epoch", "num_classes",
                                   "worker_num", "eval_size", "snapshot_epoch")} == {
        "pretrain_weights": "", "weights": f"{out}/model_final", "save_dir": str(out), "use_gpu": False, "epoch": 3,
        "num_classes": 2, "worker_num": 2, "eval_size": [160, 160], "snapshot_epoch": 10}
    assert config["LearningRate"]["base_lr"] == 0.002
    assert config["LearningRate"]["schedulers"][0] == {"name": "CosineDecay", "max_epochs": 3}
    assert config["TrainDataset"] == {
        "name": "COCODataSet", "dataset_dir": str(data), "image_dir": str(data / "images" / "train"),
        "anno_path": str(data / "annotations" / "instances_train.json"),
        "data_fields": ["image", "gt_bbox", "gt_class", "is_crowd"]}
    assert config["EvalDataset"]["anno_path"] == str(data / "annotations" / "instances_val.json")
    reader = config["TrainReader"]
    assert reader["batch_size"] == 4 and reader["batch_transforms"][0]["BatchRandomResize"]["target_size"] == [160]
    assert reader["batch_transforms"][1]["NormalizeImage"] == {
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "is_scale": True}
    assert config["EvalReader"]["sample_transforms"][1]["Resize"]["target_size"] == [160, 160]
    assert config["TestReader"]["inputs_def"]["image_shape"] == [3, 160, 160]
    # the YOLO dataset, written as COCO: category ids 1..N in the dataset's class order
    train = json.loads((data / "annotations" / "instances_train.json").read_text())
    assert [(c["id"], c["name"]) for c in train["categories"]] == [(1, "red"), (2, "green")]
    assert len(train["images"]) == 4 and len(list((data / "images" / "val").iterdir())) == 2


def test_ppyoloe_plus_models_take_their_config_and_normalisation_and_a_gpu_its_flag(tmp_path, yolo_dataset):
    spec = shipped_specs()["ppyoloe"]
    job = ppyoloe_job(yolo_dataset(), model="ppyoloe_plus_crn_l",
                      advanced={"pretrain_weights": "/weights/plus_l.pdparams", "warmup_epochs": 0})
    launch = prepare_launch(spec, job, tmp_path / "job", checkout(tmp_path), PY, "cuda:0")
    config = yaml.safe_load(launch.config_files["ppyoloe.yml"].read_text())
    assert config["_BASE_"][0].endswith("/configs/ppyoloe/ppyoloe_plus_crn_l_80e_coco.yml")
    assert config["use_gpu"] is True and config["pretrain_weights"] == "/weights/plus_l.pdparams"
    assert config["snapshot_epoch"] == 5 and config["LearningRate"]["schedulers"][1]["epochs"] == 0
    assert config["EvalReader"]["sample_transforms"][2]["NormalizeImage"] == {
        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "norm_type": "none"}


def test_a_coco_dataset_is_written_afresh_for_a_coco_repo_with_a_split_of_its_own(tmp_path):
    from tests.dataset_fixtures import ann, make_coco

    spec = shipped_specs()["ppyoloe"]
    dataset = make_coco(tmp_path / "coco", {"train": [ann(1), ann(2, 2, 7)]})  # two images, no val split
    job = ppyoloe_job(dataset, "coco", dataset={"path": str(dataset), "format": "coco", "val_ratio": 0.5})
    assert validate_job(spec, job) == []
    job_dir = tmp_path / "job"
    for _ in range(2):  # a second launch (a retry) writes it again
        prepare_launch(spec, job, job_dir, checkout(tmp_path), PY, "cpu")
    annotations = job_dir / "data" / "annotations"
    train, val = (json.loads((annotations / f"instances_{s}.json").read_text()) for s in ("train", "val"))
    assert [c["name"] for c in train["categories"]] == ["car", "bike"]  # COCO ids 3, 7: now 1, 2
    assert (len(train["images"]), len(val["images"])) == (1, 1)
    assert not (dataset / "annotations" / "instances_val.json").exists()  # the user's dataset is only read


def test_config_files_render_placeholders_and_name_each_other(tmp_path, spec_dict, yolo_dataset):
    spec = parse_repo_spec(spec_dict(
        command=["{python}", "train.py", "--cfg", "{config_files.main.yaml}"],
        config_files={"main.yaml": "base: {config_files.base.cfg}\nepochs: {epochs}\nhyp: {advanced.hyp}\n",
                      "base.cfg": "[net]\nwidth={image_size}\n{{literal}}\n"}), "s.yaml")
    job = {"task": "object_detection", "model": "big", "dataset": {"path": str(yolo_dataset()), "format": "yolo"},
           "training": {"epochs": 4, "image_size": 96}}
    launch = prepare_launch(spec, job, tmp_path / "job", checkout(tmp_path), PY, "cpu")
    main, base = launch.config_files["main.yaml"], launch.config_files["base.cfg"]
    assert launch.argv == [str(PY), "train.py", "--cfg", str(main)]
    assert main.read_text() == f"base: {base}\nepochs: 4\nhyp: data/hyp.yaml\n"
    assert base.read_text() == "[net]\nwidth=96\n{literal}\n"


@pytest.mark.parametrize("config_files,command,path,words", [
    ({"../up.yml": "a: 1"}, None, "config_files.../up.yml", "not a plain file name"),
    ({"dir/x.yml": "a: 1"}, None, "config_files.dir/x.yml", "no folders"),
    ({"x.yml": "epoch: {epoch}"}, None, "config_files.x.yml", "unknown placeholder '{epoch}'. Valid: python"),
    ({"x.yml": "Decode: {}"}, None, "config_files.x.yml", "write '{{}}' for literal braces"),
    ({"x.yml": "anno: {train_annotations}"}, None, "config_files.x.yml", "unknown placeholder '{train_annotations}'"),
    ({"x.yml": "a: 1"}, ["{python}", "{config_files.y.yml}"], "command[1]",
     "unknown placeholder '{config_files.y.yml}'"),
])
def test_bad_config_files_name_the_field(spec_dict, config_files, command, path, words):
    changes = {"config_files": config_files} | ({"command": command} if command else {})
    with pytest.raises(RepoSpecError) as info:
        parse_repo_spec(spec_dict(**changes), "repo.yaml")
    (problem,) = info.value.problems
    assert problem[0] == path and words in problem[1], problem


def test_a_yolo_format_spec_may_not_read_coco_annotations_but_a_coco_one_may(spec_dict):
    coco = spec_dict(dataset_format="coco",
                     command=["{python}", "train.py", "{train_annotations}", "{val_annotations}"])
    assert parse_repo_spec(coco, "coco.yaml").dataset_format == "coco"
    with pytest.raises(RepoSpecError, match=r"command\[1\]: unknown placeholder '\{data_yaml\}'"):
        parse_repo_spec(spec_dict(dataset_format="coco", command=["{python}", "{data_yaml}"]), "coco.yaml")


def test_ppyoloe_predicts_with_the_jobs_config_and_reads_coco_results_back(tmp_path):
    from PIL import Image

    from custom_repos.predict import class_names, predict_command, read_answers

    spec = shipped_specs()["ppyoloe"]
    job_dir = tmp_path / "job"
    (job_dir / "data" / "annotations").mkdir(parents=True)
    (job_dir / "data" / "annotations" / "instances_train.json").write_text(json.dumps(
        {"images": [], "annotations": [], "categories": [{"id": 7, "name": "bike"}, {"id": 3, "name": "car"}]}))
    job = {"task": "object_detection", "model": "ppyoloe_crn_s", "training": {"image_size": 128}}
    argv, _ = predict_command(spec, job, job_dir, PY, "/ckpt/best_model.pdparams", tmp_path / "src",
                              tmp_path / "out", 5)
    assert argv[:8] == [str(PY), "tools/infer.py", "-c", str(job_dir / "config" / "ppyoloe.yml"), "-o",
                        "weights=/ckpt/best_model.pdparams", "use_gpu=false", "--infer_dir"]
    assert argv[-2:] == ["--save_threshold", "0.25"]

    names = class_names(job_dir, job)
    assert names == ["car", "bike"]  # by category id
    images = [tmp_path / "src" / "00000.png", tmp_path / "src" / "00001.jpg", tmp_path / "src" / "00002.png"]
    images[0].parent.mkdir()
    for image in images:
        Image.new("RGB", (64, 48)).save(image)
    out = tmp_path / "out"
    out.mkdir()
    (out / "bbox.json").write_text(json.dumps([
        {"image_id": 0, "category_id": 7, "bbox": [-4.0, 10.0, 20.0, 50.0], "score": 0.5, "im_file": [str(images[1])]},
        {"image_id": 1, "category_id": 3, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9, "file_name": "00000.png"},
        {"image_id": 0, "category_id": 3, "bbox": [5.0, 5.0, 10.0, 10.0], "score": 0.75, "im_file": [str(images[1])]},
    ]))
    first, second, third = read_answers(spec, "object_detection", out, "", images, names, 5, job_dir=job_dir)
    assert [(p["label"], p["index"], p["box"]) for p in first["predictions"]] == [("car", 0, [1.0, 2.0, 4.0, 6.0])]
    assert [(p["label"], p["score"], p["box"]) for p in second["predictions"]] == [
        ("car", 0.75, [5.0, 5.0, 15.0, 15.0]), ("bike", 0.5, [0.0, 10.0, 16.0, 48.0])]  # clipped to 64 x 48
    assert third["predictions"] == [] and (third["width"], third["height"]) == (64, 48)
    (out / "bbox.json").unlink()  # ppdet writes no file when nothing scored above the threshold
    assert all(a["predictions"] == [] for a in read_answers(spec, "object_detection", out, "", images, names, 5,
                                                            job_dir=job_dir))
    (out / "bbox.json").write_text('[{"bbox": [1, 2]}]')
    assert all("is not COCO's" in a for a in read_answers(spec, "object_detection", out, "", images, names, 5,
                                                          job_dir=job_dir))
