"""A throwaway working copy of the repository for the archive's DVC pipeline.

`make pipeline` runs `dvc repro` in the repository itself, on whatever
`pipelines/params.yaml` names. The archive demo must not edit the user's params or
data/, so it copies the working tree (tracked files and untracked ones git does not
ignore: what `make pipeline` would see, uncommitted edits included) into its own
folder, gives it a params.yaml whose only source is the imported archive, and runs the
same pipeline there. The copy has no dvc.lock and no data.dvc (its DVC cache is empty;
`dvc add data` records the import afresh), like tests/repo_copy.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

PARAMS = Path("pipelines") / "params.yaml"


def copy_working_tree(repo: Path, dst: Path) -> Path:
    """Copy `repo`'s working tree (git ls-files -co --exclude-standard) to `dst`, git-init it."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise ValueError(f"archive.repo={repo}: not a git checkout of ATR "
                         f"({listed.stderr.strip()})")
    if not (repo / PARAMS).is_file():
        raise ValueError(f"archive.repo={repo}: no {PARAMS} (not the ATR repository?)")
    if dst.exists():
        shutil.rmtree(dst)
    for rel in filter(None, listed.stdout.split("\0")):
        src = repo / rel
        if src.is_file():  # deleted-but-tracked files are listed too
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    for stale in (dst / "pipelines" / "dvc.lock", dst / "data.dvc"):
        stale.unlink(missing_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def archive_params(repo: Path, source: str, import_path: str, train: dict[str, Any],
                   model_name: str) -> dict[str, Any]:
    """The repository's params with the import as the only source (weight 1), no frontline
    batches, `train` keys replaced and the archive's own registered model name; the
    policy targets stay the repository's (the production ones: conf/policy, not a param)."""
    params = yaml.safe_load((repo / PARAMS).read_text())
    params["dataset"] = {"sources": [{"name": source, "kind": "import", "weight": 1,
                                      "path": import_path}]}
    params["prepare"] = {**params.get("prepare", {}), "frontline_batches": 0}
    params["train"] = {**params.get("train", {}), **train}
    params["registry"] = {**params.get("registry", {}), "model_name": model_name}
    return params


# Blocks of a params dict whose one default lives in conf/, not in pipelines/params.yaml:
# a working copy gets them written into its own conf files (the stages' deps).
CONF_BLOCKS = {"prepare": (Path("conf") / "prepare.yaml", "prepare"),
               "registry": (Path("conf") / "registry" / "default.yaml", None),
               "policy": (Path("conf") / "policy" / "default.yaml", None)}


def write_conf_blocks(checkout: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Pop the CONF_BLOCKS out of `params` into `checkout`'s conf files (merged over the
    values there); returns what is left for pipelines/params.yaml."""
    params = dict(params)
    for block, (rel, key) in CONF_BLOCKS.items():
        if block not in params:
            continue
        path = checkout / rel
        conf = yaml.safe_load(path.read_text()) or {}
        target = conf.setdefault(key, {}) if key else conf
        target.update(params.pop(block))
        path.write_text("# written for a working copy (atr/archive/checkout.py)\n"
                        + yaml.safe_dump(conf, sort_keys=False))
    return params


def write_params(checkout: Path, params: dict[str, Any]) -> Path:
    path = checkout / PARAMS
    params = write_conf_blocks(checkout, params)
    path.write_text("# written by `atr archive-demo`: the imported archive is the only source\n"
                    + yaml.safe_dump(params, sort_keys=False))
    return path
