"""Child process for the cross-process test: waits for a go-file, then calls ensure().

Usage: python ensure_child.py ROOT UV GO_FILE OUT_FILE REQUIREMENT...
Writes uv's log to OUT_FILE.log and ``{"name": ..., "reused": ...}`` to OUT_FILE.
"""

import json
import sys
import time
from pathlib import Path

from envs import EnvManager, EnvSpec

root, uv, go, out, *requirements = sys.argv[1:]
manager = EnvManager(Path(root), uv=uv)
while not Path(go).exists():
    time.sleep(0.005)
with open(out + ".log", "w") as log:
    env = manager.ensure(EnvSpec("proc", requirements=tuple(requirements)), log=log)
Path(out).write_text(json.dumps({"name": env.name, "reused": env.reused}))
