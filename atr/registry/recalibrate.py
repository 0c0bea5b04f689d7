"""`atr recalibrate`: certify a per-scanner clear threshold for the current champion on that
scanner's frontline labels (atr.policy.recalibration) and register it as a new version,
without retraining: the champion's files with a new policy.json, lineage to the labels.

The new version gets `@challenger`, as `atr register` gives; nothing else runs here: `atr
gate` and `atr approve VERSION --by NAME` stay the reviewer's steps, so a recalibrated
policy is never served before a person approves it. No scanner certified: nothing is
registered, and the result says why for each scanner. See docs/recalibration.md.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import open_dict
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from atr.package.fetch import fetch_verified, resolve_version
from atr.package.layout import MANIFEST_FILE, POLICY_FILE
from atr.package.manifest import atomic_write_text, write_package_manifest
from atr.policy.audit import in_random_sample
from atr.policy.decision import Policy
from atr.policy.line_rules import CLEAR, IMPLAUSIBLE_PREFIX, SAFE_MODE
from atr.policy.recalibration import certify_scanner_threshold, label_sample
from atr.registry import lineage
from atr.registry.register import CHALLENGER, register_package
from atr.registry.tracking import cfg_value, configure, model_name
from atr.store.prediction_store import Feedback, Prediction, open_store

TAG = "atr.recalibration."
FROM_TAG = "atr.recalibrated_from"


@dataclasses.dataclass
class ScannerWindow:
    """One scanner's items decided by the champion in the window, one row per item."""

    scores: np.ndarray
    would_clear: np.ndarray
    sample: np.ndarray  # in the label sample (atr.policy.recalibration.label_sample)
    low_risk: np.ndarray  # truth: 1 / 0 / NaN
    threat: np.ndarray
    state: list[str]  # normal | safe_mode: the labelling design's stratum
    feedback_ids: list[int]
    first: str | None
    last: str | None


def read_window(session: Session, scanner: str, version: str, policy: Policy,
                since: datetime | None, until: datetime | None) -> ScannerWindow:
    query = select(Prediction).where(Prediction.scanner_id == scanner,
                                     Prediction.model_version == version)
    if since is not None:
        query = query.where(Prediction.created_at >= since)
    if until is not None:
        query = query.where(Prediction.created_at < until)
    items: dict[str, Prediction] = {}
    for p in session.scalars(query.order_by(Prediction.created_at, Prediction.id)):
        if p.scores and all(isinstance(p.scores.get(o), int | float) for o in policy.outputs):
            items[p.item_id] = p  # a resent item: its last decision (same audit draw)
    rows = list(items.values())
    labels: dict[str, dict[str, int]] = {}
    analyst: set[str] = set()
    ids: list[int] = []
    keys = sorted(items)
    for start in range(0, len(keys), 500):  # SQLite caps bound parameters per query
        query_fb = (select(Feedback).where(Feedback.item_id.in_(keys[start:start + 500]))
                    .order_by(Feedback.at, Feedback.id))
        for fb in session.scalars(query_fb):
            labels[fb.item_id] = dict(fb.labels or {})  # newest verdict wins (a correction)
            ids.append(fb.id)
            if fb.source == "analyst":
                analyst.add(fb.item_id)
    # The policy's own decision; rows from before `would_be` was stored: what was sent.
    would_be = [p.would_be.get("decision") if p.would_be else p.decision for p in rows]
    would_clear = np.array([w == CLEAR and not p.reason.startswith(IMPLAUSIBLE_PREFIX)
                            for w, p in zip(would_be, rows, strict=True)], dtype=bool)
    sample = label_sample(would_clear, [in_random_sample(bool(p.audit), p.would_be)
                                        for p in rows],
                          [p.reason == SAFE_MODE for p in rows],
                          [p.item_id in analyst for p in rows])
    truths = [labels.get(p.item_id, {}) for p in rows]
    stamps = [_utc(p.created_at).isoformat() for p in rows if p.created_at is not None]
    return ScannerWindow(
        scores=np.array([[float(p.scores[o]) for o in policy.outputs] for p in rows],
                        dtype=np.float64).reshape(len(rows), len(policy.outputs)),
        would_clear=would_clear, sample=sample,
        low_risk=np.array([float(t[policy.low_risk]) if policy.low_risk in t else np.nan
                           for t in truths]),
        threat=np.array([_any_threat(t, policy.threats) for t in truths]),
        state=[p.scanner_state or "normal" for p in rows], feedback_ids=sorted(ids),
        first=min(stamps, default=None), last=max(stamps, default=None))


def recalibrated_policy(policy: Policy, certified: dict[str, tuple[float, dict[str, Any]]],
                        record: dict[str, Any]) -> Policy:
    """The champion's policy with each certified scanner's threshold and evidence."""
    calibration = copy.deepcopy(policy.calibration)
    coverage = calibration.get("scanners")
    for scanner, (threshold, evidence) in certified.items():
        # Only where per-scanner coverage is recorded: without it the policy speaks for its
        # whole calibration mix, and one entry would leave every other scanner uncovered.
        if coverage:
            coverage[scanner] = {**(coverage.get(scanner) or {}), "certified": True,
                                 "source": "recalibration", "threshold": threshold,
                                 "leak_rate_upper": evidence["leak_rate_upper"]}
    calibration["recalibration"] = {**record, "scanners": {s: e for s, (_, e) in
                                                           certified.items()},
                                    "previous": calibration.get("recalibration")}
    warnings = [w for w in policy.warnings
                if not any(w.startswith(f"scanner {s!r}:") for s in certified)]
    warnings += [f"scanner {s!r}: clear threshold {t:.4g} certified on its own frontline "
                 f"labels (recalibration of v{record['from_version']}, {e['n']} labels, "
                 f"leak bound {e['leak_rate_upper']:.3%})" for s, (t, e) in certified.items()]
    return dataclasses.replace(
        policy, calibration=calibration, warnings=warnings,
        scanner_clear_thresholds={**policy.scanner_clear_thresholds,
                                  **{s: t for s, (t, _) in certified.items()}})


def write_package(source: Path, dest: Path, policy: Policy, from_version: str) -> Path:
    """The champion's files with the new policy.json and a package.json hashing them."""
    shutil.copytree(source, dest)
    policy.save(dest / POLICY_FILE)
    old = json.loads((source / MANIFEST_FILE).read_text())
    doc = write_package_manifest(dest, f"{old.get('name', source.name)}-recalibrated")
    doc["recalibrated_from"] = {"version": from_version, "package": old.get("name")}
    if "calibration_data" in old:  # the split the global threshold was calibrated on
        doc["calibration_data"] = old["calibration_data"]
    atomic_write_text(dest / MANIFEST_FILE, json.dumps(doc, indent=2) + "\n")
    return dest


def run(cfg: Any) -> dict[str, Any]:
    """Job for `atr recalibrate` (conf/recalibrate.yaml)."""
    rc = cfg.recalibrate
    client = configure(cfg)
    name = model_name(cfg)
    champion = resolve_version(client, name, str(rc.champion))
    if champion is None:
        raise LookupError(f"model {name} has no version or alias {rc.champion!r} to recalibrate")
    version = str(champion.version)
    package = fetch_verified(client, champion, str(rc.download_dir)).path
    policy = Policy.load(package / POLICY_FILE)
    since, until = _when(rc.since), _when(rc.until)
    with open_store(str(rc.store))() as session:
        wanted = [str(s) for s in rc.scanners or []] or _scanners(session, version)
        windows = {s: read_window(session, s, version, policy, since, until) for s in wanted}
    results = {s: certify_scanner_threshold(
        w.scores, w.would_clear, w.sample, w.low_risk, w.threat, policy,
        cfg_value(cfg, "recalibrate.target"), cfg_value(cfg, "recalibrate.confidence"),
        scanner=s, strata=w.state, grid_size=int(rc.grid_size), min_labels=int(rc.min_labels),
        max_threat_cleared=int(rc.max_threat_cleared), bound=str(rc.bound))
        for s, w in windows.items()}
    certified = {s: (t, e) for s, (t, e) in results.items() if t is not None}
    summary: dict[str, Any] = {
        "registered": False, "name": name, "from_version": int(version), "version": None,
        "scanners": {s: _brief(e) for s, (_, e) in results.items()},
    }
    if not certified:
        summary["reason"] = ("no scanner certified: " + "; ".join(
            f"{s}: {e['reason']}" for s, (_, e) in results.items()) if results else
            f"no prediction of v{version} in the store for the scanners asked")
        return _written(rc, summary)
    ids = sorted({i for s in certified for i in windows[s].feedback_ids})
    record = {
        "from_version": version, "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": make_url(str(rc.store)).render_as_string(hide_password=True),
        "window": {s: {"since": _iso(since) or windows[s].first, "until": _iso(until)
                       or windows[s].last} for s in certified},
        "labels": {s: e["n"] for s, (_, e) in certified.items()},
        "feedback_rows": len(ids),
        "feedback_ids_sha256": hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest(),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = Path(str(rc.output_dir)) / f"{name}-v{version}-{stamp}-{uuid.uuid4().hex[:6]}"
    new = write_package(package, out / "package",
                        recalibrated_policy(policy, certified, record), version)
    reg_cfg = copy.deepcopy(cfg)
    with open_dict(reg_cfg):  # no eval.* tags: the version has no evaluation of its own yet
        reg_cfg.register = {"eval_dir": str(out / "no-evaluation"),
                            "dataset_dir": str(cfg_value(cfg, "paths.data_dir", "data"))}
    registered = register_package(new, reg_cfg)
    tags = {k: v for k, v in champion.tags.items() if k.startswith(("data.", "git."))}
    tags.update({FROM_TAG: version, TAG + "scanners": ",".join(sorted(certified)),
                 TAG + "labels": str(sum(record["labels"].values())),
                 TAG + "feedback_rows": str(len(ids)),
                 TAG + "feedback_ids_sha256": record["feedback_ids_sha256"],
                 TAG + "store": record["store"], TAG + "bound": str(rc.bound),
                 TAG + "code_commit": lineage.git_tags(Path.cwd())["git.commit"]})
    for s, (t, e) in certified.items():
        tags[f"{TAG}threshold.{s}"] = f"{t:.6g}"
        tags[f"{TAG}leak_rate_upper.{s}"] = f"{e['leak_rate_upper']:.6g}"
        tags[f"{TAG}window.{s}"] = f"{record['window'][s]['since']}..{record['window'][s]['until']}"
    for key, value in tags.items():
        client.set_model_version_tag(name, registered.version, key, value)
    summary.update(registered=True, version=int(registered.version), alias=CHALLENGER,
                   package=str(new), next=f"atr gate; then atr approve {registered.version} "
                                           "--by NAME")
    return _written(rc, summary)


def _scanners(session: Session, version: str) -> list[str]:
    query = (select(Prediction.scanner_id).distinct()
             .where(Prediction.model_version == version).order_by(Prediction.scanner_id))
    return [s for s in session.scalars(query) if s]


def _brief(evidence: dict[str, Any]) -> dict[str, Any]:
    """A scanner's result: counts of the whole window, and at the threshold certified."""
    at = evidence.get("chosen")
    return {"threshold": evidence.get("threshold"), "D": evidence["D"],
            "leak_rate_upper": evidence.get("leak_rate_upper"),
            "window": {k: evidence[k] for k in ("M", "n", "k", "pending")},
            "at_threshold": {k: at[k] for k in ("M", "n", "k")} if at else None,
            "reason": evidence.get("reason")}


def _any_threat(labels: dict[str, int], threats: Sequence[str]) -> float:
    if any(labels.get(t) == 1 for t in threats):
        return 1.0
    return 0.0 if threats and all(t in labels for t in threats) else float("nan")


def _when(value: Any) -> datetime | None:
    return None if value is None or str(value) == "" else _utc(datetime.fromisoformat(str(value)))


def _utc(moment: datetime) -> datetime:
    # SQLite hands stored UTC datetimes back without their offset.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _written(rc: Any, summary: dict[str, Any]) -> dict[str, Any]:
    out = Path(str(rc.output))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
