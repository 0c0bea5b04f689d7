"""What the line saw: latency percentiles and decisions vs the simulator's truth.

Rates follow the field's screening vocabulary (docs/ARCHITECTURE.md). Low risk is the served
model's definition (`low_risk`: paper_only or no_threat, its first output, read from the
scores it answers with), judged on the simulator's complete truth:
- auto_clear_rate: share of answered items CLEARed (released unseen);
- low_risk_clear_rate: share of low-risk items CLEARed (the benefit);
  paper_only_clear_rate: share of paper-only items CLEARed (the same under paper_only);
- leaks: items not low risk CLEARed (the risk); leak_rate over the items not low risk;
- threats_cleared: items with a threat CLEARed (the worst leak);
- threat_recall_inspect: share of threat items sent to physical INSPECTion;
- analyst_load: share of items sent to an image analyst (REVIEW);
- audits / audit_share: would-be CLEARs the service sent to INSPECT as random audits, and
  their share of the would-be CLEARs the line can see (CLEAR + audit + safe_mode answers);
- safe_mode: would-be CLEARs held back because the scanner was in safe mode;
  implausible: items whose image failed a plausibility check;
- leak_rate_upper, threats_cleared_share(_upper): one-sided 95 % Clopper–Pearson bounds;
- clear_rate_at_leak: the model's ranking at a leak rate, whatever the policy does:
  share of low-risk (and of paper-only) items whose clear score beats all but the allowed
  share of the items not low risk (the threshold set on the block's own truth, as an
  oracle would).
Records without the low-risk fields (older ones, benchmarks) count `paper_only` as low risk.
Items whose request failed are counted as errors and left out of the rates: the service
(fail-safe) never got to decide them, the sorter would hold them for a human.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from atr.line.parcels import Parcel
from atr.line.sender import Shot
from atr.policy.bounds import clopper_pearson
from atr.policy.taxonomy import LOW_RISK_DEFINITIONS, Taxonomy

PERCENTILES = (50, 90, 99)
ERROR = "ERROR"


def record(parcel: Parcel, shot: Shot, taxonomy: Taxonomy) -> dict[str, Any]:
    """One row per item for the demo's plots: when, what, what the service said, truth."""
    body = shot.body if isinstance(shot.body, dict) else {}
    model = body.get("model") or {}
    scores = (body.get("scores") or {}) if shot.ok else {}
    low_risk = served_low_risk(scores, taxonomy)
    return {
        "t_s": round(shot.due_s, 4),
        "item_id": parcel.item_id,
        "scanner_id": parcel.scanner_id,
        "phase": parcel.phase,
        "decision": body.get("decision", ERROR) if shot.ok else ERROR,
        # the clear output's score: the served model's low-risk output
        "clear_score": scores.get(low_risk) if shot.ok else None,
        "reason": body.get("reason") if shot.ok else shot.error,
        "paper_only": parcel.paper_only,
        "low_risk": low_risk,
        "low_risk_item": parcel.low_risk_truth(low_risk, taxonomy),
        "threats": parcel.threats(taxonomy),
        "latency_ms": round(shot.latency_ms, 3),
        "service_latency_ms": body.get("latency_ms"),
        "model_version": None if model.get("version") is None else str(model["version"]),
        "status": shot.status,
        # where the evidence is (REVIEW / INSPECT only): the analyst view draws it
        **({"localisation": body["localisation"]} if shot.ok and body.get("localisation")
           else {}),
        **({"source_item": parcel.source_item} if parcel.source_item else {}),
    }


def served_low_risk(scores: dict[str, Any], taxonomy: Taxonomy) -> str:
    """The served model's low-risk definition: the one its scores name (a model has one, and
    the taxonomy reserves both names), else the line's taxonomy (an unanswered item)."""
    return next((d for d in LOW_RISK_DEFINITIONS if d in scores), taxonomy.low_risk)


def _low(r: dict[str, Any]) -> int:
    return int(r.get("low_risk_item", r["paper_only"]))


def _definitions(records: Sequence[dict[str, Any]]) -> str | None:
    """The low-risk definition(s) the block's answers were decided under ("a+b" if mixed)."""
    seen = sorted({str(r.get("low_risk", "paper_only")) for r in records})
    return "+".join(seen) if seen else None


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    if not latencies_ms:
        return {**{f"p{p}": None for p in PERCENTILES}, "max": None, "mean": None}
    arr = np.asarray(latencies_ms, dtype=np.float64)
    out: dict[str, float | None] = {
        f"p{p}": round(float(np.percentile(arr, p)), 3) for p in PERCENTILES}
    out["max"] = round(float(arr.max()), 3)
    out["mean"] = round(float(arr.mean()), 3)
    return out


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def truth_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Decisions vs truth over answered records (decision != ERROR)."""
    done = [r for r in records if r["decision"] != ERROR]
    cleared = [r for r in done if r["decision"] == "CLEAR"]
    paper = [r for r in done if r["paper_only"]]
    low = [r for r in done if _low(r)]
    threat = [r for r in done if r["threats"]]
    leaks = sum(1 for r in cleared if not _low(r))
    return {
        "low_risk": _definitions(done),
        "decisions": dict(Counter(r["decision"] for r in records)),
        "low_risk_items": len(low),
        "paper_only_items": len(paper),
        "threat_items": len(threat),
        "auto_clear_rate": _rate(len(cleared), len(done)),
        "low_risk_clear_rate": _rate(sum(1 for r in low if r["decision"] == "CLEAR"), len(low)),
        "paper_only_clear_rate": _rate(sum(1 for r in paper if r["decision"] == "CLEAR"),
                                       len(paper)),
        "leaks": leaks,
        "leak_rate": _rate(leaks, len(done) - len(low)),
        "threats_cleared": sum(1 for r in threat if r["decision"] == "CLEAR"),
        "threat_recall_inspect": _rate(sum(1 for r in threat if r["decision"] == "INSPECT"),
                                       len(threat)),
        "analyst_load": _rate(sum(1 for r in done if r["decision"] == "REVIEW"), len(done)),
        "inspect_rate": _rate(sum(1 for r in done if r["decision"] == "INSPECT"), len(done)),
        **line_rule_counts(done, leaks, len(done) - len(low), len(threat)),
    }


def line_rule_counts(done: Sequence[dict[str, Any]], leaks: int, not_low: int,
                     threat_items: int) -> dict[str, Any]:
    """What the service's own rules did (from the answers' reasons), and the bounds."""
    reasons = Counter(str(r.get("reason")) for r in done)
    audits, held = reasons.get("audit", 0), reasons.get("safe_mode", 0)
    cleared = sum(1 for r in done if r["decision"] == "CLEAR")
    threats_cleared = sum(1 for r in done if r["threats"] and r["decision"] == "CLEAR")
    return {
        "audits": audits,
        "audit_share": _rate(audits, audits + held + cleared),
        "safe_mode": held,
        "implausible": sum(n for k, n in reasons.items() if k.startswith("image_implausible")),
        "leak_rate_upper": clopper_pearson(leaks, not_low).upper if not_low else None,
        "threats_cleared_share": _rate(threats_cleared, threat_items),
        "threats_cleared_share_upper": clopper_pearson(threats_cleared, threat_items).upper
        if threat_items else None,
    }


def clear_rate_at_leak(records: Sequence[dict[str, Any]], leak_rate: float) -> dict[str, Any]:
    """Low-risk (and paper-only) items cleared at the threshold that lets through at most
    `leak_rate` of the items not low risk of these records (answered, scored ones).

    A policy's own threshold mixes two things a drift can break: how well the model ranks
    items, and whether a threshold calibrated elsewhere still holds the leak target. This
    separates the first: it is the auto-clear rate at the target leak rate.
    """
    scored = [r for r in records if r["decision"] != ERROR and r.get("clear_score") is not None]
    low = np.array([r["clear_score"] for r in scored if _low(r)], dtype=np.float64)
    paper = np.array([r["clear_score"] for r in scored if r["paper_only"]], dtype=np.float64)
    other = np.sort([r["clear_score"] for r in scored if not _low(r)])[::-1]
    allowed = int(np.floor(leak_rate * len(other)))
    threshold = None
    if len(other) and (len(low) or len(paper)):
        threshold = float(other[allowed]) if allowed < len(other) else -np.inf

    def over(values: np.ndarray) -> float | None:
        return None if threshold is None or not len(values) else float((values > threshold).mean())

    # non_paper_items: the old name of the count of items not low risk (the bar's base).
    return {"leak_rate": leak_rate, "low_risk": _definitions(scored),
            "low_risk_clear_rate": over(low), "paper_only_clear_rate": over(paper),
            "threshold": threshold, "low_risk_items": int(len(low)),
            "paper_only_items": int(len(paper)), "non_paper_items": int(len(other)),
            "leaks_allowed": allowed}


def block_summary(records: Sequence[dict[str, Any]], shots: Sequence[Shot],
                  target_leak_rate: float | None = None) -> dict[str, Any]:
    """Counts, throughput, latency and truth metrics for one set of items (a phase or all)."""
    ok = [s for s in shots if s.ok]
    # Throughput over the block's own span: first send to last answer.
    span = (max(s.done_s for s in shots) - min(s.sent_s for s in shots)) if shots else 0.0
    return {
        "count": len(records),
        "answered": len(ok),
        "errors": len(records) - len(ok),
        "span_s": round(span, 3),
        "throughput_per_s": round(len(ok) / span, 2) if span > 0 else None,
        "latency_ms": latency_summary([s.latency_ms for s in ok]),
        "service_latency_ms": latency_summary(
            [float(r["service_latency_ms"]) for r in records
             if r["decision"] != ERROR and r["service_latency_ms"] is not None]),
        "model_versions": dict(Counter(str(r["model_version"]) for r in records
                                       if r["decision"] != ERROR)),
        **truth_metrics(records),
        "at_target_leak": None if target_leak_rate is None
        else clear_rate_at_leak(records, target_leak_rate),
    }


def schedule_lag_ms(shots: Sequence[Shot]) -> float:
    """Worst delay between a request's due time and its send: the client's own health
    (a large lag means the client, not the service, limited the offered load)."""
    return round(max(((s.sent_s - s.due_s) * 1000.0 for s in shots), default=0.0), 3)
