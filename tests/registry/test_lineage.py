"""Lineage tags inside and outside git / DVC repositories (real git, real DVC hashing)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from atr.registry.lineage import UNKNOWN, dvc_directory_md5, lineage_tags

# What `dvc add d` recorded (dvc 3.67) for d/x.txt = "a\n" and d/sub/y.bin = "bb\n":
# checked once against the real CLI, pinned here so the test needs no `dvc` run.
DVC_ADD_MD5 = "238675a2c4bacdaeefeba2b79ef84a9d.dir"


def _small_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "x.txt").write_text("a\n")
    (root / "sub" / "y.bin").write_text("bb\n")
    return root


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        check=True, capture_output=True, text=True,
    )
    return done.stdout.strip()


def test_outside_git_and_dvc_tags_say_unknown(tmp_path: Path) -> None:
    dataset = _small_tree(tmp_path / "d")
    tags = lineage_tags(dataset, repo_dir=tmp_path)
    assert tags["git.commit"] == UNKNOWN and tags["git.dirty"] == UNKNOWN
    assert tags["data.manifest_sha256"] == UNKNOWN  # no manifest.parquet here
    # Not tracked by any .dvc file: computed with DVC's own hasher, same value as `dvc add`.
    assert tags["data.dvc_md5"] == DVC_ADD_MD5 == dvc_directory_md5(dataset)
    assert tags["data.dvc_md5_method"] == "dvc-data"
    missing = lineage_tags(tmp_path / "nowhere", repo_dir=tmp_path)
    assert missing["data.dvc_md5"] == UNKNOWN


def test_inside_git_repo_with_dvc_pointer(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)  # marks the DVC root (as `dvc init` would)
    data = _small_tree(repo / "data")
    (data / "manifest.parquet").write_bytes(b"not really parquet")
    (repo / "data.dvc").write_text("outs:\n- md5: feedbeef.dir\n  path: data\n")
    (repo / "README").write_text("x\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "README", "data.dvc")
    _git(repo, "commit", "-q", "-m", "init")
    commit = _git(repo, "rev-parse", "HEAD")

    tags = lineage_tags(data, repo_dir=repo)
    assert tags["git.commit"] == commit and tags["git.dirty"] == "false"
    # Read from the pointer file, not recomputed: that is what `dvc checkout` restores.
    assert tags["data.dvc_md5"] == "feedbeef.dir"
    assert tags["data.dvc_md5_method"].startswith("dvc-file:")
    assert len(tags["data.manifest_sha256"]) == 64

    # A sub-folder of the tracked folder: its own md5, plus the tracked folder's pointer.
    sub = lineage_tags(data / "sub", repo_dir=repo)
    assert sub["data.dvc_tracked_md5"] == "feedbeef.dir"
    assert sub["data.dvc_md5"].endswith(".dir") and sub["data.dvc_md5"] != "feedbeef.dir"

    (repo / "README").write_text("changed\n")
    assert lineage_tags(data, repo_dir=repo)["git.dirty"] == "true"
