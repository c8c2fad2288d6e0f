"""Repo spec loading: every error names the file and the field; the shipped specs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from custom_repos import template
from custom_repos.registry import SHIPPED_DIR, shipped_specs
from custom_repos.spec import RepoSpecError, load_repo_spec, parse_repo_spec


def test_valid_spec_parses_with_defaults(spec_dict):
    spec = parse_repo_spec(spec_dict(), "myrepo.yaml")
    assert spec.python == "3.11" and spec.shims == [] and spec.min_classes is None
    assert [f.path for f in spec.schema_fields()] == ["hyp", "lr0"]
    assert spec.schema_fields()[1].minimum == 0
    catalog = spec.catalog()
    assert catalog.accepts_model("tiny") and not catalog.accepts_model("huge")
    assert catalog.preset("tiny").values == {"hyp": "data/hyp.tiny.yaml"}


@pytest.mark.parametrize("changes, path, words", [
    ({"comand": ["x"]}, "comand", ["unknown field", "Did you mean 'command'?", "Valid: name, url"]),
    ({"command": ["{python}", "train.py", "--epochs", "{epoch}"]}, "command[3]",
     ["unknown placeholder '{epoch}'", "Valid: python, model, epochs"]),
    ({"command": ["{python}", "{advanced.nope}"]}, "command[1]", ["'{advanced.nope}'", "advanced.hyp"]),
    ({"command": ["{python}", "--x={epochs"]}, "command[1]", ["literal braces"]),
    ({"command": ["{python}", "{epochs:03d}"]}, "command[1]", ["format spec"]),
    ({"command": ["{python}", "{}"]}, "command[1]", ["empty placeholder"]),
    ({"command": ["{python}", "{train_dir}"], "dataset_format": "imagefolder"}, None, None),  # valid
    ({"command": ["{data_yaml}"], "dataset_format": "imagefolder"}, "command[0]", ["'{data_yaml}'"]),
    ({"name": "My_Repo"}, "name", ["not a valid repo name"]),
    ({"name": "a--b"}, "name", ["single '-'"]),
    ({"commit": "abc12"}, "commit", ["at least 7 hex digits"]),
    ({"url": "git@github.com:x/y.git"}, "url", ["https://", "absolute path"]),
    ({"url": "relative/path"}, "url", ["not a supported url"]),
    ({"dataset_format": "voc"}, "dataset_format", ["Valid: yolo, imagefolder, coco"]),
    ({"shims": ["torch_seven"]}, "shims", ["unknown shim 'torch_seven'", "torch_six"]),
    ({"parser": "nope"}, "parser", ["Unknown log parser 'nope'", "yolov7"]),
    ({"parser": {"patterns": [{"regex": "(", "metrics": {}}]}}, "parser.patterns[0]", ["regular expression"]),
    ({"parser": 3}, "parser", ["expected a parser name or a mapping"]),
    ({"advanced": {"hyp": {"type": "int", "default": "x"}}}, "advanced.hyp", ["expected a number"]),
    ({"advanced": {"hyp": {"type": "choice", "default": "a"}}}, "advanced.hyp", ["needs choices"]),
    ({"advanced": {"hyp": {"type": "str", "default": "a", "tpye": 1}}}, "advanced.hyp.tpye",
     ["unknown field", "Did you mean 'type'?"]),
    ({"advanced": {"hyp": {"type": "text", "default": "a"}}}, "advanced.hyp.type", ["'choice'"]),
    ({"model_defaults": {"huge": {"hyp": "x"}}}, "model_defaults.huge", ["not one of models: tiny, big"]),
    ({"model_defaults": {"tiny": {"hpy": "x"}}}, "model_defaults.tiny.hpy", ["unknown setting", "hyp, lr0"]),
    ({"model_defaults": {"tiny": {"lr0": -1}}}, "model_defaults.tiny.lr0", ["below the minimum"]),
    ({"env": {"BAD-NAME": "1"}}, "env.BAD-NAME", ["environment variable name"]),
    ({"env": {"OUT": "{job_dirr}/x"}}, "env.OUT", ["unknown placeholder '{job_dirr}'"]),
    ({"artifacts": {"best": "../best.pt"}}, "artifacts.best", ["relative path"]),
    ({"artifacts": {"files": ["/abs/x"]}}, "artifacts.files", ["relative path"]),
    ({"artifacts": {"bset": "x"}}, "artifacts.bset", ["Did you mean 'best'?"]),
    ({"requirements_file": "/etc/passwd"}, "requirements_file", ["relative path"]),
    ({"tasks": []}, "tasks", ["at least 1"]),
    ({"python": "python3"}, "python", ["python version"]),
    ({"min_classes": 0}, "min_classes", ["greater than or equal to 1"]),
])
def test_spec_errors_name_file_and_field(spec_dict, changes, path, words):
    if path is None:
        parse_repo_spec(spec_dict(**changes), "myrepo.yaml")
        return
    with pytest.raises(RepoSpecError) as info:
        parse_repo_spec(spec_dict(**changes), "myrepo.yaml")
    paths = [p for p, _ in info.value.problems]
    assert any(p == path or p.startswith(path) for p in paths), info.value.problems
    text = str(info.value)
    assert text.startswith(f"myrepo.yaml: {path}"), text
    for word in words:
        assert word in text


def test_missing_fields_are_listed_together(spec_dict):
    data = spec_dict()
    for key in ("url", "command", "dataset_format"):
        del data[key]
    with pytest.raises(RepoSpecError) as info:
        parse_repo_spec(data, "x.yaml")
    assert [p for p, _ in info.value.problems] == ["url", "dataset_format", "command"]
    assert "x.yaml: url: is required" in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nurl: /x\ncommand: [a, b\ntasks: [x]\n")
    with pytest.raises(RepoSpecError) as info:
        load_repo_spec(path)
    text = str(info.value)
    assert text.startswith(f"{path}: line ") and "YAML syntax error" in text
    line = int(text.split("line ")[1].split(",")[0])
    assert line in (3, 4)


def test_yaml_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(RepoSpecError, match="list.yaml: expected a mapping of spec fields, got list"):
        load_repo_spec(path)
    with pytest.raises(RepoSpecError, match="cannot read the spec"):
        load_repo_spec(tmp_path / "missing.yaml")


def test_shipped_specs_load_and_pin_facts():
    specs = shipped_specs()
    assert sorted(specs) == ["convnext", "ppyoloe", "yolov7"]
    yolo, convnext = specs["yolov7"], specs["convnext"]
    assert yolo.commit == "a207844b1ce82d204ab36d87d496728d3d2348e7"
    assert yolo.env == {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"} and yolo.requirements_file == "requirements.txt"
    assert yolo.command[2:4] == ["--weights", ""]
    assert "yolov7-tiny" in yolo.models and yolo.catalog().preset("yolov7-tiny").values["hyp"].endswith("tiny.yaml")
    assert convnext.commit == "048efcea897d999aed302f2639b6270aedf8d4c8"
    assert convnext.overrides == ["timm==0.4.12"] and "timm==0.4.12" in convnext.requirements
    assert convnext.shims == ["torch_six", "cuda_synchronize_on_cpu"] and convnext.min_classes == 5
    for flag in ("--mixup", "--cutmix", "--auto_resume", "--output_dir"):
        assert flag in convnext.command
    ppyoloe = specs["ppyoloe"]
    assert ppyoloe.commit == "666f597fd00d3157e84dd9fb2dd3f40bf9918ebc" and ppyoloe.dataset_format == "coco"
    assert ppyoloe.overrides == ['sklearn; python_version < "3"', "setuptools<81"]
    assert "paddlepaddle==3.3.1" in ppyoloe.requirements and list(ppyoloe.config_files) == ["ppyoloe.yml"]
    for path in SHIPPED_DIR.glob("*.yaml"):  # the files, not the cache
        assert load_repo_spec(path).name == path.stem


def test_template_rendering_keeps_empty_elements_and_escapes():
    values = {"image_size": 64, "flag": True, "none": None, "lr": 0.001}
    assert template.render("", values) == ""
    assert template.render("--img={image_size}x{image_size}", values) == "--img=64x64"
    assert template.render("{flag}/{none}/{lr}", values) == "true//0.001"
    assert template.render("{{literal}}", values) == "{literal}"
    assert template.placeholders("{a}-{advanced.b.c}") == ["a", "advanced.b.c"]


def test_dotted_advanced_keys(spec_dict, tmp_path):
    data = spec_dict(advanced={"opt.lr": {"type": "float", "default": 0.1}}, model_defaults={},
                     command=["{python}", "--lr={advanced.opt.lr}"])
    spec = parse_repo_spec(data, "x.yaml")
    assert spec.schema_fields()[0].keys == ("opt", "lr")
    path = tmp_path / "dotted.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_repo_spec(Path(path)).command[1] == "--lr={advanced.opt.lr}"
