"""The names of what a job keeps in its job dir (``<home>/jobs/<id>/``), and of the node plans.

The daemon, its launchers and the node files take them from here. What runs outside the daemon
keeps its own copies, each held equal to these by a test: the supervisor and the node agent
(runner/payload/, standard library only), the adapter child (``adapters.job``: the checkpoint
folder) and the repo translator (``custom_repos.translate``: the output folder).
"""

from __future__ import annotations

LOG = "output.log"                 # the command's stdout+stderr, appended
JOB_FILE = "job.json"              # what an adapter child runs (adapters/job.py reads it)
CHECKPOINTS = "checkpoints"        # an adapter's checkpoints
OUTPUT = "output"                  # a custom repo's outputs (custom_repos.translate)
WORK_TREE = "repo"                 # a custom repo job's own working tree of the checkout (custom_repos.translate)
LAUNCH_RECORD = "launch.json"      # how the job was launched: its backend, its workload's state
SUPERVISOR_RECORD = "supervisor.json"  # who the supervisor and the command are
EXIT_RECORD = "exit.json"          # how the command ended, written by the supervisor
JOURNAL = "reports.journal"        # every report batch the child made, before it was sent
ENV_LINK = "env"                   # on a node of its own: the env built there, linked into the job dir

#: Beside the job dirs, in the home: the daemon's plan of each job that runs on a node of its own.
NODE_PLANS = "node-plans"
