"""A customs office's flow, no simulator in the training base: `atr data import` an archive
into data/imports/<name>, `dvc add data`, params with that single import source, `dvc repro`
-> a registered model whose policy is what the archive's calibration split allows (a small
archive: triage only, never CLEAR), which `atr evaluate evaluate.model=...` then scores."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml
from helpers.real_formats import export_dataset
from helpers.repo_copy import BIN, TINY, tiny_checkout

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset
from atr.policy.bounds import min_trials_for_zero_events

# The office's params: the simulator source removed, the production policy targets.
OFFICE = {**TINY,
          "dataset": {"sources": [{"name": "hums", "kind": "import", "weight": 1,
                                   "path": "data/imports/hums"}]},
          "policy": {"leak_rate_target": 0.005, "confidence": 0.95, "threat_recall_target": 0.95,
                     "min_threat_positives": 10, "on_insufficient": "triage"}}


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


@pytest.mark.slow
def test_imported_archive_alone_gives_a_registered_model(tmp_path: Path) -> None:
    repo, env = tiny_checkout(tmp_path, OFFICE)
    # the office's archive: simulated parcels exported as Pascal VOC (JPEG + XML, splits)
    scans = make_dataset(tmp_path / "scans", count=200, image_size=64, seed=21,
                         scanner="parcel_140kv")
    source, overrides = export_dataset(scans, "voc", tmp_path / "voc")
    # the README's form: importer.class_map='{Letter: document, ..., Gun: firearm, ...}'
    assert any(o.startswith("importer.class_map={") and "Gun: firearm" in o for o in overrides)
    _run([str(BIN / "atr"), "data", "import", *overrides, "importer.name=hums",
          "importer.scanner_id=hums-line-1"], repo, env)
    archive = repo / "data" / "imports" / "hums"
    _run([str(BIN / "dvc"), "add", "-q", "data"], repo, env)
    out = _run([str(BIN / "dvc"), "repro"], repo / "pipelines", env, timeout=900)
    for stage in ("synthesize", "prepare", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in out

    # trained on the archive alone: nothing simulated, every item from the import
    assert json.loads((repo / "artifacts" / "sources" / "index.json").read_text()) == {
        "sources": {}}
    info = json.loads((repo / "artifacts" / "dataset" / "dataset.json").read_text())
    imported = read_dataset(archive).manifest
    assert [(s["name"], s["kind"], s["items"]) for s in info["sources"]] == [
        ("hums", "import", len(imported))]
    assert set(read_dataset(repo / "artifacts" / "dataset").manifest.scanner_id) == {
        "hums-line-1"}

    registered = yaml.safe_load((repo / "artifacts" / "registered.json").read_text())
    store = f"sqlite:///{tmp_path / 'rt' / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version_by_alias("atr-test", "challenger")
    assert str(version.version) == str(registered["version"])

    # The policy is what the calibration split allows: far too few items that are not
    # paper-only for the 0.5 % bound at 95 % -> triage only (nothing CLEARed), not refused.
    calib = imported[imported.split == "calib"]
    assert (calib.paper_only == 0).sum() < min_trials_for_zero_events(0.005, 0.95)  # 598
    policy = json.loads((repo / "artifacts" / "model" / "policy.json").read_text())
    assert policy["mode"] == "triage_only" and policy["clear_threshold"] is None
    assert version.tags["sha256.policy.json"]

    # any registered version scores an imported dataset by its URI
    report = json.loads(_run([str(BIN / "atr"), "evaluate",
                              f"evaluate.model=models:/atr-test/{version.version}",
                              "evaluate.dataset=data/imports/hums",
                              f"evaluate.out_dir={tmp_path / 'report'}"], repo, env))
    assert report["auto_clear_rate"] == 0.0 and 0.0 <= report["macro_auroc"] <= 1.0
    scored = json.loads(Path(report["report"]).read_text())
    assert scored["policy"]["auto_clear_rate"] == 0.0

    # a re-imported archive, recorded with `dvc add data`, makes prepare (and after it the
    # rest) out of date: the import path is a dependency through data/
    _run([str(BIN / "atr"), "data", "import", *overrides, "importer.name=hums",
          "importer.scanner_id=hums-line-2", "importer.overwrite=true"], repo, env)
    _run([str(BIN / "dvc"), "add", "-q", "data"], repo, env)
    status = _run([str(BIN / "dvc"), "status", "--json"], repo / "pipelines", env)
    changed = json.loads(status)
    assert "prepare" in changed and "synthesize" not in changed
