"""Tiny local git repos that stand in for GitHub ones: our own train scripts, real log formats.

The fake YOLOv7 and ConvNeXt scripts accept the real repos' command lines, replay a log recorded
from the real repos (tests/log_parsers/data) line by line, and write the files the real ones
write, so the daemon's clone → env → translate → run → parse → artifacts path runs for real.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import git

DATA = Path(__file__).resolve().parent / "log_parsers" / "data"

REPLAY = '''
import sys, time
def replay(path, delay=0.002):
    with open(path, "rb") as f:
        data = f.read()
    for piece in data.split(b"\\n"):
        sys.stdout.buffer.write(piece + b"\\n")
        sys.stdout.flush()
        time.sleep(delay)
'''

FAKE_YOLOV7 = REPLAY + '''
import argparse, os
p = argparse.ArgumentParser()
for flag in ("--weights", "--cfg", "--data", "--hyp", "--device", "--project", "--name"):
    p.add_argument(flag)
p.add_argument("--epochs", type=int)
p.add_argument("--batch-size", type=int)
p.add_argument("--img-size", type=int, nargs=2)
p.add_argument("--workers", type=int)
p.add_argument("--exist-ok", action="store_true")
a = p.parse_args()
assert a.weights == "", a.weights
assert os.path.isfile(a.data), a.data
assert os.path.isfile(a.cfg), a.cfg
assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"
replay("yolov7.log")
out = os.path.join(a.project, a.name)
os.makedirs(os.path.join(out, "weights"), exist_ok=True)
for name in ("best.pt", "last.pt"):
    open(os.path.join(out, "weights", name), "wb").write(b"weights")
open(os.path.join(out, "results.txt"), "w").write("0/1 ...\\n1/1 ...\\n")
'''

# YOLOv7's detect.py as far as the daemon sees it: the same flags; for each image in --source (by
# suffix), a label file `class cx cy w h conf` (one box over the image's middle quarter, class 0)
# and the image "drawn" (copied) into --project/--name.
FAKE_YOLOV7_DETECT = '''
import argparse, os, shutil
p = argparse.ArgumentParser()
p.add_argument("--weights", nargs="+")
for flag in ("--source", "--device", "--project", "--name"):
    p.add_argument(flag)
p.add_argument("--img-size", type=int)
for flag in ("--save-txt", "--save-conf", "--no-trace", "--exist-ok", "--nosave"):
    p.add_argument(flag, action="store_true")
a = p.parse_args()
assert a.no_trace and a.save_txt and a.save_conf, a
assert all(os.path.isfile(w) for w in a.weights), a.weights
assert os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD") == "1"
out = os.path.join(a.project, a.name)
os.makedirs(os.path.join(out, "labels"), exist_ok=True)
for name in sorted(os.listdir(a.source)):
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        continue
    with open(os.path.join(out, "labels", stem + ".txt"), "w") as f:
        f.write("0 0.5 0.5 0.5 0.5 0.875\\n")
    if not a.nosave:
        shutil.copyfile(os.path.join(a.source, name), os.path.join(out, name))
    print(f"image {name}: 1 part, Done.")
'''

FAKE_CONVNEXT = REPLAY + '''
import argparse, os
p = argparse.ArgumentParser()
for flag in ("--model", "--data_set", "--data_path", "--eval_data_path", "--device", "--output_dir", "--auto_resume"):
    p.add_argument(flag)
for flag in ("--nb_classes", "--input_size", "--batch_size", "--epochs", "--warmup_epochs", "--mixup", "--cutmix",
             "--num_workers", "--seed"):
    p.add_argument(flag, type=int)
p.add_argument("--lr", type=float)
p.add_argument("--drop_path", type=float)
a = p.parse_args()
assert os.path.isdir(a.data_path) and os.path.isdir(a.eval_data_path)
assert a.auto_resume == "false" and a.mixup == 0
replay("convnext.log")
os.makedirs(a.output_dir, exist_ok=True)
for name in ("checkpoint-0.pth", "checkpoint-1.pth", "checkpoint-best.pth"):
    open(os.path.join(a.output_dir, name), "wb").write(b"weights")
# log.txt as main.py writes it: a JSON line per epoch, at full precision (what the log prints rounded)
open(os.path.join(a.output_dir, "log.txt"), "w").write(
    '{"train_lr": 0.0023, "train_loss": 5.3702, "test_loss": 3.6250, "test_acc1": 53.333333333333336, '
    '"test_acc5": 100.0, "epoch": 0, "n_parameters": 27823973}\\n'
    '{"train_lr": 2.6e-05, "train_loss": 3.4582, "test_loss": 1.7058, "test_acc1": 60.0, '
    '"test_acc5": 100.0, "epoch": 1, "n_parameters": 27823973}\\n')
'''

# PaddleDetection's tools/train.py as far as the daemon sees it: the generated config (`-c`), whose
# `_BASE_` must be the repo's own config of the model with its own `_BASE_` files beside it; the
# dataset it names (COCO, written for the job); the seed the command set through the stand-in
# `paddle` module. Replays a log of the real repo (PP-YOLOE crn_s on CPU, paddle 3.3.1) and writes
# the checkpoints ppdet writes into `save_dir` and the evaluation's bbox.json into its working directory.
FAKE_PADDLEDETECTION_TRAIN = REPLAY + """
import argparse, json, os, re
import paddle
p = argparse.ArgumentParser()
p.add_argument("-c", "--config", required=True)
p.add_argument("--eval", action="store_true")
p.add_argument("-r", "--resume")
p.add_argument("--amp", action="store_true")
a = p.parse_args()
text = open(a.config).read()
def key(name):
    found = re.search("^" + name + ": (.*)$", text, re.M)
    assert found, name
    return found.group(1).strip().strip("'")
base = re.fullmatch(r"\\['(.+)'\\]", key("_BASE_")).group(1)
here = os.path.realpath(os.getcwd())
assert os.path.isfile(base) and os.path.realpath(base).startswith(here + os.sep), base
for parent in re.findall(r"'(\\.{1,2}/[^']+)'", open(base).read()):
    assert os.path.isfile(os.path.join(os.path.dirname(base), parent)), parent
for path in re.findall(r"(?:anno_path|image_dir|dataset_dir): '([^']+)'", text):
    assert os.path.exists(path), path
json.load(open(re.search(r"anno_path: '([^']+)'", text).group(1)))
assert a.eval and key("use_gpu") == "false" and key("pretrain_weights") == "", text
print(f"[stand-in] seed {paddle.SEED} epochs {key('epoch')} classes {key('num_classes')} "
      f"config {os.path.basename(base)}")
replay("ppyoloe.log")
save = key("save_dir")
os.makedirs(save, exist_ok=True)
for name in ("0.pdparams", "model_final.pdparams", "best_model.pdparams"):
    open(os.path.join(save, name), "wb").write(b"weights")
open("bbox.json", "w").write("[]")
"""

# tools/infer.py with --save_results --rtn_im_file: COCO results in <output_dir>/bbox.json, each naming its
# image (a one-element list, as ppdet writes it); one box of category 2 per image over its middle
# quarter, and one below any --save_threshold the spec passes (left out, as infer.py leaves it out).
FAKE_PADDLEDETECTION_INFER = """
import argparse, json, os
p = argparse.ArgumentParser()
for flag in ("-c", "--infer_dir", "--output_dir", "--save_results", "--rtn_im_file", "--visualize"):
    p.add_argument(flag)
p.add_argument("-o", nargs="*")
p.add_argument("--save_threshold", type=float, default=0.5)
a = p.parse_args()
opts = dict(o.split("=", 1) for o in a.o)
assert os.path.isfile(a.c) and os.path.isfile(opts["weights"]) and opts["use_gpu"] == "false", (a, opts)
assert (a.save_results, a.rtn_im_file, a.visualize) == ("True", "True", "False"), a
results = []
for i, name in enumerate(sorted(os.listdir(a.infer_dir))):
    path = os.path.join(a.infer_dir, name)
    for score in (0.875, 0.01):
        if score >= a.save_threshold:
            results.append({"image_id": i, "category_id": 2, "bbox": [16.0, 16.0, 32.0, 32.0], "score": score,
                            "im_file": [path]})
if results:
    os.makedirs(a.output_dir, exist_ok=True)
    json.dump(results, open(os.path.join(a.output_dir, "bbox.json"), "w"))
"""

FAKE_PADDLE = "SEED = None\n\n\ndef seed(value):\n    global SEED\n    SEED = value\n"


# A repo no code in visionyard knows about, onboarded with a YAML spec alone.
TOY_TRAIN = '''
import argparse, json, os, sys, time
p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, required=True)
p.add_argument("--train", required=True)
p.add_argument("--out", required=True)
p.add_argument("--fail-at", type=int, default=0)
p.add_argument("--epoch-seconds", type=float, default=0.0)
p.add_argument("--hold-file", default="")
a = p.parse_args()
classes = sorted(os.listdir(a.train))
print(f"toy trainer: {len(classes)} classes, {a.epochs} epochs", flush=True)
os.makedirs(a.out, exist_ok=True)
for e in range(a.epochs):
    for i in range(1, 4):
        print(f"epoch {e + 1}/{a.epochs} step {i}/3 loss={1.0 / (e + i):.4f}", flush=True)
        time.sleep(0.02 + a.epoch_seconds / 3)
    if a.fail_at and e + 1 == a.fail_at:
        print("Traceback (most recent call last):\\nRuntimeError: toy trainer blew up", file=sys.stderr)
        sys.exit(3)
    print(f"validation: acc {50 + 10 * e:.1f}%", flush=True)
    with open(os.path.join(a.out, f"model_{e + 1}.bin"), "w") as f:
        f.write(json.dumps({"epoch": e + 1}))
    while a.hold_file and e == 0 and not os.path.exists(a.hold_file):  # held after its first epoch
        time.sleep(0.1)
'''


def make_git_repo(root: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """A git repo at `root` with `files` committed; returns (path, commit sha)."""
    root.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(root)
    with repo.config_writer() as config:
        config.set_value("user", "name", "visionyard tests")
        config.set_value("user", "email", "tests@visionyard.invalid")
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    repo.index.add(list(files))
    sha = repo.index.commit("initial").hexsha
    return root, sha


def fake_yolov7(root: Path) -> tuple[Path, str]:
    return make_git_repo(root, {
        "train.py": FAKE_YOLOV7,
        "detect.py": FAKE_YOLOV7_DETECT,
        "yolov7.log": (DATA / "yolov7_tiny_2epochs.log").read_bytes(),
        "requirements.txt": "# the fake repo needs nothing beyond the stdlib\n",
        "cfg/training/yolov7-tiny.yaml": "nc: 80\n",
        "data/hyp.scratch.tiny.yaml": "lr0: 0.01\n",
    })


def fake_convnext(root: Path) -> tuple[Path, str]:
    return make_git_repo(root, {
        "main.py": FAKE_CONVNEXT,
        "convnext.log": (DATA / "convnext_tiny_2epochs.log").read_bytes(),
    })


def fake_paddledetection(root: Path) -> tuple[Path, str]:
    """PaddleDetection's layout where it matters: tools/train.py, the PP-YOLOE configs and their `_BASE_`
    files, requirements.txt; `paddle` and `numpy` stand-ins (the seeding the spec's command does)."""
    base = "".join(f"  '{name}',\n" for name in ("../datasets/coco_detection.yml", "../runtime.yml",
                                                  "./_base_/optimizer_300e.yml", "./_base_/ppyoloe_crn.yml",
                                                  "./_base_/ppyoloe_reader.yml"))
    files = {
        "tools/train.py": FAKE_PADDLEDETECTION_TRAIN,
        "tools/infer.py": FAKE_PADDLEDETECTION_INFER,
        "ppyoloe.log": (DATA / "ppyoloe_crn_s_5epochs.log").read_bytes(),
        "requirements.txt": "# the stand-in needs nothing beyond the stdlib\n",
        "paddle/__init__.py": FAKE_PADDLE,
        "numpy/__init__.py": "from numpy import random  # noqa: F401\n",
        "numpy/random.py": "def seed(value):\n    pass\n",
    }
    for name in ("coco_detection.yml", "runtime.yml"):
        files[f"configs/{name.replace('coco_detection', 'datasets/coco_detection')}"] = "num_classes: 80\n"
    for name in ("optimizer_300e.yml", "optimizer_80e.yml", "ppyoloe_crn.yml", "ppyoloe_plus_crn.yml",
                 "ppyoloe_reader.yml", "ppyoloe_plus_reader.yml"):
        files[f"configs/ppyoloe/_base_/{name}"] = "epoch: 300\n"
    for model in ("ppyoloe_crn_s_300e_coco", "ppyoloe_plus_crn_s_80e_coco"):
        files[f"configs/ppyoloe/{model}.yml"] = f"_BASE_: [\n{base}]\n"
    return make_git_repo(root, files)


def toy_repo(root: Path) -> tuple[Path, str]:
    return make_git_repo(root, {"train.py": TOY_TRAIN, "README.md": "toy\n"})


def toy_spec(url: str, commit: str, name: str = "toyrepo") -> str:
    return f"""
name: {name}
url: {url}
commit: {commit}
description: a toy classifier no Python in visionyard knows about
tasks: [image_classification]
dataset_format: imagefolder
command: ["{{python}}", train.py, --epochs, "{{epochs}}", --train, "{{train_dir}}", --out, "{{output_dir}}",
          --fail-at, "{{advanced.fail_at}}", --epoch-seconds, "{{advanced.epoch_seconds}}",
          --hold-file, "{{advanced.hold_file}}"]
advanced:
  fail_at: {{type: int, default: 0, minimum: 0, description: "epoch to crash at (0: never)"}}
  epoch_seconds: {{type: float, default: 0.0, minimum: 0, description: "extra seconds each epoch takes"}}
  hold_file: {{type: str, default: "", description: "after its first epoch, wait until this file exists"}}
artifacts:
  last: "model_*.bin"
parser:
  patterns:
    - regex: 'epoch (?P<epoch>\\d+)/(?P<epochs>\\d+) step (?P<step>\\d+)/(?P<steps>\\d+) loss=(?P<loss>[\\d.]+)'
      metrics: {{loss: train/loss}}
      epoch_group: epoch
      total_epochs_group: epochs
      step_group: step
      total_steps_group: steps
    - regex: 'validation: acc (?P<acc>[\\d.]+)%'
      metrics: {{acc: val/accuracy}}
      scale: {{acc: 0.01}}
"""


def copy_shipped_spec(name: str, url: str, commit: str, new_name: str, dest: Path) -> Path:
    """A shipped spec pointed at a local repo (what a user does to run a fork or a mirror)."""
    import yaml

    source = Path(__file__).resolve().parent.parent / "custom_repos" / "specs" / f"{name}.yaml"
    data = yaml.safe_load(source.read_text())
    data.update(name=new_name, url=url, commit=commit)
    data.update(requirements=[], overrides=[])  # the fakes need no torch: keep their envs tiny
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def make_yolo(root: Path, per_split: dict[str, int] = {"train": 4, "val": 2}, size: int = 64) -> Path:
    """A YOLO-format dataset: images/{train,val}, labels/{train,val} (normalized cx cy w h), classes.txt."""
    from PIL import Image

    for split, count in per_split.items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (size, size), (40 * i % 255, 100, 150)).save(root / "images" / split / f"{i}.jpg")
            (root / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 0.3 0.4\n")
    (root / "classes.txt").write_text("bolt\nnut\n")
    return root
