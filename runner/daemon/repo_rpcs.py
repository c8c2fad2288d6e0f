"""Runner RPCs for custom repos: add a YAML spec, list, show, remove, prepare ahead of jobs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import grpc
import yaml

from protos import visionyard_pb2 as pb
from runner.daemon.convert import env_to_proto


def repo_to_proto(spec, source: str) -> pb.RepoInfo:
    data = spec.model_dump(mode="json", exclude_defaults=True)
    return pb.RepoInfo(name=spec.name, url=spec.url, commit=spec.commit, description=spec.description,
                       tasks=list(spec.tasks), models=list(spec.models), dataset_format=spec.dataset_format,
                       source=source, spec_yaml=yaml.safe_dump(data, sort_keys=False))


MAX_SPEC_CHARS = 256 * 1024


class RepoRpcs:
    """Mixed into RunnerServicer; needs `self.rt` (repos, repo_cache, envs)."""

    def _repo(self, name: str, context):
        from custom_repos.registry import UnknownRepoError
        from custom_repos.spec import RepoSpecError

        try:
            spec = self.rt.repos.get(name)
        except UnknownRepoError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except RepoSpecError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"repo spec '{name}' in the home is broken (fix it and `repos add` it again, or `repos rm` it):\n{exc}")
        source = next((src for s, src in self.rt.repos.list() if s.name == spec.name), "shipped")
        return spec, source

    def AddRepo(self, request: pb.AddRepoRequest, context) -> pb.RepoInfo:
        from custom_repos.spec import RepoSpecError

        filename = Path(request.filename).name or "repo.yaml"
        if not filename.isprintable() or len(filename.encode()) > 255 or filename in (".", ".."):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"filename {filename[:100]!r} is not a printable file name of at most 255 bytes")
        if len(request.spec_yaml) > MAX_SPEC_CHARS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"spec_yaml is {len(request.spec_yaml)} characters long; a repo spec is at most {MAX_SPEC_CHARS}")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_text(request.spec_yaml)
            before = {spec.name for spec, source in self.rt.repos.list() if source == "user"}
            try:
                spec = self.rt.repos.add(path)
            except (RepoSpecError, ValueError, yaml.YAMLError, RecursionError) as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid repo spec:\n{exc}")
        info = repo_to_proto(spec, "user")
        info.replaced = spec.name in before
        return info

    def ListRepos(self, request, context) -> pb.ListReposResponse:
        return pb.ListReposResponse(repos=[repo_to_proto(spec, source) for spec, source in self.rt.repos.list()])

    def GetRepo(self, request: pb.GetRepoRequest, context) -> pb.RepoInfo:
        return repo_to_proto(*self._repo(request.name, context))

    def RemoveRepo(self, request: pb.RemoveRepoRequest, context) -> pb.RepoInfo:
        from custom_repos.registry import ShippedRepoError, UnknownRepoError

        try:
            self.rt.repos.remove(request.name)  # also removes a user spec that no longer loads
        except ShippedRepoError:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"repo '{request.name}' ships with visionyard and cannot be removed")
        except UnknownRepoError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return pb.RepoInfo(name=request.name, source="user")

    def PrepareRepo(self, request: pb.PrepareRepoRequest, context) -> pb.PrepareRepoResponse:
        from custom_repos.git import RepoError
        from custom_repos.translate import env_spec

        spec, source = self._repo(request.name, context)
        try:
            checkout = self.rt.repo_cache.checkout(spec)
        except RepoError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"repo '{spec.name}': {exc}")
        try:
            env = self.rt.envs.ensure(env_spec(spec, checkout))
        except Exception as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"env for repo '{spec.name}' could not be built: {exc}")
        info = next((env_to_proto(e) for e in self.rt.envs.list(env.name)), pb.EnvInfo(name=env.name))
        return pb.PrepareRepoResponse(repo=repo_to_proto(spec, source), checkout=str(checkout), env=info)
