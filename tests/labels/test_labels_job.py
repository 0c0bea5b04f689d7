"""`atr labels export|import|batch` through the CLI's config, and DVC tracking of a batch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from labels_fixtures import CONFIDENT, Line

from atr.config import compose
from atr.data.manifest import read_dataset
from atr.labels import job as labels_job
from atr.store.image_store import ImageStore
from atr.store.prediction_store import ensure_store

DVC = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "dvc")


def _cfg(tmp_path: Path, data_dir: Path, *extra: str):
    return compose("labels", [f"paths.root={tmp_path / 'runtime'}", f"paths.data_dir={data_dir}",
                              *extra])


def _line(cfg) -> Line:
    return Line(ensure_store(cfg.paths.prediction_db), ImageStore(cfg.paths.image_store))


def test_batch_job(tmp_path: Path) -> None:
    # export/import go through a real Label Studio: tests/labels/test_labelstudio_server.py
    cfg = _cfg(tmp_path, tmp_path / "data")
    line = _line(cfg)
    line.decide("a", decision="REVIEW", scores={**CONFIDENT, "paper_only": 0.5})
    line.decide("b", decision="REVIEW")
    line.decide("c")
    for item in ("a", "b"):
        line.verdict(item, {"book": 1, "paper_only": 1}, source="analyst",
                     who="labelstudio-user:5")
    line.verdict("c", {"lithium_battery": 1, "electronics": 1})

    done = labels_job.batch(cfg)
    assert done["items"] == 3 and "dvc" not in done
    ds = read_dataset(done["batch"])
    assert Path(done["batch"]).parent == tmp_path / "data" / "frontline"
    metas = {r.item_id: json.loads(r.meta) for r in ds.manifest.itertuples()}
    assert metas["a"]["labelled_by"] == "labelstudio-user:5" and metas["c"]["label_source"] == (
        "inspection")
    assert labels_job.batch(cfg)["batch"] is None


def test_batch_is_dvc_added_in_a_dvc_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for cmd in (["git", "init", "-q"], [DVC, "init", "-q"]):
        subprocess.run(cmd, cwd=repo, check=True, capture_output=True, timeout=60)
    cfg = _cfg(tmp_path, repo / "data", "labels.dvc_add=true")
    line = _line(cfg)
    line.decide("z")
    line.verdict("z", {"document": 1, "paper_only": 1})
    done = labels_job.batch(cfg)
    assert done["dvc"].startswith("added data.dvc")
    out = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    assert out["path"] == "data" and out["nfiles"] == 3  # dataset.json, manifest, one image
    assert "/data" in (repo / ".gitignore").read_text()


def test_dvc_add_is_skipped_outside_a_dvc_repo(tmp_path: Path) -> None:
    assert labels_job.dvc_add(tmp_path / "data").startswith("skipped")
