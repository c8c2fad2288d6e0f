"""RepoCache against real git: tiny local repos built at test time, cloned by path and file://."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from custom_repos import RepoCache, RepoError
from custom_repos.git import CHECKOUT_MARKER, checkout_commit
from custom_repos.spec import parse_repo_spec


@pytest.fixture
def make_spec(spec_dict):
    return lambda url, commit, **kw: parse_repo_spec(spec_dict(url=str(url), commit=commit, **kw), "t.yaml")


def files_in(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_clone_by_path_checks_out_the_pinned_commit_not_head(tmp_path, git_repo, make_spec):
    cache = RepoCache(tmp_path / "repos")
    log = io.StringIO()
    checkout = cache.checkout(make_spec(git_repo.path, git_repo.first), log)
    assert checkout == tmp_path / "repos" / "checkouts" / f"myrepo-{git_repo.first[:12]}"
    files = files_in(checkout)
    assert files.pop(CHECKOUT_MARKER)
    assert files == {"train.py": "print('v1')\n", "requirements.txt": "tqdm==4.67.1\n", "cfg/model.yaml": "nc: 80\n"}
    assert not (checkout / ".git").exists()
    assert checkout_commit(checkout) == git_repo.first
    assert "cloning" in log.getvalue() and "checking out myrepo @" in log.getvalue()
    assert not list((tmp_path / "repos" / "checkouts").glob(".tmp-*"))
    assert not list((tmp_path / "repos" / "clones").glob(".tmp-*"))


def test_file_url_and_short_commit(tmp_path, git_repo, make_spec):
    spec = make_spec(f"file://{git_repo.path}", git_repo.second[:7])
    checkout = RepoCache(tmp_path / "repos").checkout(spec)
    assert (checkout / "train.py").read_text() == "print('v2')\n"
    assert checkout.name == f"myrepo-{git_repo.second[:12]}"
    assert json.loads((checkout / CHECKOUT_MARKER).read_text())["commit"] == git_repo.second


def test_reuse_does_not_fetch(tmp_path, git_repo, make_spec):
    cache = RepoCache(tmp_path / "repos")
    cache.checkout(make_spec(git_repo.path, git_repo.second))
    (clone,) = (tmp_path / "repos" / "clones").iterdir()
    log = io.StringIO()
    again = RepoCache(tmp_path / "repos").checkout(make_spec(git_repo.path, git_repo.second), log)
    assert log.getvalue() == f"[visionyard] using checkout {again}\n"
    # An older commit that the clone already has: a new checkout, still no fetch.
    log = io.StringIO()
    older = cache.checkout(make_spec(git_repo.path, git_repo.first), log)
    assert (older / "train.py").read_text() == "print('v1')\n"
    assert "fetching" not in log.getvalue() and "cloning" not in log.getvalue()
    assert not (clone / "FETCH_HEAD").exists()


def test_fetches_when_the_pinned_commit_is_newer_than_the_clone(tmp_path, git_repo, make_spec):
    cache = RepoCache(tmp_path / "repos")
    cache.checkout(make_spec(git_repo.path, git_repo.first))
    third = git_repo.commit({"train.py": "print('v3')\n"}, "third")
    log = io.StringIO()
    checkout = cache.checkout(make_spec(git_repo.path, third), log)
    assert (checkout / "train.py").read_text() == "print('v3')\n"
    assert f"commit {third} is not in the cached clone; fetching" in log.getvalue()
    (clone,) = (tmp_path / "repos" / "clones").iterdir()
    assert (clone / "FETCH_HEAD").exists()


def test_unknown_commit_names_it_after_a_fetch(tmp_path, git_repo, make_spec):
    missing = "deadbeef" * 5
    with pytest.raises(RepoError) as info:
        RepoCache(tmp_path / "repos").checkout(make_spec(git_repo.path, missing))
    assert f"Commit {missing} not found in {git_repo.path} (after a fetch)" in str(info.value)


def test_unknown_url_names_it(tmp_path, make_spec):
    url = tmp_path / "no-such-repo"
    with pytest.raises(RepoError) as info:
        RepoCache(tmp_path / "repos").checkout(make_spec(url, "a" * 40))
    assert str(info.value).startswith(f"Cloning {url} failed: ")
    assert "does not exist" in str(info.value)
    assert not list((tmp_path / "repos" / "clones").iterdir())


def test_https_without_network_fails_fast(tmp_path, make_spec):
    url = "https://visionyard-tests.invalid/none/repo"  # .invalid never resolves
    started = time.monotonic()
    with pytest.raises(RepoError, match=f"Cloning {url} failed: .*(resolve|unable to access)") as info:
        RepoCache(tmp_path / "repos").checkout(make_spec(url, "a" * 40))
    assert "no network on this machine?" in str(info.value)
    assert time.monotonic() - started < 20


def test_two_threads_make_one_checkout(tmp_path, git_repo, make_spec):
    spec = make_spec(git_repo.path, git_repo.second)
    cache = RepoCache(tmp_path / "repos")
    logs = [io.StringIO(), io.StringIO()]
    results: list[Path | BaseException] = [None, None]
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = cache.checkout(spec, logs[i])
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == results[1] and isinstance(results[0], Path), results
    assert [p.name for p in (tmp_path / "repos" / "checkouts").iterdir()] == [results[0].name]
    assert sum(log.getvalue().count("checking out") for log in logs) == 1
    assert sum(log.getvalue().count("cloning") for log in logs) == 1


def test_missing_blob_is_named_and_exclude_skips_it(tmp_path, git_repo, make_spec):
    sha = git_repo.commit({"paper/big.pdf": "pdf bytes\n", "tools/demo.ipynb": "{}\n"}, "docs")
    blob = git_repo.repo.git.rev_parse(f"{sha}:paper/big.pdf")
    (git_repo.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # like a partial mirror
    cache = RepoCache(tmp_path / "repos")
    with pytest.raises(RepoError) as info:
        cache.checkout(make_spec(git_repo.path, sha))
    assert "is incomplete" in str(info.value) and "paper/big.pdf" in str(info.value)
    assert "tools/demo.ipynb" not in str(info.value)
    assert not list((tmp_path / "repos" / "checkouts").iterdir())

    checkout = cache.checkout(make_spec(git_repo.path, sha, exclude=["paper/"]))
    assert (checkout / "tools" / "demo.ipynb").exists() and not (checkout / "paper").exists()
    assert json.loads((checkout / CHECKOUT_MARKER).read_text())["excluded"] == ["paper/big.pdf"]
