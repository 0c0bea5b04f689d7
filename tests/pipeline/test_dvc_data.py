"""Datasets under DVC: the repo's own setup, and add -> push -> pull with a real local remote."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from atr.data.synth import make_dataset

REPO = Path(__file__).resolve().parents[2]
DVC = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dvc")


def _run(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_repository_is_a_dvc_repo_with_a_default_local_remote() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / ".dvc" / "config")
    remote = cfg["core"]["remote"]
    url = cfg[f"'remote \"{remote}\"'"]["url"]
    # the default remote is a folder in the runtime root, relative so every clone has its own
    assert (REPO / ".dvc" / url).resolve() == REPO / "runtime" / "dvc-remote"
    pointer = yaml.safe_load((REPO / "data.dvc").read_text())
    assert pointer["outs"][0]["path"] == "data"
    assert pointer["outs"][0]["md5"].endswith(".dir")


def test_dataset_round_trips_through_a_local_remote(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    _run([DVC, "remote", "add", "-d", "local", str(tmp_path / "remote")], repo)
    make_dataset(repo / "data" / "synth" / "small", count=30, image_size=32, save_raw=True)
    before = pd.read_parquet(repo / "data/synth/small/manifest.parquet")
    _run([DVC, "add", "-q", "data"], repo)
    _run([DVC, "push", "-q"], repo)
    assert any((tmp_path / "remote").rglob("*"))
    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    _run([DVC, "pull", "-q"], repo)
    after = pd.read_parquet(repo / "data/synth/small/manifest.parquet")
    pd.testing.assert_frame_equal(before, after)
    assert len(list((repo / "data/synth/small").rglob("*.png"))) == 60


@pytest.mark.slow
def test_gold_set_regenerates_to_the_md5_in_data_dvc(tmp_path: Path) -> None:
    """A fresh clone has no DVC cache: `make data` rebuilds data/gold from its seed, and
    the rebuilt folder must be exactly the one data.dvc records."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["git", "init", "-q"], repo)
    _run([DVC, "init", "-q"], repo)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "atr"), "data", "synth", "preset=gold"],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    _run([DVC, "add", "-q", "data"], repo)
    rebuilt = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    recorded = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]
    assert (rebuilt["md5"], rebuilt["nfiles"]) == (recorded["md5"], recorded["nfiles"])
