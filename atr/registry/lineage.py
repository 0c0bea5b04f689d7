"""Lineage tags: which data (DVC md5, manifest hash) and which code (git commit) made a model.

The tags go on MLflow runs and model versions so a reviewer can trace any registered
model back to `git checkout <commit> && dvc checkout` state. Nothing here may fail a
training or registration: outside a git or DVC repository the tags read `unknown`.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import yaml

from atr.package.checksums import sha256_file

UNKNOWN = "unknown"
_MANIFEST = "manifest.parquet"


def lineage_tags(dataset_dir: str | Path, repo_dir: str | Path | None = None) -> dict[str, str]:
    """Tags describing the dataset folder and the code checkout (default: current directory)."""
    dataset = Path(dataset_dir).expanduser().resolve()
    tags: dict[str, str] = {"data.path": str(dataset)}
    tags.update(_dvc_tags(dataset))
    tags["data.manifest_sha256"] = _sha256_file(dataset / _MANIFEST)
    tags.update(git_tags(Path(repo_dir) if repo_dir else Path.cwd()))
    return tags


# --- data -------------------------------------------------------------------------------


def _dvc_tags(dataset: Path) -> dict[str, str]:
    if not dataset.is_dir():
        return {"data.dvc_md5": UNKNOWN, "data.dvc_md5_method": "missing"}
    recorded = _recorded_md5(dataset)
    if recorded:
        md5, dvc_file = recorded
        return {"data.dvc_md5": md5, "data.dvc_md5_method": f"dvc-file:{dvc_file}"}
    tags = {}
    # The dataset may sit inside a bigger tracked folder (data/gold inside data.dvc):
    # record that pointer too, because `dvc checkout` works on the tracked folder.
    parent = _tracking_ancestor(dataset)
    if parent:
        tags["data.dvc_tracked_by"] = parent[1]
        tags["data.dvc_tracked_md5"] = parent[0]
    try:
        tags["data.dvc_md5"] = dvc_directory_md5(dataset)
        tags["data.dvc_md5_method"] = "dvc-data"
    except Exception:  # lineage must never break a run; say how it was made
        tags["data.dvc_md5"] = fallback_directory_sha256(dataset)
        tags["data.dvc_md5_method"] = "sha256-manifest-and-files"
    return tags


def dvc_directory_md5(directory: Path) -> str:
    """The `md5: ....dir` value `dvc add <directory>` records, computed with DVC's own hasher."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs import MemoryFileSystem
    from dvc_objects.fs.local import LocalFileSystem

    staging = HashFileDB(MemoryFileSystem(), "memory://atr-lineage")
    _, _, obj = build(staging, str(directory), LocalFileSystem(), "md5", dry_run=True)
    return str(obj.hash_info.value)


def fallback_directory_sha256(directory: Path) -> str:
    """Deterministic digest of every file's relative path and content, used without dvc_data."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        digest.update(b"\0")
        digest.update(_sha256_file(path).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _recorded_md5(dataset: Path) -> tuple[str, str] | None:
    """md5 recorded for exactly this folder in `<folder>.dvc` or a dvc.lock above it."""
    for dvc_file in _dvc_files_above(dataset):
        for out_path, md5 in _outs(dvc_file):
            if out_path == dataset:
                return md5, str(dvc_file)
    return None


def _tracking_ancestor(dataset: Path) -> tuple[str, str] | None:
    for dvc_file in _dvc_files_above(dataset):
        for out_path, md5 in _outs(dvc_file):
            if out_path in dataset.parents:
                return md5, str(dvc_file)
    return None


def _dvc_files_above(dataset: Path) -> list[Path]:
    """`.dvc` files and `dvc.lock` in the folder and its ancestors, nearest first."""
    found = []
    for folder in [dataset, *dataset.parents]:
        if folder.is_dir():
            found += sorted(folder.glob("*.dvc")) + sorted(folder.glob("dvc.lock"))
            found += sorted(folder.glob("*/dvc.lock"))  # pipelines/dvc.lock beside data/
        if (folder / ".dvc").is_dir():  # the DVC repository root: stop climbing
            break
    return [f for f in found if f.is_file()]


def _outs(dvc_file: Path) -> list[tuple[Path, str]]:
    """(absolute out path, md5) pairs of a .dvc file or the outs of every dvc.lock stage."""
    try:
        doc = yaml.safe_load(dvc_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    entries = list(doc.get("outs") or [])
    for stage in (doc.get("stages") or {}).values():
        entries += list((stage or {}).get("outs") or [])
    base = dvc_file.parent
    pairs = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("path") and entry.get("md5"):
            pairs.append(((base / entry["path"]).resolve(), str(entry["md5"])))
    return pairs


def _sha256_file(path: Path) -> str:
    return sha256_file(path) if path.is_file() else UNKNOWN


# --- code -------------------------------------------------------------------------------


def git_tags(repo_dir: Path) -> dict[str, str]:
    """`git.commit` and `git.dirty` (tracked files changed) of the checkout holding repo_dir."""
    commit = _git(repo_dir, "rev-parse", "HEAD")
    if commit is None:
        return {"git.commit": UNKNOWN, "git.dirty": UNKNOWN}
    status = _git(repo_dir, "status", "--porcelain", "--untracked-files=no")
    dirty = UNKNOWN if status is None else str(bool(status)).lower()
    return {"git.commit": commit, "git.dirty": dirty}


def _git(repo_dir: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_dir), *args],
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
