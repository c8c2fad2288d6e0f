"""The CLI leaves quietly when the reader of its output goes away (`... | head -1`)."""

import subprocess
import sys

from tests.fixtures import make_imagefolder


def test_a_closed_pipe_ends_the_cli_quietly(tmp_path):
    data = make_imagefolder(tmp_path / "colours", per_class=2, val_per_class=1)
    proc = subprocess.Popen([sys.executable, "-m", "runner.cli", "datasets", "check", str(data),
                             "--format", "imagefolder", "--task", "image_classification", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
