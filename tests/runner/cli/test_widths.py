"""What a user copies comes out whole at 80 and 200 columns: job ids, model ids, checkpoint paths,
job dirs, env paths, repo urls and commits. Lesser columns wrap or go first; nothing is cut and no
ellipsis appears. `list` shows state, epoch, the task's primary metric and how long the job ran."""

from __future__ import annotations

import json
import os
import re

import pytest

import runner.cli.commands
from protos import visionyard_pb2 as pb
from runner.cli.output import cells

WIDTHS = (80, 200)


def rows(out: str) -> list[str]:
    """A table's lines under its header and the rule under it."""
    lines = out.splitlines()
    assert set(lines[1]) == {"─"}, out
    return lines[2:]


def fits(out: str, columns: int) -> bool:
    return all(cells(line) <= columns for line in out.splitlines())


@pytest.mark.parametrize("columns", WIDTHS)
def test_list_shows_ids_whole_with_state_epoch_primary_metric_and_duration(jobs, cli, columns):
    code, out = cli("list", "--address", jobs.address, columns=columns)
    assert code == 0 and fits(out, columns) and "…" not in out
    assert out.split()[:5] == ["id", "name", "state", "epoch", "metric"]
    done = next(line for line in rows(out) if line.startswith(jobs.done.id + " "))
    crashed = next(line for line in rows(out) if line.startswith(jobs.crashed.id + " "))
    assert "SUCCEEDED" in done and " 2/2 " in done and "val/accuracy ↑ 0.7000" in done
    assert "FAILED" in crashed and " 1/1 " in crashed and "val/accuracy ↑ 0.6000" in crashed
    assert re.search(r" \d+s$", done)  # how long it ran
    assert "train/loss" not in out  # every metric is `status`'s
    if columns == 200:
        assert "FAILED (training)" in crashed and jobs.crashed.name in crashed


def test_list_becomes_one_record_per_job_when_even_the_ids_do_not_fit_beside_the_rest(jobs, cli):
    code, out = cli("list", "--address", jobs.address, columns=20)
    blocks = [block.splitlines() for block in out.split("\n\n")]
    assert code == 0 and len(blocks) == 2
    assert [block[0].split() for block in blocks] == [["id:", jobs.crashed.id], ["id:", jobs.done.id]]
    assert "val/accuracy ↑ 0.7000" in blocks[1][4] and blocks[1][4].startswith("metric:")


@pytest.mark.parametrize("columns", WIDTHS)
def test_status_prints_paths_whole_and_every_metric(jobs, cli, columns):
    code, out = cli("status", jobs.done.id, "--address", jobs.address, columns=columns)
    lines = out.splitlines()
    assert code == 0
    for key, path in (("job dir", jobs.done.job_dir), ("best checkpoint", jobs.done.best_checkpoint),
                      ("last checkpoint", jobs.done.last_checkpoint)):
        assert len(path) > 80
        assert next(line for line in lines if line.startswith(key + ":")).split() == [*f"{key}:".split(), path]
    assert "val/accuracy ↑ 0.7000" in next(line for line in lines if line.startswith("primary metric:"))
    assert next(line for line in lines if line.startswith("train/loss:")).split()[-1] == "0.5000"
    assert next(line for line in lines if line.startswith("state:")).split()[-1] == "SUCCEEDED"


def test_status_of_a_failed_job_names_its_cause_and_error(jobs, cli):
    code, out = cli("status", jobs.crashed.id, "--address", jobs.address, columns=80)
    assert code == 0 and "FAILED (training)" in out
    assert f"error: {jobs.crashed.error.splitlines()[0]}" in out


@pytest.mark.parametrize("columns", WIDTHS)
def test_models_prints_every_model_id_whole(jobs, cli, columns):
    code, text = cli("models", "--framework", "transformers", "--json", "--address", jobs.address)
    ids = [m["name"] for m in json.loads(text)]
    assert max(map(len, ids)) > 40  # e.g. caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr
    code, out = cli("models", "--framework", "transformers", "--address", jobs.address, columns=columns)
    assert code == 0 and fits(out, columns) and "…" not in out
    assert [line.split()[1] for line in rows(out)] == ids
    header = out.splitlines()[0].split()
    assert header[:2] == ["framework", "model"]
    assert ("tags" in header) == (columns == 200)  # the first to go when the terminal is narrow


@pytest.mark.parametrize("columns", WIDTHS)
def test_repos_print_urls_whole_and_full_commits_where_they_fit(jobs, cli, columns):
    repos = {r.name: r for r in jobs.daemon.client.repos()}
    code, out = cli("repos", "list", "--address", jobs.address, columns=columns)
    assert code == 0 and fits(out, columns)
    for line in rows(out):
        name, *_, url = line.split()
        assert url == repos[name].url
        assert (repos[name].commit in line) == (columns == 200)  # the commit goes before a url is cut
    code, out = cli("repos", "show", "yolov7", "--address", jobs.address, columns=columns)
    assert out.splitlines()[0] == f"# yolov7 (shipped): {repos['yolov7'].url} @ {repos['yolov7'].commit}"
    assert "url:" in out  # then the spec, as YAML


@pytest.mark.parametrize("columns", WIDTHS)
def test_gc_prints_the_paths_it_would_free_whole(jobs, cli, columns):
    code, out = cli("gc", "--dry-run", "--job-days", "0.000001", "--env-days", "0", "--checkout-days", "0",
                    "--address", jobs.address, columns=columns)
    assert code == 0
    if len(jobs.done.job_dir) > columns:  # one removal per block of `key: value` lines
        paths = [line.split()[1] for line in out.splitlines() if line.startswith("path:")]
    else:
        assert fits(out, columns)
        paths = [line.split()[-1] for line in rows(out)[:-1]]
    assert sorted(paths) == sorted([jobs.done.job_dir, jobs.crashed.job_dir])
    assert out.splitlines()[-1].startswith("would free ") and out.splitlines()[-1].endswith("(2 item(s))")
    assert all(os.path.isdir(p) for p in paths)  # a dry run removes nothing


class EnvsClient:
    """Stands in for runner.client.Client where the in-process daemon builds no env: two envs."""

    def __init__(self, **options):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def envs(self):
        root = "/data/vy/envs"
        return [pb.EnvInfo(name="timm-3f9a0c1d2b4e", spec_name="timm", key="3f9a0c1d2b4e", size_bytes=3 << 30,
                           path=f"{root}/timm-3f9a0c1d2b4e", created_at=1.7e9, last_used_at=1.75e9,
                           requirements=["timm==1.0.31"]),
                pb.EnvInfo(name="repo-yolov7-a207844b1ce8-9c1e", spec_name="repo-yolov7", key="9c1e", size_bytes=5,
                           path=f"{root}/repo-yolov7-a207844b1ce8-9c1e", created_at=1.7e9, last_used_at=0)]


@pytest.mark.parametrize("columns", WIDTHS)
def test_envs_list_prints_names_and_paths_whole(monkeypatch, cli, columns):
    monkeypatch.setattr(runner.cli.commands, "Client", EnvsClient)
    code, out = cli("envs", "list", columns=columns)
    assert code == 0 and fits(out, columns)
    assert [(line.split()[0], line.split()[-1]) for line in rows(out)] == [(e.name, e.path) for e in EnvsClient().envs()]
    assert ("3072.0 MiB" in out) == (columns == 200)
