"""The shipped convnext spec's env against the augmentation its training runs every step.

ConvNeXt's `main.py` trains with timm 0.4.12's RandAugment (`--aa rand-m9-mstd0.5-inc1` by default),
whose magnitude noise reaches the maximum level now and then: `PosterizeIncreasing` then asks
`ImageOps.posterize` for 0 bits (a black image, as timm means it), which Pillow 13 refuses ("bits must
be between or equal to 1 and 8") and Pillow 12 does. The spec pins the Pillow that accepts it; this
test builds the env the spec describes (the real timm 0.4.12, torch, Pillow) and drives every op of
timm's RandAugment, at its maximum and minimum level and with the repo's magnitude noise, over a JPEG,
then the repo's whole training transform with every op forced to the maximum.
"""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from PIL import Image, ImageDraw

from custom_repos.registry import shipped_specs
from custom_repos.translate import env_spec

pytestmark = pytest.mark.slow

# Run in the repo's env. The training transform is built as ConvNeXt's datasets.build_transform
# builds it (main.py's defaults: color jitter 0.4, the RandAugment string, bicubic, random erasing
# 0.25 'pixel'), at the job's image size.
DRIVE = r'''
import json, random, sys
import numpy as np
import PIL
from PIL import Image
import timm
from timm.data import create_transform
from timm.data import auto_augment as aa
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

random.seed(0)
np.random.seed(0)
image = Image.open(sys.argv[1]).convert("RGB")  # as torchvision's ImageFolder loads an image
size = int(sys.argv[2])
transform = create_transform(input_size=size, is_training=True, color_jitter=0.4,
                             auto_augment="rand-m9-mstd0.5-inc1", interpolation="bicubic", re_prob=0.25,
                             re_mode="pixel", re_count=1, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
rand_augment = next(t for t in transform.transforms if isinstance(t, aa.RandAugment))
hparams = rand_augment.ops[0].hparams
assert hparams["magnitude_std"] == 0.5, hparams

failures, calls = [], 0
for name in sorted(aa.NAME_TO_OP):
    for magnitude, std in ((aa._MAX_LEVEL, 0.0), (aa._MAX_LEVEL, 0.5), (0, 0.0)):
        op = aa.AugmentOp(name, prob=1.0, magnitude=magnitude, hparams=dict(hparams, magnitude_std=std))
        for _ in range(1 if std == 0 else 20):
            calls += 1
            try:
                out = op(image)
                assert out.mode == "RGB" and out.size == image.size, (out.mode, out.size)
            except Exception as exc:
                failures.append(f"{name} at level {magnitude} (magnitude std {std}): {type(exc).__name__}: {exc}")
                break

for op in rand_augment.ops:  # the repo's pipeline with every op at its maximum, always applied
    op.prob, op.magnitude = 1.0, aa._MAX_LEVEL
    op.hparams["magnitude_std"] = op.magnitude_std = 0.0
for _ in range(100):
    try:
        tensor = transform(image)
        assert tuple(tensor.shape) == (3, size, size), tuple(tensor.shape)
    except Exception as exc:
        failures.append(f"the training transform: {type(exc).__name__}: {exc}")
        break
print(json.dumps({"timm": timm.__version__, "pillow": PIL.__version__, "ops": len(aa.NAME_TO_OP),
                  "calls": calls, "failures": failures}))
'''


@pytest.fixture(scope="module")
def convnext_python(shared_envs, tmp_path_factory):
    """The python of the env the shipped convnext spec builds (its key: the spec's commit and requirements)."""
    from envs.manager import EnvManager

    spec = env_spec(shipped_specs()["convnext"], tmp_path_factory.mktemp("no-checkout"))
    with open(tmp_path_factory.getbasetemp() / "convnext-env-build.log", "w") as log:
        return EnvManager(shared_envs).ensure(spec, log=log).python


def photo(path, width=96, height=72):
    """A JPEG with gradients, shapes and noise: every op changes it visibly."""
    rng = random.Random(0)
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 255 // width, y * 255 // height, rng.randrange(256))
                   for y in range(height) for x in range(width)])
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 8, 50, 48), fill=(230, 200, 40))
    draw.rectangle((55, 30, 90, 66), outline=(20, 20, 160), width=4)
    image.save(path, quality=90)
    return path


def test_every_randaugment_op_at_its_extremes_runs_in_the_convnext_env(convnext_python, tmp_path):
    done = subprocess.run([str(convnext_python), "-c", DRIVE, str(photo(tmp_path / "photo.jpg")), "64"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["timm"] == "0.4.12"
    assert report["ops"] >= 20 and report["calls"] > 500  # every op was driven (not an empty loop)
    assert report["failures"] == [], f"Pillow {report['pillow']}:\n" + "\n".join(report["failures"])
