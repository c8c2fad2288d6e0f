"""What a job on a node that shares nothing with the daemon takes (plan, job dir, checkout) and
sends back (its results), as the daemon and the node agent handle them."""

from __future__ import annotations

import json
import os
import zipfile
from io import BytesIO
from pathlib import Path

import pytest

from protos import visionyard_pb2 as pb
from runner.payload import node_agent
from runner.launch.ray import node_files
from runner.launch.ray.node_files import PathMap
from runner.launch.ray.uploads import UploadRefused, receive
from runner.settings import Paths


def test_paths_map_in_one_pass_and_only_as_whole_components():
    paths = PathMap({"/home/a/.visionyard": "/var/tmp/node", "/home/a/.visionyard/child-path": "/var/tmp/node/code/x",
                     "/var/tmp": "/never"})
    assert paths.text("/home/a/.visionyard/jobs/j1/job.json") == "/var/tmp/node/jobs/j1/job.json"
    assert paths.text("/home/a/.visionyard/child-path:/home/a/.visionyard/pycache") == \
        "/var/tmp/node/code/x:/var/tmp/node/pycache"  # the longest first; a result is never mapped again
    assert paths.text("/home/a/.visionyard2/x") == "/home/a/.visionyard2/x"  # another folder
    assert paths.text("train: '/home/a/.visionyard/jobs/j1/data'") == "train: '/var/tmp/node/jobs/j1/data'"
    assert paths.data(b"x=/home/a/.visionyard\n") == b"x=/var/tmp/node\n"


def _job_dir(tmp_path: Path, home: Path) -> Path:
    job_dir = home / "jobs" / "j1"
    (job_dir / "data" / "images").mkdir(parents=True)
    (job_dir / "checkpoints").mkdir()
    dataset = tmp_path / "dataset" / "a.jpg"
    dataset.parent.mkdir()
    dataset.write_bytes(b"\xff\xd8 jpeg")
    (job_dir / "data" / "images" / "a.jpg").symlink_to(dataset)  # a dataset file: kept as a link
    (job_dir / "data" / "labels").symlink_to(job_dir / "checkpoints")  # a link into the job dir: mapped
    (job_dir / "data.yaml").write_text(f"train: {job_dir}/data/images\n")
    (job_dir / "output.log").write_text("the daemon's log\n")
    (job_dir / "launch.json").write_text("{}")
    (job_dir / "weights.bin").write_bytes(b"\x00" * 100 + str(job_dir).encode())
    plan = {"format": 1, "paths": {str(home): "/var/tmp/node"}, "checkout_source": None}
    node_files.write_plan(Paths(home), "j1", plan)
    return job_dir


def test_the_job_dir_travels_with_its_paths_mapped_and_its_links_kept(tmp_path):
    home = tmp_path / "home"
    _job_dir(tmp_path, home)
    target = tmp_path / "node"
    node_agent.extract(node_files.fetch(Paths(home), "j1", "inputs"), target)
    assert (target / "data.yaml").read_text() == "train: /var/tmp/node/jobs/j1/data/images\n"
    assert (target / "data" / "images" / "a.jpg").read_bytes() == b"\xff\xd8 jpeg"  # through the kept link
    assert (target / "data" / "images" / "a.jpg").is_symlink()
    assert str((target / "data" / "labels").readlink()) == "/var/tmp/node/jobs/j1/checkpoints"
    assert (target / "weights.bin").read_bytes().endswith(b"/var/tmp/node/jobs/j1")
    assert not (target / "output.log").exists() and not (target / "launch.json").exists()
    assert (target / "checkpoints").is_dir()
    assert json.loads(b"".join(node_files.fetch(Paths(home), "j1", "plan")))["format"] == 1
    with pytest.raises(node_files.FetchRefused, match="no repo checkout"):
        list(node_files.fetch(Paths(home), "j1", "checkout"))  # an adapter job has none


def test_a_checkout_travels_without_its_git_folder(tmp_path):
    paths = Paths(tmp_path / "home")
    checkout = paths.repos / "checkouts" / "repo-0123456789ab"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref")
    (checkout / "train.py").write_text("print('hi')\n" * 200_000)  # more than one chunk
    node_files.write_plan(paths, "j1", {"paths": {"/x": "/y"}, "checkout_source": str(checkout)})
    chunks = list(node_files.fetch(paths, "j1", "checkout"))
    assert len(chunks) > 1 and all(len(c) <= node_files.CHUNK for c in chunks)
    node_agent.extract(iter(chunks), tmp_path / "out")
    assert (tmp_path / "out" / "train.py").read_text() == (checkout / "train.py").read_text()
    assert not (tmp_path / "out" / ".git").exists()


def _upload(files: dict[str, bytes], chunk: int = 3):
    for name, data in files.items():
        parts = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
        for i, part in enumerate(parts):
            yield pb.FileChunk(path=name if i == 0 else "", data=part, last=i == len(parts) - 1)


def test_an_upload_lands_in_the_job_dir_each_file_whole(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    files = {"checkpoints/best.pt": b"weights" * 10, "output/run/empty": b"", "reports.journal": b"\x00\x00\x00\x00"}
    assert receive(job_dir, _upload(files)) == (3, len(b"weights" * 10) + 4)
    assert {p: (job_dir / p).read_bytes() for p in files} == files
    with pytest.raises(UploadRefused, match="without its last chunk"):
        receive(job_dir, iter([pb.FileChunk(path="output/a.bin", data=b"12"),
                               pb.FileChunk(path="output/b.bin", data=b"3", last=True)]))
    assert not (job_dir / "output" / "a.bin").exists()
    assert [p for p in job_dir.rglob("*.upload")] == []  # no partial file left


def test_the_exit_record_is_checked_and_written_anew(tmp_path):
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    sent = {"code": 0, "cancelled": False, "time": 1.5e9, "note": "x" * 100, "pid": 4}
    receive(job_dir, _upload({"exit.json": json.dumps(sent).encode()}, chunk=40))
    assert json.loads((job_dir / "exit.json").read_text()) == {"code": 0, "signal": None, "cancelled": False,
                                                               "lost": False, "time": 1.5e9}
    lost = {"code": None, "signal": 15, "cancelled": False, "lost": True, "time": 1.5e9}
    receive(job_dir, _upload({"exit.json": json.dumps(lost).encode()}, chunk=40))
    assert json.loads((job_dir / "exit.json").read_text()) == lost  # the job was lost on its node, not cancelled
    receive(job_dir, _upload({"exit.json": json.dumps(sent).encode()}, chunk=40))
    for forged in (b"[]", b"not json", b'{"code": "0"}', b'{"code": true}', b'{"code": 1, "signal": 9}',
                   b'{"code": null, "signal": 999}', b'{"code": 0, "cancelled": "yes"}', b'{"code": 0, "lost": 1}', b'{"code": 300}',
                   b'{"code": 0, "pad": "' + b"x" * 5000 + b'"}'):
        with pytest.raises(UploadRefused, match="exit.json"):
            receive(job_dir, _upload({"exit.json": forged}, chunk=1000))
        assert json.loads((job_dir / "exit.json").read_text())["code"] == 0  # the record before stays
    assert [p.name for p in job_dir.iterdir()] == ["exit.json"]


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "checkpoints/link/x", "checkpoints/link/new/x",
                                  "env/bin/python", "", "checkpoints/../../escape", "output/link"])
def test_an_upload_never_writes_outside_the_job_dir(tmp_path, path):
    job_dir = tmp_path / "job"
    (job_dir / "checkpoints").mkdir(parents=True)
    (job_dir / "output").mkdir()
    (job_dir / "checkpoints" / "link").symlink_to(tmp_path)
    (job_dir / "output" / "link").symlink_to(tmp_path / "escape")
    chunks = iter([pb.FileChunk(path=path or "", data=b"x", last=True)])
    with pytest.raises(UploadRefused):
        receive(job_dir, chunks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job"]
    assert not Path("/etc/passwd").read_bytes().startswith(b"x")


def test_what_the_node_sends_back_ends_with_the_exit_record(tmp_path):
    job_dir = tmp_path / "job"
    for name in ("checkpoints/last.pt", "output/run/model_1.bin", "exit.json", "reports.journal", "data/x.jpg"):
        (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (job_dir / name).write_text(name)
    (job_dir / "checkpoints" / "dataset").symlink_to(tmp_path)
    files = node_agent.results(job_dir, {"upload": ["checkpoints", "output"]})
    assert files == ["checkpoints/last.pt", "output/run/model_1.bin", "reports.journal", "exit.json"]


def test_the_node_package_holds_the_agent_its_env_manager_and_the_child_code():
    names = set(zipfile.ZipFile(BytesIO(node_files.code_package())).namelist())
    assert {"visionyard_node/__main__.py", "visionyard_node/supervisor.py", "visionyard_node/lib/envs/manager.py",
            "visionyard_node/lib/filelock/__init__.py", "visionyard_node/child/adapters/entrypoint.py",
            "visionyard_node/child/protos/visionyard_pb2.py", "visionyard_node/shims/sitecustomize.py"} <= names
    assert not any("__pycache__" in n for n in names)
    assert node_files.code_package() == node_files.code_package()  # same bytes, same package name


def test_only_an_earlier_jobs_files_of_the_home_go_with_a_job(tmp_path):
    from runner.launch.ray.backend import RayLauncher
    from runner.settings import Paths

    paths = Paths(tmp_path / "home")
    checkpoint = paths.jobs / "j0" / "checkpoints" / "last.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    (paths.home / "auth-token").write_text("the daemon's secret")
    launcher = RayLauncher("http://127.0.0.1:9", paths, store=None, node_home="/var/tmp/node")
    assert launcher.home_files({"resume": str(checkpoint), "weights": str(paths.home / "auth-token")}) == \
        ["jobs/j0/checkpoints/last.pt"]
    assert launcher.home_files({"weights": f"{paths.jobs}/../auth-token", "resume": None}) == []
    assert launcher.home_files({"weights": str(paths.jobs / "gone.pt")}) == []
    (paths.jobs / "link.pt").symlink_to(paths.home / "auth-token")
    assert launcher.home_files({"weights": str(paths.jobs / "link.pt")}) == []


def test_a_node_makes_the_work_tree_from_its_checkout_and_sends_back_only_what_the_run_made_there(tmp_path):
    """The node's working tree of a repo job: the checkout's files linked (read-only at the source), and of
    that folder only the files the run wrote go back to the daemon."""
    checkout = tmp_path / "checkouts" / "r-abc"
    (checkout / "imagenet").mkdir(parents=True)
    (checkout / "imagenet" / "main.py").write_text("print()")
    (checkout / ".git").mkdir()
    job_dir = tmp_path / "job"
    node_agent.link_tree(checkout, job_dir / "repo")
    assert (job_dir / "repo" / "imagenet" / "main.py").samefile(checkout / "imagenet" / "main.py")
    assert not (job_dir / "repo" / ".git").exists()
    assert not os.access(checkout / "imagenet" / "main.py", os.W_OK) or os.geteuid() == 0  # root writes anyway
    assert (checkout / "imagenet" / "main.py").stat().st_mode & 0o222 == 0
    (job_dir / "repo" / "checkpoint.pth.tar").write_text("weights")  # what the run wrote in its cwd
    files = node_agent.results(job_dir, {"upload": ["repo"], "upload_made_only": ["repo"]})
    assert files == ["repo/checkpoint.pth.tar"]
