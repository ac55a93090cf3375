"""`custody import dvc`: a real DVC repository, built with git and dvc over several commits, imported and
compared with what ``dvc checkout`` puts on disk at each commit (DVC itself is the oracle)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import Cli, write_tree

from mlcustody.errors import UsageError
from mlcustody.storage import snapshot
from mlcustody.workspace.facade import Workspace
from mlcustody.workspace.import_dvc import import_dvc

DVC = Path(sys.executable).parent / "dvc"
pytestmark = pytest.mark.skipif(not DVC.exists() or shutil.which("git") is None, reason="needs dvc and git")

STAGES = {
    "stages": {
        "train": {
            "cmd": "sh train.sh",
            "deps": ["train.sh", "data/raw"],
            "params": ["lr"],
            "outs": ["model.bin"],
        }
    }
}


def _env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GIT_", "XDG_"))}
    return keep | {
        "HOME": str(home),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        "GIT_AUTHOR_NAME": "Ada",
        "GIT_AUTHOR_EMAIL": "ada@example.org",
        "GIT_COMMITTER_NAME": "Ada",
        "GIT_COMMITTER_EMAIL": "ada@example.org",
    }


def build_repo(repo: Path) -> list[str]:
    """Three commits: raw data added and a stage run; one raw file changed; a param changed. Returns them."""
    env = _env(repo.parent / "home")
    (repo.parent / "home").mkdir(parents=True, exist_ok=True)

    def sh(*args: str) -> str:
        return subprocess.run(args, cwd=repo, env=env, check=True, capture_output=True, text=True).stdout

    def commit(message: str) -> str:
        sh("git", "add", "-A")
        sh("git", "commit", "-q", "-m", message)
        return sh("git", "rev-parse", "HEAD").strip()

    repo.mkdir(parents=True)
    sh("git", "init", "-q")
    sh(str(DVC), "init", "-q")
    sh(str(DVC), "config", "core.analytics", "false")
    write_tree(repo, {"data/raw/a.txt": "alpha\n", "data/raw/b.txt": "beta\n", "data/raw/sub/c.txt": "gamma\n"})
    write_tree(repo, {"train.sh": "cat data/raw/a.txt data/raw/b.txt > model.bin\n", "params.yaml": "lr: 0.1\n"})
    (repo / "dvc.yaml").write_text(yaml.safe_dump(STAGES))
    sh(str(DVC), "add", "-q", "data/raw")
    sh(str(DVC), "repro", "-q")
    commits = [commit("raw data and a model")]
    (repo / "data/raw/b.txt").write_text("beta, fixed\n")
    sh(str(DVC), "add", "-q", "data/raw")
    sh(str(DVC), "repro", "-q")
    commits.append(commit("fix b"))
    (repo / "params.yaml").write_text("lr: 0.2\n")
    sh(str(DVC), "repro", "-q")
    commits.append(commit("lower the learning rate"))
    return commits


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    return tmp_path / "dvc-repo", build_repo(tmp_path / "dvc-repo")


def _at(repo: Path, commit: str, home: Path) -> Callable[[str], Path]:
    """Check out ``commit`` with git and its data with dvc; the path of a tracked thing there."""
    env = _env(home)
    subprocess.run(["git", "checkout", "-q", commit], cwd=repo, env=env, check=True)
    subprocess.run([str(DVC), "checkout", "-q", "--force"], cwd=repo, env=env, check=True, capture_output=True)
    return lambda rel: repo / rel


def _md5_at(repo: Path, commit: str, path: str) -> str:
    text = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=repo, check=True, capture_output=True).stdout
    doc: dict[str, Any] = yaml.safe_load(text)
    return str(doc["outs"][0]["md5"])


def test_every_commit_imports_as_dvc_checks_it_out(
    make_workspace: Callable[..., Workspace], repo: tuple[Path, list[str]], tmp_path: Path
) -> None:
    root, commits = repo
    ws = make_workspace()
    report = import_dvc(ws, root)
    assert report.commits == 3 and report.unmapped == []
    assert report.imported["runs"] == 3  # the stage changed in every commit (data, then data, then a param)
    versions = {(v.name, v.meta["dvc"]["md5"]): v for v in ws.listing(all_versions=True) if "dvc" in v.meta}
    for commit in commits:
        path_at = _at(root, commit, tmp_path / "home")
        raw = versions[("data/raw", _md5_at(root, commit, "data/raw.dvc"))]
        assert raw.digest == snapshot.take(path_at("data/raw")).digest  # the bytes dvc checks out
        assert raw.type == "dataset" and raw.file_count == 3
        model_lock = yaml.safe_load(path_at("dvc.lock").read_text())["stages"]["train"]
        model = versions[("model.bin", model_lock["outs"][0]["md5"])]
        assert model.digest == snapshot.take(path_at("model.bin")).digest
    assert len({v.digest for (name, _), v in versions.items() if name == "data/raw"}) == 2  # two distinct contents

    runs = [ws.run(run_id).run for run_id in report.runs]
    assert [r.tags["custody.import.commit"] for r in runs] == commits
    assert [r.params for r in runs] == [{"lr": 0.1}, {"lr": 0.1}, {"lr": 0.2}]
    assert all(r.start.command == ["sh", "-c", "sh train.sh"] and r.status == "finished" for r in runs)
    last = runs[-1]
    assert {io.path for io in last.files("input")} == {"train.sh", "data/raw"}  # the script came from git
    assert [io.path for io in last.files("output")] == ["model.bin"]
    assert not ws.verify().problems


def test_second_import_adds_nothing(make_workspace: Callable[..., Workspace], repo: tuple[Path, list[str]]) -> None:
    root, _ = repo
    ws = make_workspace()
    first = import_dvc(ws, root)
    events = len(ws.log())
    second = import_dvc(ws, root)
    assert second.runs == [] and second.versions == [] and len(ws.log()) == events
    assert second.skipped["runs"] == first.imported["runs"]
    assert not +second.imported  # no count of anything added
    assert second.skipped["versions"] == 2  # the two contents of data/raw.dvc; stages are skipped whole


def test_missing_cache_objects_are_imported_digest_only(
    make_workspace: Callable[..., Workspace], repo: tuple[Path, list[str]]
) -> None:
    root, commits = repo
    md5 = _md5_at(root, commits[0], "data/raw.dvc").removesuffix(".dir")
    (root / ".dvc/cache/files/md5" / md5[:2] / (md5[2:] + ".dir")).unlink()
    ws = make_workspace()
    report = import_dvc(ws, root)
    [missing] = report.unmapped
    assert missing.item == f"data/raw md5:{md5}.dir" and "digest-only" in missing.reason
    first_run = ws.run(report.runs[0]).run
    assert "data/raw" not in {io.path for io in first_run.files("input")}
    assert md5 in first_run.tags["custody.import.digest_only"]
    assert "data/raw" in {io.path for io in ws.run(report.runs[1]).run.files("input")}  # later ones are whole


def test_a_local_remote_supplies_what_the_cache_lacks(
    make_workspace: Callable[..., Workspace], repo: tuple[Path, list[str]]
) -> None:
    root, commits = repo
    env = _env(root.parent / "home")
    subprocess.run(
        [str(DVC), "remote", "add", "-d", "store", str(root.parent / "remote")], cwd=root, env=env, check=True
    )
    for commit in commits:  # push what each commit tracks (older commits' configs name no remote)
        subprocess.run(["git", "checkout", "-q", commit], cwd=root, env=env, check=True)
        subprocess.run([str(DVC), "push", "-q", "-r", "store"], cwd=root, env=env, check=True, capture_output=True)
    shutil.rmtree(root / ".dvc" / "cache")
    report = import_dvc(make_workspace(), root)
    assert report.unmapped == [] and report.imported["runs"] == 3


def test_not_a_dvc_repository(make_workspace: Callable[..., Workspace], tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a DVC repository"):
        import_dvc(make_workspace(), tmp_path)


def test_cli_import_dvc_json(cli: Cli, tmp_path: Path) -> None:
    build_repo(tmp_path / "dvc-repo")
    cli("init")
    doc = cli.json("import", "dvc", str(tmp_path / "dvc-repo"))
    assert doc["commits"] == 3 and doc["imported"]["runs"] == 3 and doc["unmapped"] == []
    _, err = cli("import", "dvc", str(tmp_path), code=2)
    assert "not a DVC repository" in err and len(err.strip().splitlines()) == 1
