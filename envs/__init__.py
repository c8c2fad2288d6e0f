"""Env specs per framework and the uv env manager (hash, build, reuse, lock, GC).

Host side only: imports the stdlib, ``filelock`` and ``adapters.registry`` (the registry type,
stdlib only), and drives the uv binary.
"""

from envs.errors import EnvBuildCancelled, EnvBuildError
from envs.manager import Env, EnvManager, EnvRecord
from envs.spec import EnvSpec
from envs.specs import get_spec, register_spec, spec_names

__all__ = [
    "Env",
    "EnvBuildCancelled",
    "EnvBuildError",
    "EnvManager",
    "EnvRecord",
    "EnvSpec",
    "get_spec",
    "register_spec",
    "spec_names",
]
