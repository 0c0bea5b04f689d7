"""`atr line` against a real uvicorn `atr serve` on loopback with a real MLflow store:
counts, latency percentiles, per-phase truth metrics, feedback stored, rate honoured."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.decisions import as_response, assert_served_decision
from helpers.service import TEST_KEYS, Server
from helpers.stores import store_rows

from atr.config import compose
from atr.data.synth import item_seed
from atr.line.feedback import choose
from atr.line.plan import load_mix
from atr.line.run import run, simulate
from atr.policy.taxonomy import default_taxonomy
from atr.xray import ClassMix, XraySimulator, load_profile

SEED = 1000  # conf/line.yaml's default


def line_cfg(url: str, *extra: str):
    return compose("line", [f"line.url={url}", "line.image_size=64", "line.render_workers=1",
                            "line.ready_timeout_s=20", *TEST_KEYS.line_overrides(), *extra])


def feedback_rows(server: Server) -> dict[str, dict]:
    return {r["item_id"]: {"source": r["source"], "who": r["who"],
                           "labels": json.loads(r["labels"])}
            for r in store_rows(server, "feedback")}


def expected_truth(block: list[dict]) -> dict:
    """The screening rates recomputed straight from the records (independent of the code)."""
    done = [r for r in block if r["decision"] != "ERROR"]
    paper = [r for r in done if r["paper_only"]]
    nonpaper = [r for r in done if not r["paper_only"]]
    threat = [r for r in done if r["threats"]]

    def share(rows, decision):
        return sum(r["decision"] == decision for r in rows) / len(rows) if rows else None

    return {"auto_clear_rate": share(done, "CLEAR"),
            "paper_only_clear_rate": share(paper, "CLEAR"),
            "leaks": sum(r["decision"] == "CLEAR" for r in nonpaper),
            "leak_rate": share(nonpaper, "CLEAR"),
            "threats_cleared": sum(r["decision"] == "CLEAR" for r in threat),
            "threat_recall_inspect": share(threat, "INSPECT"),
            "analyst_load": share(done, "REVIEW"),
            "paper_only_items": len(paper), "threat_items": len(threat)}


def test_open_loop_drift_drill_with_feedback(line_service, tmp_path: Path) -> None:
    rate, per_phase = 25.0, 20
    out = tmp_path / "line.json"
    summary = simulate(line_cfg(
        line_service.url, f"line.rate={rate}", "line.item_prefix=open",
        f"line.phases=[{{scanner: parcel_160kv, count: {per_phase}}},"
        f"{{scanner: parcel_140kv, mix: concealment, count: {per_phase}}}]",
        "line.feedback=true", f"line.out={out}"))
    records = summary["records"]
    n = 2 * per_phase

    # counts: every item answered once, by the champion, in line order
    assert summary["mode"] == "open-loop" and summary["count"] == n == len(records)
    assert summary["overall"]["answered"] == n and summary["overall"]["errors"] == 0
    assert [r["item_id"] for r in records] == [f"open-{i:06d}" for i in range(n)]
    assert [r["phase"] for r in records] == [0] * per_phase + [1] * per_phase
    assert {r["scanner_id"] for r in records[per_phase:]} == {"parcel_140kv"}
    assert summary["overall"]["model_versions"] == {"1": n}

    # the service stored each decision the line received
    rows = [row for row in store_rows(line_service) if row["item_id"].startswith("open-")]
    assert {row["item_id"]: row["decision"] for row in rows} == {
        r["item_id"]: r["decision"] for r in records}
    for row in rows:  # ... and that decision is the served policy's, of the stored scores
        assert_served_decision(as_response(row), line_service.registry)

    # the truth is the simulator's: re-render two parcels of the second phase
    sim = XraySimulator(load_profile("parcel_140kv"), default_taxonomy(),
                        ClassMix.from_dict(load_mix("concealment")), 64)
    for i in (per_phase, n - 1):
        item = sim.render(item_seed(SEED, i))
        assert records[i]["paper_only"] == item.paper_only
        assert records[i]["threats"] == [t for t in default_taxonomy().threats if item.labels[t]]

    # latency percentiles and per-phase truth metrics, recomputed from the records
    lat = np.array([r["latency_ms"] for r in records])
    for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert summary["overall"]["latency_ms"][key] == pytest.approx(np.percentile(lat, q),
                                                                      abs=0.01)
    assert summary["overall"]["latency_ms"]["max"] == pytest.approx(lat.max(), abs=0.01)
    for phase in summary["phases"]:
        block = [r for r in records if r["phase"] == phase["phase"]]
        assert phase["count"] == per_phase
        for key, value in expected_truth(block).items():
            assert phase[key] == pytest.approx(value), key
        # at a 0.5 % leak rate 20 items allow no leak: the bar is the best non-paper score
        # the service returned, whatever the policy decided
        at = phase["at_target_leak"]
        bar = max(r["clear_score"] for r in block if not r["paper_only"])
        paper = [r["clear_score"] for r in block if r["paper_only"]]
        assert at["leak_rate"] == 0.005 and at["leaks_allowed"] == 0
        assert at["threshold"] == pytest.approx(bar)
        assert at["paper_only_clear_rate"] == (
            None if not paper else pytest.approx(sum(s > bar for s in paper) / len(paper)))
    # latency runs from the due time, so it can only exceed what the service measured itself
    assert all(r["latency_ms"] + 1.0 >= r["service_latency_ms"] for r in records)

    # open-loop schedule honoured: item i due at i/rate, the run lasts about n/rate
    assert [r["t_s"] for r in records] == pytest.approx([i / rate for i in range(n)], abs=1e-3)
    assert (n - 1) / rate <= summary["wall_s"] <= (n - 1) / rate + 3.0
    assert summary["schedule_lag_max_ms"] < 500

    # feedback: every INSPECT/REVIEW item, source by route, true labels, stored by the service
    routed = {r["item_id"]: r for r in records if r["decision"] in ("INSPECT", "REVIEW")}
    fb = feedback_rows(line_service)
    got = {k: v for k, v in fb.items() if k.startswith("open-")}
    assert set(got) == set(routed)
    assert summary["feedback"]["stored"] == summary["feedback"]["sent"] == len(routed)
    for item_id, row in got.items():
        rec = routed[item_id]
        assert row["source"] == ("inspection" if rec["decision"] == "INSPECT" else "analyst")
        assert row["who"] == "line-simulator"
        assert row["labels"]["paper_only"] == rec["paper_only"]
        assert sorted(t for t in default_taxonomy().threats if row["labels"][t]) == \
            sorted(rec["threats"])

    assert json.loads(out.read_text())["records"] == records


def test_closed_loop_cli_job_and_refused_feedback(line_service, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "closed.json"
    result = run(line_cfg(line_service.url, "line.rate=null", "line.concurrency=3",
                          "line.count=24", "line.item_prefix=closed", "line.feedback=true",
                          "line.feedback_share=0.5", "line.inspection_key=not-a-key",
                          "line.analyst_key=not-a-key", f"line.out={out}"))
    printed = capsys.readouterr().out
    assert "closed-loop" in printed and "p99" in printed
    assert "records" not in result and result["out"] == str(out)
    assert result["overall"]["answered"] == 24 and result["concurrency"] == 3
    records = json.loads(out.read_text())["records"]
    assert len(records) == 24 and result["overall"]["throughput_per_s"] > 0
    rows = {row["item_id"]: row for row in store_rows(line_service)
            if row["item_id"].startswith("closed-")}
    assert set(rows) == {r["item_id"] for r in records}
    for r in records:
        assert rows[r["item_id"]]["decision"] == r["decision"]
        assert_served_decision(as_response(rows[r["item_id"]]), line_service.registry)

    # a wrong API key: every verdict refused by the service and reported, none stored
    fb = result["feedback"]
    assert fb["sent"] == len(choose(records, 0.5, SEED)) and fb["stored"] == 0
    assert fb["failed"] == fb["sent"]
    if fb["sent"]:
        assert "401" in fb["first_errors"][0]
    assert not [k for k in feedback_rows(line_service) if k.startswith("closed-")]


def test_unreachable_service_fails_naming_the_url() -> None:
    cfg = line_cfg("http://127.0.0.1:9", "line.count=2", "line.ready_timeout_s=1")
    with pytest.raises(ConnectionError, match="127.0.0.1:9/ready"):
        simulate(cfg)


def test_refused_scans_are_errors_never_decisions(line_service, tmp_path: Path) -> None:
    """A scan key the service refuses (401): every item is an ERROR (held for a human, as
    any unanswered item), none is stored, none gets a decision."""
    result = simulate(line_cfg(line_service.url, "line.rate=null", "line.count=3",
                               "line.item_prefix=refused", "line.api_key=not-a-key"))
    assert {r["decision"] for r in result["records"]} == {"ERROR"}
    assert {r["status"] for r in result["records"]} == {401}
    assert not [r for r in store_rows(line_service) if r["item_id"].startswith("refused-")]
