"""Custom GitHub repos as training frameworks: a YAML spec per repo, clones, translation.

    registry = RepoRegistry(home / "repos" / "specs")
    spec = registry.get(job["repo"])                      # UnknownRepoError lists valid names
    problems = validate_job(spec, job)                    # [(field path, message)], at submit time
    checkout = RepoCache(home / "repos").checkout(spec, log)   # cached clone, clean checkout
    env = env_manager.ensure(env_spec(spec, checkout), log)
    launch = prepare_launch(spec, job, job_dir, checkout, env.python, device)
    # spawn launch.argv in launch.cwd with launch.env (+ launch.pythonpath on PYTHONPATH,
    # launch.unset_env removed); parse the log with log_parsers.build_parser(spec.parser);
    # afterwards find_artifacts(spec, launch.output_dir).

Host side only: nothing here imports torch or a repo's code.
"""

from custom_repos.git import RepoCache, RepoError
from custom_repos.registry import RepoRegistry, ShippedRepoError, UnknownRepoError, shipped_specs
from custom_repos.spec import (
    AdvancedFieldSpec,
    ArtifactsSpec,
    RepoSpec,
    RepoSpecError,
    load_repo_spec,
    parse_repo_spec,
)
from custom_repos.translate import (
    Artifacts,
    Launch,
    RepoJobError,
    env_spec,
    find_artifacts,
    prepare_launch,
    resolve_job,
    validate_job,
)

__all__ = [
    "AdvancedFieldSpec", "Artifacts", "ArtifactsSpec", "Launch", "RepoCache", "RepoError", "RepoJobError",
    "RepoRegistry", "RepoSpec", "RepoSpecError", "ShippedRepoError", "UnknownRepoError", "env_spec",
    "find_artifacts", "load_repo_spec", "parse_repo_spec", "prepare_launch", "resolve_job", "shipped_specs",
    "validate_job",
]
