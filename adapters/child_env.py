"""The environment of a job's command: the variables the daemon gives a training child, and the
ones no job's command inherits from the daemon.

Names only, standard library only: the daemon (runner/), the repo translator (custom_repos/) and
the child's SDK (``adapters.reporter``) take them from here. The Ray node agent
(runner/payload/node_agent.py, standard library only) keeps its own copies, held equal by a test.
"""

from __future__ import annotations

ENV_ADDRESS = "VISIONYARD_REPORTER_ADDRESS"  # grpc target: unix:///abs/path.sock or 127.0.0.1:PORT
ENV_JOB_ID = "VISIONYARD_JOB_ID"
ENV_TOKEN = "VISIONYARD_JOB_TOKEN"
ENV_JOURNAL = "VISIONYARD_REPORT_JOURNAL"
ENV_TLS_ROOTS = "VISIONYARD_REPORTER_TLS_ROOTS"  # PEM: the daemon's listener is TLS (a job on another machine)

#: A child that finds these thinks it is one rank of a distributed run (torch.distributed, SLURM;
#: YOLOv7 and ConvNeXt read them): a job's command never inherits them from the daemon.
DISTRIBUTED_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
