"""Stands in for `python -m adapters.entrypoint --predict ...` in the servicer's predict tests.

Appends "START <pid> <grandchild pid> <time>" to `children.log` in its cwd (the job dir), keeps a
grandchild in its process group, sleeps $VY_TEST_PREDICT_SECONDS, appends "END <pid> <time>" and
prints a classification result as the real child would.
"""

import json
import os
import subprocess
import sys
import time

grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open("children.log", "a") as log:
    log.write(f"START {os.getpid()} {grandchild.pid} {time.time()}\n")
time.sleep(float(os.environ.get("VY_TEST_PREDICT_SECONDS", "0")))
grandchild.kill()
grandchild.wait()
with open("children.log", "a") as log:
    log.write(f"END {os.getpid()} {time.time()}\n")
print(json.dumps({"predictions": [{"label": "red", "score": 0.9, "index": 0}], "width": 8, "height": 8}))
