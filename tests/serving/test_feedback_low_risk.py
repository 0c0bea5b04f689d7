"""POST /v1/feedback for a model whose low risk is `no_threat` (a real-archive model): the
stored labels carry no_threat whenever the verdict settles it, contradictions are refused,
and the monitor's window reads that truth for the model's leak rate."""

from __future__ import annotations

import json

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.packages import no_threat_package
from helpers.registry import Registry, registry_at
from helpers.service import SCAN_HEADERS, Server
from helpers.stores import store_rows

from atr.monitor.drift_performance import performance
from atr.monitor.windows import recent_predictions
from atr.policy.taxonomy import default_taxonomy
from atr.store.prediction_store import open_store

TAX = default_taxonomy()
AT = "2026-11-25T10:00:00Z"


@pytest.fixture(scope="module")
def nt_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    # a pseudo-colour model (PNG uploads) that clears on no_threat; clear at 0.0: every
    # item with threat scores under 0.5 is CLEARed, so leaks can be counted
    package = no_threat_package(tmp_path_factory.mktemp("nt") / "package", seed=2,
                                representation="pseudo_colour", clear_threshold=0.0,
                                inspect_threshold=0.99)
    reg = registry_at(tmp_path_factory.mktemp("nt-runtime"))
    reg.register(package)
    reg.set_alias("champion", "1")
    server = Server(reg, []).start()
    yield server
    server.stop()


def _scan(server: Server, item: str) -> dict:
    r = httpx.post(f"{server.url}/v1/scans", content=png_bytes(), timeout=30,
                   params={"item_id": item, "scanner_id": "NT1"},
                   headers={"Content-Type": "image/png", **SCAN_HEADERS})
    assert r.status_code == 200, r.text
    assert_served_decision(r.json(), server.registry)
    return r.json()


def _feedback(server: Server, item: str, labels: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/feedback", timeout=30, headers={"X-API-Key": "test-key-1"},
                      json={"item_id": item, "labels": labels, "source": "inspection",
                            "who": "officer-3", "at": AT})


def _stored(registry: Registry, item: str) -> dict:
    """The labels of the newest feedback on `item`."""
    rows = [r for r in store_rows(registry, "feedback") if r["item_id"] == item]
    return json.loads(rows[-1]["labels"])


def test_no_threat_labels_are_derived_stored_and_checked(nt_server: Server) -> None:
    body = _scan(nt_server, "nt-1")
    assert "no_threat" in body["scores"] and "paper_only" not in body["scores"]
    cases = {
        # every threat given, none present: no threat (paper-only unknown: goods not given)
        "nt-1": (dict.fromkeys(TAX.threats, 0), {"no_threat": 1}),
        # a threat: neither low risk
        "nt-2": ({"knife": 1}, {"no_threat": 0, "paper_only": 0}),
        # every class given: both follow
        "nt-3": ({**dict.fromkeys(TAX.names, 0), "clothing": 1},
                 {"no_threat": 1, "paper_only": 0}),
        # paper only implies no threat
        "nt-4": ({"paper_only": 1}, {"no_threat": 1}),
    }
    for item, (labels, derived) in cases.items():
        _scan(nt_server, item)
        r = _feedback(nt_server, item, labels)
        assert r.status_code == 201, r.text
        assert _stored(nt_server.registry, item) == {**labels, **derived}
    # a partial verdict settles nothing: stored as given, no claim added
    _scan(nt_server, "nt-5")
    assert _feedback(nt_server, "nt-5", {"knife": 0}).status_code == 201
    assert _stored(nt_server.registry, "nt-5") == {"knife": 0}

    refused = {"labels.no_threat: 1 contradicts knife = 1": {"knife": 1, "no_threat": 1},
               "labels.paper_only: 1 contradicts clothing = 1": {"clothing": 1,
                                                                 "paper_only": 1},
               "labels.paper_only: 1 contradicts no_threat = 0": {"paper_only": 1,
                                                                  "no_threat": 0}}
    for message, labels in refused.items():
        r = _feedback(nt_server, "nt-1", labels)
        assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert _stored(nt_server.registry, "nt-1") == {**cases["nt-1"][0], "no_threat": 1}


def test_the_monitor_window_reads_the_no_threat_truth(nt_server: Server) -> None:
    # every item is CLEARed (clear threshold 0); the verdicts say which were low risk
    for k, labels in enumerate([{"knife": 1}, dict.fromkeys(TAX.threats, 0),
                                {"firearm": 1}, {"clothing": 1}]):
        assert _scan(nt_server, f"win-{k}")["decision"] == "CLEAR"
        assert _feedback(nt_server, f"win-{k}", labels).status_code == 201
    sessions = open_store(f"sqlite:///{nt_server.registry.root / 'predictions/predictions.db'}")
    outputs = ["no_threat", *TAX.threats]
    with sessions() as s:
        frame = recent_predictions(s, "NT1", 1000, outputs)
    window = frame[frame["item_id"].str.startswith("win-")].reset_index(drop=True)
    assert window["no_threat"].tolist()[:3] == [0.0, 1.0, 0.0]
    assert window["no_threat"].isna().tolist()[3]  # a goods label alone settles nothing
    perf = performance(window)
    # two threat items cleared: two leaks out of the two labelled not-low-risk items
    assert perf["low_risk"] == "no_threat" and (perf["non_paper"], perf["leaks"]) == (2, 2)
    assert (perf["threat_items"], perf["threats_inspected"]) == (2, 0)
