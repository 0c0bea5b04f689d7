"""`dvc repro` runs prepare -> train -> evaluate -> register from a copy of the repo, a
second run (`atr pipeline`: init_version pinned, dvc add, dvc repro) with nothing changed
runs nothing, and moving @champion makes the train stage (alone) out of date."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers.repo_copy import BIN, tiny_checkout


@pytest.mark.slow
def test_dvc_repro_end_to_end_then_nothing_to_do(tmp_path: Path) -> None:
    repo, env = tiny_checkout(tmp_path)
    (repo / "data" / "frontline").mkdir(parents=True)  # data/: no frontline batch yet
    first = subprocess.run([str(BIN / "dvc"), "repro"], cwd=repo / "pipelines", env=env,
                           capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    for stage in ("synthesize", "prepare", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in first.stdout
    registered = yaml.safe_load((repo / "artifacts" / "registered.json").read_text())
    assert registered["name"] == "atr-test"
    store = f"sqlite:///{tmp_path / 'rt' / 'mlflow' / 'mlflow.db'}"
    # both URIs explicit: an earlier test may have set a process-wide registry URI
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version_by_alias("atr-test", "challenger")
    assert str(version.version) == str(registered["version"])
    assert version.tags["sha256.model.onnx"]
    # the default params: one simulator source, rendered by synthesize, assembled by prepare
    info = json.loads((repo / "artifacts" / "dataset" / "dataset.json").read_text())
    assert [(s["name"], s["kind"], s["items"]) for s in info["sources"]] == [
        ("synthetic", "simulator", 360)]
    lock = yaml.safe_load((repo / "pipelines" / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"synthesize", "prepare", "train", "evaluate", "register"}

    # no champion yet: init_version stays null, data/ is recorded as it is: nothing to run
    second = subprocess.run([str(BIN / "atr"), "pipeline"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert json.loads(second.stdout[second.stdout.index("{"):])["stages"] == []
    assert len(client.search_model_versions("name='atr-test'")) == 1

    # the champion moves: pinned before dvc runs, only training (and what follows) re-runs
    from atr.config import compose
    from atr.retrain import pin_init_version

    client.set_registered_model_alias("atr-test", "champion", version.version)
    cfg = compose("retrain", [f"paths.root={tmp_path / 'rt'}"])
    assert pin_init_version(cfg, repo) == f"models:/atr-test/{version.version}"
    status = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=repo / "pipelines",
                            env=env, capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stderr
    stale = json.loads(status.stdout)
    assert set(stale) == {"train"}, stale
    assert "train.init_version" in json.dumps(stale["train"])
