"""`atr archive-demo` end to end on simulator data shaped like the real folders (no external
data in CI): an "archive" of dual-energy _lo/_hi TIFF pairs in class folders (HUMS's
layout) and a "new scanner" folder of single-energy 16-bit TIFFs (NIST's), through import
-> dvc repro -> gate -> approve -> serve -> replay -> monitor -> drift event."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
from helpers.real_formats import export_dataset
from helpers.repo_copy import BIN, REPO
from PIL import Image

from atr.data.manifest import read_dataset
from atr.data.synth import make_dataset
from atr.policy.decision import Policy


def single_energy_folder(out: Path, count: int) -> Path:
    """A letter scanner's high-energy layer as 16-bit TIFFs, plus a `_blank` file to skip."""
    ds = make_dataset(out.parent / "letters", count=count, image_size=192, seed=77,
                      scanner="letter_80kv", save_raw=True)
    out.mkdir(parents=True)
    dataset = read_dataset(ds)
    for k, row in enumerate(dataset.manifest.to_dict("records")):
        pair = np.asarray(Image.open(ds / row["raw"]))
        Image.fromarray(np.ascontiguousarray(pair[pair.shape[0] // 2:])).save(
            out / f"scan_{k}.tif")
    Image.fromarray(np.full((40, 50), 60000, np.uint16)).save(out / "scan_0_blank.tif")
    return out


@pytest.mark.slow
def test_archive_demo_registers_serves_and_flags_the_new_scanner(tmp_path: Path) -> None:
    scans = make_dataset(tmp_path / "scans", count=200, image_size=96, seed=21,
                         scanner="parcel_160kv", save_raw=True,
                         splits={"train": 0.5, "val": 0.2, "calib": 0.15, "test": 0.15})
    source, overrides = export_dataset(scans, "dual_energy_tiff", tmp_path / "hums")
    imports = [o for o in overrides if not o.startswith("importer.source=")]
    new_scanner = single_energy_folder(tmp_path / "nist", count=5)
    root, report = tmp_path / "root", tmp_path / "report"
    quoted = ",".join(f'"{o}"' for o in imports)
    cmd = [str(BIN / "atr"), "archive-demo", f"archive.hums={source}",
           f"archive.nist={new_scanner}", f"archive.repo={REPO}", f"archive.root={root}",
           f"archive.report_dir={report}", f"archive.import_overrides=[{quoted}]",
           "archive.train.max_epochs=2", "archive.replay.archive_items=100",
           "archive.replay.chunk=25", "archive.monitor.window_size=50",
           "archive.monitor.window_step=25", "archive.monitor.draws=50",
           "archive.new_scanner.crop=96", "archive.new_scanner.stride=40"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(PATH=f"{BIN}:{os.environ['PATH']}", ATR_RUNTIME=str(tmp_path / "rt"))
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"

    summary = json.loads((report / "summary.json").read_text())
    printed = (report / "summary.txt").read_text()
    assert printed in done.stdout

    # a registered version, approved as a simulation, is what the service decided with
    store = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    champion = client.get_model_version_by_alias("atr-archive", "champion")
    assert str(champion.version) == str(summary["model"]["version"])
    assert champion.tags["approval.mode"] == "auto-simulation"
    assert champion.tags["approved_by"] == "atr-archive-demo"
    assert champion.tags["gate.verdict"] == summary["model"]["gate_verdict"]

    # trained on the import alone (its own working copy's params), dual-energy, no_threat
    checkout = root / "checkout"
    info = json.loads((checkout / "artifacts" / "dataset" / "dataset.json").read_text())
    assert [(s["name"], s["kind"]) for s in info["sources"]] == [("hums", "import")]
    assert not (REPO / "data" / "imports" / "hums").exists()  # the repo is left alone

    # a small archive: triage only, said with what certifying CLEAR would take
    policy = Policy.load(checkout / "artifacts" / "model" / "policy.json")
    assert policy.triage_only and policy.low_risk == "no_threat"
    assert summary["policy"]["mode"] == "triage_only"
    assert summary["policy"]["more_items_to_certify"] > 0
    assert "TRIAGE ONLY" in printed and "more_items_to_certify" in printed

    # served decisions: the archive's held-out scans, each decided by the policy's rule
    with sqlite3.connect(root / "predictions" / "predictions.db") as conn:
        rows = conn.execute("SELECT scanner_id, decision, scores FROM predictions").fetchall()
        events = conn.execute("SELECT scanner_id, kind FROM drift_events").fetchall()
    archive_rows = [r for r in rows if r[0] == "hums-1"]
    assert len(archive_rows) == 100
    for _, decision, scores in archive_rows:
        s = json.loads(scores)
        decided, _ = policy.decide(np.array([[s[o] for o in policy.outputs]]))
        assert decision == str(decided[0]) and decision != "CLEAR"
    crops = read_dataset(Path(summary["new_scanner"]["dataset"])).manifest
    assert len(crops) == 5 * 16 and set(crops["scanner_id"]) == {"nist-1"}  # blank skipped
    assert len([r for r in rows if r[0] == "nist-1"]) == len(crops)

    # the new scanner raises a drift event, the archive's own scanner none
    assert {e[0] for e in events} == {"nist-1"}
    assert summary["drift_on_new_scanner"] and not summary["drift_on_archive_scanner"]
    assert summary["new_scanner"]["detected_after_items"] is not None
    assert summary["drift_thresholds"]["split"] == "calib"
