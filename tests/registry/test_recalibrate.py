"""`atr recalibrate` against a real MLflow registry and a real SQLite prediction store: a
champion, one scanner's frontline labels, a new version with the same model.onnx and a
per-scanner threshold, which serves nothing until a reviewer approves it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from atr.cli import main
from atr.package.fetch import fetch_package
from atr.package.manifest import write_package_manifest
from atr.policy.decision import Policy
from atr.policy.taxonomy import default_taxonomy
from atr.registry.approve import approve
from atr.registry.register import register_package
from atr.store.prediction_store import Feedback, Prediction, ensure_store

NAME = "atr-screening"
THREATS = default_taxonomy().threats
B = "scanner-b"  # the new scanner: the champion's calibration does not certify it


def _champion(registry_cfg, new_package) -> Path:
    """v1, approved; its calibration certifies scanner-a only (scanner-b is in safe mode)."""
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    policy = Policy.load(pkg / "policy.json")
    policy.calibration["scanners"] = {"scanner-a": {"n": 3000, "certified": True}}
    policy.warnings.append(f"scanner {B!r}: 12 non-low-risk calibration items ...")
    policy.save(pkg / "policy.json")
    write_package_manifest(pkg, "tiny")
    register_package(pkg, registry_cfg("register", f"register.eval_dir={pkg / 'artifacts/eval'}"))
    approve(registry_cfg("approve"), version=1, by="alice")
    return pkg


def _fill_store(url: str, leak_scores: list[float]) -> None:
    """scanner-b in safe mode under v1: 400 would-be CLEARs (8 audited; analysts labelled
    the lowest ones, leaks, and 343 others), 900 INSPECTs confirmed threats; 50 unlabelled
    CLEARs of scanner-a. Two more audits were drawn while audits were tightened, above the
    normal share: not in the random sample."""
    rng = np.random.default_rng(7)
    preds, feedback = [], []
    clean = {"paper_only": 1, "no_threat": 1, **dict.fromkeys(THREATS, 0)}

    def add(i: int, scanner: str, paper: float, threat: float, decision: str, reason: str,
            would_be: str, audit: bool = False, draw: dict | None = None) -> str:
        item = f"{scanner}-{i}"
        scores = {"paper_only": paper, **dict.fromkeys(THREATS, threat)}
        preds.append(Prediction(
            request_id=item, item_id=item, scanner_id=scanner, model_version="1",
            decision=decision, reason=reason, scores=scores, audit=audit,
            would_be={"decision": would_be, "reason": "paper_only", **(draw or {})},
            scanner_state="safe_mode" if scanner == B else "normal", clear_threshold=0.5))
        return item

    scores = np.sort(rng.uniform(0.53, 1.0, 400))
    scores[: len(leak_scores)] = leak_scores
    audited = set(range(49, 400, 50))  # the service's audits: opened, outcome keyed in
    extras = (150, 250)  # tightened audits above the normal share
    rest = [i for i in range(len(leak_scores), 400) if i not in audited and i not in extras]
    keyed = set(rng.choice(rest, 343, replace=False).tolist())  # analysts' share, at random
    tightened = {"audit_tightened": True, "audit_share": 0.5, "audit_normal_share": 0.02}
    for i, s in enumerate(scores):
        if i in audited:
            # one drawn below the normal share while tightened: still in the random sample
            draw = {**tightened, "audit_draw": 0.01} if i == 99 else None
            item = add(i, B, float(s), 0.05, "INSPECT", "audit", "CLEAR", audit=True,
                       draw=draw)
            feedback.append((item, clean, "inspection"))
            continue
        if i in extras:  # opened, clean, but not in the random sample: n stays 354
            item = add(i, B, float(s), 0.05, "INSPECT", "audit", "CLEAR", audit=True,
                       draw={**tightened, "audit_draw": 0.3})
            feedback.append((item, clean, "inspection"))
            continue
        item = add(i, B, float(s), 0.05, "REVIEW", "safe_mode", "CLEAR")
        if i < len(leak_scores):
            feedback.append((item, {**clean, "paper_only": 0}, "analyst"))
        elif i in keyed:
            feedback.append((item, clean, "analyst"))
    for i in range(400, 1300):
        item = add(i, B, 0.1, 0.9, "INSPECT", "threat:knife", "INSPECT")
        feedback.append((item, {**clean, "paper_only": 0, "no_threat": 0, "knife": 1},
                         "inspection"))
    for i in range(50):
        add(i, "scanner-a", 0.9, 0.05, "CLEAR", "paper_only", "CLEAR")
    sessions = ensure_store(url)
    with sessions() as session:
        session.add_all(preds)
        session.add_all([Feedback(item_id=item, labels=labels, source=source, who="frontline",
                                  at=datetime.now(UTC))
                         for item, labels, source in feedback])
        session.commit()


def test_recalibrate_registers_a_challenger_that_waits_for_approval(
        registry_cfg, new_package, runtime_overrides) -> None:
    pkg = _champion(registry_cfg, new_package)
    cfg = registry_cfg("recalibrate")
    leaks = [0.5, 0.505, 0.51]
    _fill_store(cfg.paths.prediction_db, leaks)
    out = Path(cfg.recalibrate.output)
    client = MlflowClient(cfg.paths.tracking_uri, cfg.paths.registry_uri)

    # Asking for more labels than there are: nothing registered, and the reason is given.
    assert main(["recalibrate", *runtime_overrides, "recalibrate.min_labels=1000"]) == 0
    refused = json.loads(out.read_text())
    assert refused["registered"] is False and "too few labels" in refused["reason"]
    # A window that ends before the line ran holds nothing (the store's own datetime filter).
    assert main(["recalibrate", *runtime_overrides, "recalibrate.until=2000-01-01T00:00:00Z",
                 f"recalibrate.scanners=[{B}]"]) == 0
    empty = json.loads(out.read_text())
    assert empty["registered"] is False and empty["scanners"][B]["window"]["M"] == 0
    assert len(client.search_model_versions(f"name='{NAME}'")) == 1

    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    # the window's own bound: these 1 300 items are too few for the default (future items)
    # bound, which tests/policy/test_recalibration.py covers
    assert main(["recalibrate", *runtime_overrides, f"recalibrate.since={since}",
                 "recalibrate.bound=clopper_pearson"]) == 0
    result = json.loads(out.read_text())
    assert result["registered"] is True and result["version"] == 2
    assert result["scanners"]["scanner-a"]["threshold"] is None  # no labels of its own
    b = result["scanners"][B]
    assert (b["window"]["n"], b["window"]["k"], b["window"]["M"], b["D"]) == (354, 3, 400, 903)
    assert b["at_threshold"]["k"] == 0 and b["at_threshold"]["M"] < 400
    threshold = b["threshold"]
    assert max(leaks) < threshold < 0.6 and b["leak_rate_upper"] <= 0.005

    v1, v2 = client.get_model_version(NAME, "1"), client.get_model_version(NAME, "2")
    assert v2.tags["sha256.model.onnx"] == v1.tags["sha256.model.onnx"]
    assert v2.tags["sha256.policy.json"] != v1.tags["sha256.policy.json"]
    assert v2.tags["atr.recalibrated_from"] == "1"
    assert v2.tags["atr.recalibration.scanners"] == B
    assert v2.tags["atr.recalibration.labels"] == "354"
    assert len(v2.tags["atr.recalibration.feedback_ids_sha256"]) == 64
    assert v2.tags["data.dvc_md5"] == v1.tags["data.dvc_md5"]  # the weights' lineage
    assert not any(k.startswith("eval.") for k in v2.tags)  # the gate has not run yet
    # Registered as a challenger only: v1 still serves, v2 waits for the gate and approval.
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"

    fetched = fetch_package(client, NAME, 2, Path(cfg.paths.root) / "check")
    policy = Policy.load(fetched.path / "policy.json")
    assert policy.scanner_clear_thresholds == {B: threshold}
    assert policy.clear_threshold == Policy.load(pkg / "policy.json").clear_threshold == 0.5
    coverage = policy.calibration["scanners"]
    assert coverage[B]["certified"] and coverage["scanner-a"]["certified"]
    lineage = policy.calibration["recalibration"]
    assert lineage["from_version"] == "1" and lineage["labels"] == {B: 354}
    assert lineage["scanners"][B]["D"] == 903 and lineage["scanners"][B]["grid"]["size"] > 1
    assert not any(w.startswith(f"scanner {B!r}: 12") for w in policy.warnings)
    # Between the two thresholds, scanner-b's item is no longer cleared, scanner-a's is.
    row = np.array([[(0.5 + threshold) / 2, *[0.05] * len(THREATS)]])
    assert [d.value for d in policy.decide(np.repeat(row, 2, 0), [B, "scanner-a"])[0]] == [
        "REVIEW", "CLEAR"]

    approve(registry_cfg("approve"), version=2, by="bob")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
