"""RepoRegistry: shipped plus user specs, persisted as files, listed and removed by name."""

from __future__ import annotations

import pytest
import yaml

from custom_repos import RepoRegistry, RepoSpecError, ShippedRepoError, UnknownRepoError


def write(path, data) -> str:
    path.write_text("# my comment\n" + yaml.safe_dump(data))
    return path


def test_shipped_specs_are_listed(tmp_path):
    registry = RepoRegistry(tmp_path / "specs")
    assert [(spec.name, kind) for spec, kind in registry.list()] == [("convnext", "shipped"), ("ppyoloe", "shipped"),
                                                                         ("yolov7", "shipped")]
    assert registry.get("yolov7").dataset_format == "yolo"
    assert not (tmp_path / "specs").exists()  # nothing written until a user adds a spec


def test_unknown_repo_lists_valid_names(tmp_path):
    with pytest.raises(UnknownRepoError) as info:
        RepoRegistry(tmp_path).get("yolo")
    assert str(info.value) == "Unknown repo 'yolo'. Valid: convnext, ppyoloe, yolov7"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_add_get_list_remove_and_persistence(tmp_path, spec_dict):
    user_dir = tmp_path / "home" / "repos" / "specs"
    registry = RepoRegistry(user_dir)
    source = write(tmp_path / "whatever-name.yaml", spec_dict(name="alpha", url=str(tmp_path)))
    spec = registry.add(source)
    assert spec.name == "alpha"
    stored = user_dir / "alpha.yaml"
    assert stored.read_text().startswith("# my comment\n")  # the user's text, kept as written
    assert [p.name for p in user_dir.iterdir()] == ["alpha.yaml"]  # no temp files left

    again = RepoRegistry(user_dir)  # a restarted daemon
    assert again.get("alpha") == spec
    assert [(s.name, kind) for s, kind in again.list()] == [
        ("alpha", "user"), ("convnext", "shipped"), ("ppyoloe", "shipped"), ("yolov7", "shipped")]

    # Re-adding the same name replaces it.
    registry.add(write(tmp_path / "v2.yaml", spec_dict(name="alpha", url=str(tmp_path), description="second")))
    assert again.get("alpha").description == "second"

    again.remove("alpha")
    assert not stored.exists()
    with pytest.raises(UnknownRepoError, match="Unknown repo 'alpha'. Valid: convnext, ppyoloe, yolov7"):
        registry.get("alpha")
    with pytest.raises(UnknownRepoError, match="Unknown user repo 'alpha'"):
        registry.remove("alpha")


def test_add_rejects_invalid_specs_and_writes_nothing(tmp_path, spec_dict):
    registry = RepoRegistry(tmp_path / "specs")
    bad = write(tmp_path / "bad.yaml", spec_dict(name="beta", command=["{python}", "{epoch}"]))
    with pytest.raises(RepoSpecError, match=r"^bad.yaml: command\[1\]: unknown placeholder"):
        registry.add(bad)
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("name: [unclosed\n")
    with pytest.raises(RepoSpecError, match="^syntax.yaml: line 2"):
        registry.add(syntax)
    assert not (tmp_path / "specs").exists() or not list((tmp_path / "specs").iterdir())


def test_shipped_names_cannot_be_shadowed_or_removed(tmp_path, shipped_dict):
    registry = RepoRegistry(tmp_path / "specs")
    data = shipped_dict("yolov7")
    data["commit"] = "b" * 40
    with pytest.raises(ShippedRepoError, match=r"name: 'yolov7' is a shipped repo spec .*\(e.g. 'yolov7-custom'\)"):
        registry.add(write(tmp_path / "yolov7.yaml", data))
    data["name"] = "yolov7-mine"
    assert registry.add(write(tmp_path / "mine.yaml", data)).commit == "b" * 40
    with pytest.raises(ShippedRepoError, match="cannot be removed"):
        registry.remove("convnext")


def test_broken_user_files_are_reported_not_listed(tmp_path, spec_dict, shipped_dict):
    user_dir = tmp_path / "specs"
    user_dir.mkdir()
    write(user_dir / "gamma.yaml", spec_dict(name="gamma", parser="no-such-parser"))
    write(user_dir / "delta.yaml", spec_dict(name="other"))           # name/file mismatch
    write(user_dir / "yolov7.yaml", shipped_dict("yolov7"))            # dropped in by hand
    write(user_dir / "ok.yaml", spec_dict(name="ok"))
    registry = RepoRegistry(user_dir)
    assert [s.name for s, kind in registry.list() if kind == "user"] == ["ok"]
    broken = registry.broken()
    assert len(broken) == 3
    assert any("gamma.yaml: parser: Unknown log parser" in b for b in broken)
    assert any("delta.yaml: name: 'other' does not match the file name" in b for b in broken)
    with pytest.raises(RepoSpecError, match="gamma.yaml: parser"):
        registry.get("gamma")
    assert registry.get("yolov7").commit.startswith("a207844b")  # the shipped one wins
    registry.remove("gamma")  # a broken spec can be removed by name
    assert len(registry.broken()) == 2
