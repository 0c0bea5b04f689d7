"""`atr demo`, reduced profile: the whole closed loop on a copy of the repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.repo_copy import BIN, tiny_checkout

# demo_profile=full: the tiny checkout's params.yaml as it is (no quick-profile overlay)
REDUCED = ["demo_profile=full", "demo.gold_count=150", "demo.items_a=120",
           "demo.drift_items=300", "demo.chunk=150", "demo.monitor_window=100",
           "demo.label_budget=300", "demo.items_c=120", "demo.image_size=64",
           "registry.model_name=atr-test"]


@pytest.mark.slow
def test_closed_loop_reduced_profile(tmp_path: Path) -> None:
    repo, env = tiny_checkout(tmp_path)  # the demo rebuilds data/ (gold set) itself
    params_before = (repo / "pipelines" / "params.yaml").read_text()
    done = subprocess.run([str(BIN / "atr"), "demo", *REDUCED], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    summary = json.loads((tmp_path / "rt" / "reports" / "demo" / "summary.json").read_text())
    assert (summary["v1"], summary["v2"]) == (1, 2)
    # the pinned init_version is restored: the committed params stay as they were
    assert (repo / "pipelines" / "params.yaml").read_text() == params_before
    from atr.demo_progress import DEMO_STAGES

    assert set(summary["stage_seconds"]) == set(DEMO_STAGES)  # every stage timed, by name
    assert "[2/10] v1: DVC pipeline" in done.stdout
    assert summary["swap_seconds"] >= 0  # the service switched to v2 by itself
    assert summary["drift_detected_after_items"] is not None  # a new scanner is noticed
    assert 0 < summary["frontline_labels"] <= 300
    stages = summary["stages"]
    assert stages["pre_drift"]["items"] == 120 and stages["recovered"]["items"] == 120
    for stage in stages.values():
        assert 0.0 <= stage["auto_clear_rate"] <= 1.0
        assert 0.0 <= stage["paper_only_clear_rate_at_target_leak"] <= 1.0
    assert summary["target_leak_rate"] == 0.005 and "recovery_gap_points_at_target_leak" in summary
    # the line's rules ran: the new scanner, which v1's calibration does not certify, was
    # held in safe mode (no CLEAR of it on v1), and the run cleared no threat item
    safety = summary["safety"]
    on_v1 = [st for st in safety["scanners"]["parcel_140kv"]["stages"] if st["versions"] == ["1"]]
    assert on_v1 and all(st["auto_clear_rate"] == 0 for st in on_v1)
    assert safety["threats_cleared"] == 0
    assert set(summary["recalibration"]) >= {"registered", "reason"}
    batches = list((repo / "data" / "frontline").iterdir())
    assert len(batches) == 1  # the labelled frontline batch went under data/ ...
    written = summary["frontline_batch"]  # what `atr labels batch` returned to the demo
    assert Path(written["batch"]).name == batches[0].name and written["items"] > 0
    # ... and the retrain's `dvc add data` recorded data/ as it is now, batch included:
    # data.dvc's md5 is the one DVC computes for the folder (tiny_checkout deleted the
    # original data.dvc, so the file exists only because the demo wrote it).
    from atr.registry.lineage import dvc_directory_md5

    tracked = yaml.safe_load((repo / "data.dvc").read_text())["outs"]
    assert [(o["path"], o["md5"]) for o in tracked] == [("data", dvc_directory_md5(repo / "data"))]
    # v2 was fine-tuned from the approved v1 (params.yaml train.init_from), v1 from scratch.
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'rt' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    init = {v: client.get_run(client.get_model_version("atr-test", str(v)).run_id)
            .data.tags.get("init_from") for v in (1, 2)}
    assert init == {1: "scratch", 2: "models:/atr-test/1"}
    html = (tmp_path / "rt" / "reports" / "demo" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Gate of v2" in html
