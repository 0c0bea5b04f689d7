"""`atr demo`, reduced profile: the whole closed loop on a copy of the repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers.repo_copy import BIN, tiny_checkout

REDUCED = ["demo.gold_count=150", "demo.items_a=120", "demo.drift_items=300", "demo.chunk=150",
           "demo.monitor_window=100", "demo.label_budget=300", "demo.items_c=120",
           "demo.image_size=64", "registry.model_name=atr-test"]


@pytest.mark.slow
def test_closed_loop_reduced_profile(tmp_path: Path) -> None:
    repo, env = tiny_checkout(tmp_path)  # the demo rebuilds data/ (gold set) itself
    done = subprocess.run([str(BIN / "atr"), "demo", *REDUCED], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    summary = json.loads((tmp_path / "rt" / "reports" / "demo" / "summary.json").read_text())
    assert (summary["v1"], summary["v2"]) == (1, 2)
    assert summary["swap_seconds"] >= 0  # the service switched to v2 by itself
    assert summary["drift_detected_after_items"] is not None  # a new scanner is noticed
    assert 0 < summary["frontline_labels"] <= 300
    stages = summary["stages"]
    assert stages["pre_drift"]["items"] == 120 and stages["recovered"]["items"] == 120
    for stage in stages.values():
        assert 0.0 <= stage["auto_clear_rate"] <= 1.0
        assert 0.0 <= stage["paper_only_clear_rate_at_target_leak"] <= 1.0
    assert summary["target_leak_rate"] == 0.005 and "recovery_gap_points_at_target_leak" in summary
    batches = list((repo / "data" / "frontline").iterdir())
    assert len(batches) == 1  # the labelled frontline batch went under data/ ...
    assert "frontline" in (repo / "data.dvc").read_text() or (repo / "data.dvc").is_file()
    # v2 was fine-tuned from the approved v1 (params.yaml train.init_from), v1 from scratch.
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'rt' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    init = {v: client.get_run(client.get_model_version("atr-test", str(v)).run_id)
            .data.tags.get("init_from") for v in (1, 2)}
    assert init == {1: "scratch", 2: "models:/atr-test/1"}
    html = (tmp_path / "rt" / "reports" / "demo" / "report.html").read_text()
    assert "data:image/png;base64," in html and "Gate of v2" in html
