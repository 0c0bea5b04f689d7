"""A copy of this checkout for end-to-end tests that run DVC and the `atr` CLI in it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from atr.archive.checkout import write_conf_blocks

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"

TINY = {
    "dataset": {"sources": [{"name": "synthetic", "kind": "simulator", "weight": 1,
                             "count": 360, "image_size": 64, "seed": 3,
                             "scanner": "parcel_160kv", "mix": "default",
                             "splits": {"train": 0.6, "val": 0.1, "calib": 0.2, "test": 0.1}}]},
    "prepare": {"frontline_batches": -1, "frontline_weight": 2},
    "train": {"experiment": "baseline", "max_epochs": 1, "seed": 0,
              "init_from": "models:/atr-test@champion", "init_version": None,
              "finetune_epochs": 1},
    # a tiny calibration set cannot support the production bound: relax it for the test
    "policy": {"leak_rate_target": 0.3, "confidence": 0.8, "threat_recall_target": 0.9,
               "min_threat_positives": 1, "on_insufficient": "triage"},
    "registry": {"model_name": "atr-test"},
}


def copy_checkout(dst: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
        text=True, check=True,
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)


def tiny_checkout(tmp_path: Path, params: dict | None = None) -> tuple[Path, dict[str, str]]:
    """A copy with the TINY pipeline params (or `params`), no dvc.lock and no data.dvc (a
    fresh copy has no DVC cache to check it out from), and an environment whose runtime is
    tmp_path/rt."""
    repo = tmp_path / "checkout"
    copy_checkout(repo)
    params = write_conf_blocks(repo, params or TINY)  # prepare + registry live in conf/
    (repo / "pipelines" / "params.yaml").write_text(yaml.safe_dump(params))
    (repo / "pipelines" / "dvc.lock").unlink(missing_ok=True)
    (repo / "data.dvc").unlink()
    # no MLFLOW_* from the test process: the runtime folder alone decides the stores
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # the copy's conf/ (its registry name, frontline weighting), as `atr pipeline` passes it
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", ATR_RUNTIME=str(tmp_path / "rt"),
               ATR_CONF_DIR=str(repo / "conf"))
    return repo, env
