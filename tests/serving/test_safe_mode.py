"""Per-scanner safe mode and audits on running services (`atr serve` subprocesses on
loopback sharing one prediction store, as replicas behind a load balancer do):

- a scanner put in safe mode (as the monitor does on a drift event) gets no CLEAR on
  either replica, other scanners are untouched;
- lifting needs an operator key and is recorded; a new champion certified for the scanner
  lifts it; a scanner the champion does not certify is in safe mode without any flag;
- the audit share is honoured within its binomial interval, and recorded; a scanner whose
  leak statistic (the monitor's LeakEstimate of the serving version) is above 0 gets the
  tightened share until it falls back to 0.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.packages import build_package
from helpers.registry import Registry, registry_at
from helpers.service import API_KEYS, OPERATOR_KEY, SCAN_HEADERS, Server
from helpers.stores import store_rows
from scipy.stats import binom

from atr.package.checksums import package_checksums
from atr.policy.audit import audit_draw
from atr.policy.decision import Policy
from atr.store.prediction_store import LeakEstimate, open_store
from atr.store.safe_mode import enter_safe_mode

FAST = ["serve.state_poll_seconds=0.2", "serve.poll_seconds=0.5"]


def _package(out: Path, scanners: dict[str, bool] | None = None) -> Path:
    """A tiny package whose policy clears every item (clear threshold 0, inspect 0.99);
    `scanners`: per-scanner certification recorded in policy.json, as evaluate writes it."""
    build_package(out, seed=3, clear_threshold=0.0, inspect_threshold=0.99)
    if scanners is not None:
        policy = Policy.load(out / "policy.json")
        policy.calibration["scanners"] = {s: {"certified": c} for s, c in scanners.items()}
        policy.save(out / "policy.json")
        doc = json.loads((out / "package.json").read_text())
        (out / "package.json").unlink()
        doc["sha256"] = package_checksums(out)
        (out / "package.json").write_text(json.dumps(doc))
    return out


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, Server, Server]:
    reg = registry_at(tmp_path_factory.mktemp("sm-runtime"))
    reg.register(_package(tmp_path_factory.mktemp("sm1") / "package"))
    reg.set_alias("champion", "1")
    first = Server(reg, FAST).start()
    second = Server(reg, FAST).start()
    yield reg, first, second
    first.stop()
    second.stop()


def _batch(server: Server, scanner: str, prefix: str, n: int = 4) -> list[dict]:
    items = [{"item_id": f"{prefix}-{i}",
              "image_b64": base64.b64encode(png_bytes((200, 120 + i % 100, 40))).decode()}
             for i in range(n)]
    r = httpx.post(f"{server.url}/v1/scans/batch", json={"scanner_id": scanner, "items": items},
                   timeout=60, headers=SCAN_HEADERS)
    assert r.status_code == 200, r.text
    for body in r.json():
        assert_served_decision(body, server.registry)
    return r.json()


def _lift(server: Server, scanner: str, key: str | None, by: str = "alice") -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return httpx.post(f"{server.url}/v1/scanners/{scanner}/safe-mode", headers=headers,
                      json={"action": "lift", "by": by}, timeout=30)


def _wait(predicate, timeout_s: float = 20.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_flagged_scanner_gets_no_clear_on_either_replica(replicas) -> None:  # noqa: ANN001
    reg, first, second = replicas
    assert {b["decision"] for b in _batch(first, "scanner-b", "pre")} == {"CLEAR"}
    with open_store(f"sqlite:///{reg.root / 'predictions' / 'predictions.db'}")() as s:
        assert enter_safe_mode(s, "scanner-b", "drift", by="atr monitor", model_version="1")
    time.sleep(0.5)  # past serve.state_poll_seconds on both replicas
    for server in (first, second):
        held = _batch(server, "scanner-b", f"held-{server.port}")
        assert {(b["decision"], b["reason"]) for b in held} == {("REVIEW", "safe_mode")}
        assert {b["decision"] for b in _batch(server, "scanner-a", f"a-{server.port}")} \
            == {"CLEAR"}
        line = httpx.get(f"{server.url}/v1/model", timeout=30).json()["line"]
        assert list(line["safe_mode"]) == ["scanner-b"]
        assert line["safe_mode"]["scanner-b"]["cause"] == "drift"
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert 'atr_safe_mode{cause="drift",scanner="scanner-b"} 1.0' in metrics
    rows = [r for r in store_rows(reg) if r["item_id"].startswith("held-")]
    assert rows and all(r["scanner_state"] == "safe_mode" for r in rows)
    assert all(json.loads(r["would_be"])["decision"] == "CLEAR" for r in rows)

    # lifting: no key (401), a feedback key (403: not an operator's), then the operator's key
    assert _lift(first, "scanner-b", None).status_code == 401
    refused = _lift(first, "scanner-b", API_KEYS[0])
    assert refused.status_code == 403 and "operator" in refused.json()["detail"]
    r = _lift(second, "scanner-b", OPERATOR_KEY, by="alice")
    assert r.status_code == 200 and r.json()["changed"], r.text
    events = store_rows(reg, "scanner_events")
    assert [(e["action"], e["cause"], e["by"]) for e in events] == [
        ("enter", "drift", "atr monitor"), ("lift", "operator", "alice")]
    time.sleep(0.5)
    for server in (first, second):
        assert {b["decision"] for b in _batch(server, "scanner-b", f"post-{server.port}")} \
            == {"CLEAR"}


def test_uncovered_scanner_and_certified_champion(replicas, tmp_path: Path) -> None:  # noqa: ANN001
    reg, first, second = replicas
    with open_store(f"sqlite:///{reg.root / 'predictions' / 'predictions.db'}")() as s:
        assert enter_safe_mode(s, "scanner-c", "leak_alarm", by="atr monitor",
                               model_version="1")
    # v2 certifies scanner-a and scanner-c, not scanner-d
    version = reg.register(_package(tmp_path / "v2", {"scanner-a": True, "scanner-c": True,
                                                     "scanner-d": False}))
    reg.set_alias("champion", version)
    try:
        for server in (first, second):
            _wait(lambda s=server: httpx.get(f"{s.url}/v1/model", timeout=30)
                  .json()["version"] == version)
        _wait(lambda: not any(r["safe_mode"] for r in
                              store_rows(reg, "scanner_modes", order="scanner_id")))
        lifts = [e for e in store_rows(reg, "scanner_events") if e["scanner_id"] == "scanner-c"]
        assert [(e["action"], e["cause"], e["by"]) for e in lifts] == [
            ("enter", "leak_alarm", "atr monitor"), ("lift", "covered", f"champion v{version}")]
        time.sleep(0.5)
        for server in (first, second):
            assert {b["decision"] for b in _batch(server, "scanner-c", f"c-{server.port}")} \
                == {"CLEAR"}
            held = _batch(server, "scanner-d", f"d-{server.port}")
            assert {(b["decision"], b["reason"]) for b in held} == {("REVIEW", "safe_mode")}
        r = _lift(first, "scanner-d", OPERATOR_KEY)
        assert r.status_code == 409 and "not certified" in r.json()["detail"]
    finally:
        reg.set_alias("champion", "1")


def test_audit_share_is_honoured_and_recorded(tmp_path: Path) -> None:
    reg = registry_at(tmp_path / "runtime")
    reg.register(_package(tmp_path / "package"))
    reg.set_alias("champion", "1")
    share, seed, n = 0.1, 11, 400
    with Server(reg, [*FAST, f"serve.audit_share={share}", f"serve.audit_seed={seed}",
                      "+serve.audit_shares.letters=0.0"]) as server:
        server.wait("/ready", 60)
        bodies = [b for k in range(n // 50) for b in _batch(server, "parcels", f"p{k}", 50)]
        letters = _batch(server, "letters", "l", 50)
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    audits = [b for b in bodies if b["reason"] == "audit"]
    lo, hi = binom.ppf(0.0005, n, share), binom.ppf(0.9995, n, share)
    assert lo <= len(audits) <= hi, (len(audits), lo, hi)
    assert all(b["decision"] == "INSPECT" for b in audits)
    assert {b["decision"] for b in letters} == {"CLEAR"}  # its own share: 0
    expected = {b["item_id"] for b in bodies if audit_draw(seed, "parcels", b["item_id"]) < share}
    assert {b["item_id"] for b in audits} == expected
    rows = {r["item_id"]: r for r in store_rows(reg)}
    for b in audits:
        row = rows[b["item_id"]]
        would = json.loads(row["would_be"])
        assert row["audit"] == 1 and would["decision"] == "CLEAR"
        assert would["audit_draw"] == pytest.approx(audit_draw(seed, "parcels", b["item_id"]))
    assert f'atr_audits_total{{scanner="parcels"}} {float(len(audits))}' in metrics
    assert f'atr_would_clear_total{{scanner="parcels"}} {float(n)}' in metrics


def _leak_statistic(reg: Registry, scanner: str, version: str, statistic: float) -> None:
    """What `atr monitor` upserts after its leak test (atr/monitor/leak_job.py)."""
    with open_store(f"sqlite:///{reg.root / 'predictions' / 'predictions.db'}")() as s:
        row = s.get(LeakEstimate, (scanner, version)) or LeakEstimate(
            scanner_id=scanner, model_version=version, audits=1, leaks=1)
        row.statistic = statistic
        s.add(row)
        s.commit()


def test_audits_tighten_while_the_leak_statistic_is_above_zero(tmp_path: Path) -> None:
    reg = registry_at(tmp_path / "runtime")
    reg.register(_package(tmp_path / "package"))
    reg.set_alias("champion", "1")
    share, tight, seed, n = 0.05, 0.5, 7, 200
    with Server(reg, [*FAST, f"serve.audit_share={share}", f"serve.audit_seed={seed}",
                      f"serve.audit_tightened_share={tight}",
                      "+serve.audit_shares.letters=0.0"]) as server:
        server.wait("/ready", 60)
        _leak_statistic(reg, "parcels", "1", 0.69)  # one audited leak, not yet paid back
        _leak_statistic(reg, "letters", "1", 0.69)  # audits off stay off
        _leak_statistic(reg, "scanner-e", "0", 0.69)  # another version's evidence: no effect
        time.sleep(1.0)  # > serve.state_poll_seconds
        model = httpx.get(f"{server.url}/v1/model", timeout=30).json()
        tightened = [b for k in range(n // 50) for b in _batch(server, "parcels", f"t{k}", 50)]
        other = _batch(server, "scanner-e", "c", 50)
        letters = _batch(server, "letters", "l", 50)
        _leak_statistic(reg, "parcels", "1", 0.0)  # paid back: the normal share again
        time.sleep(1.0)
        normal = [b for k in range(n // 50) for b in _batch(server, "parcels", f"n{k}", 50)]

    def audited(bodies: list[dict]) -> set[str]:
        return {b["item_id"] for b in bodies if b["reason"] == "audit"}

    def drawn(bodies: list[dict], scanner: str, below: float) -> set[str]:
        return {b["item_id"] for b in bodies if audit_draw(seed, scanner, b["item_id"]) < below}

    assert model["line"]["audit"]["tightened"] == [["letters", "1"], ["parcels", "1"],
                                                   ["scanner-e", "0"]]
    assert audited(tightened) == drawn(tightened, "parcels", tight)
    assert binom.ppf(0.0005, n, tight) <= len(audited(tightened)) <= binom.ppf(0.9995, n, tight)
    assert audited(other) == drawn(other, "scanner-e", share)
    assert audited(letters) == set() and {b["decision"] for b in letters} == {"CLEAR"}
    assert audited(normal) == drawn(normal, "parcels", share)
    rows = {r["item_id"]: json.loads(r["would_be"]) for r in store_rows(reg)}
    assert {rows[b["item_id"]]["audit_share"] for b in tightened} == {tight}
    assert {rows[b["item_id"]]["audit_share"] for b in normal} == {share}


def test_operator_command_enters_and_lifts_through_the_api(replicas, monkeypatch) -> None:  # noqa: ANN001
    from atr.cli import main

    reg, first, _ = replicas
    url = f"safe_mode.url={first.url}"
    monkeypatch.delenv("ATR_OPERATOR_KEY", raising=False)
    assert main(["safe-mode", "enter", "scanner-e", "--by", "carol", url]) == 1  # no key
    monkeypatch.setenv("ATR_OPERATOR_KEY", "not-the-key")
    assert main(["safe-mode", "enter", "scanner-e", "--by", "carol", url]) == 1  # 401
    monkeypatch.setenv("ATR_OPERATOR_KEY", OPERATOR_KEY)
    assert main(["safe-mode", "enter", "scanner-e", "--by", "carol", url,
                 "safe_mode.note=belt maintenance"]) == 0
    time.sleep(0.5)
    held = _batch(first, "scanner-e", "e-held")
    assert {(b["decision"], b["reason"]) for b in held} == {("REVIEW", "safe_mode")}
    assert main(["safe-mode", "lift", "scanner-e", "--by", "dave", url]) == 0
    events = [e for e in store_rows(reg, "scanner_events") if e["scanner_id"] == "scanner-e"]
    assert [(e["action"], e["cause"], e["by"]) for e in events] == [
        ("enter", "operator", "carol"), ("lift", "operator", "dave")]
    assert json.loads(events[0]["detail"]) == {"note": "belt maintenance"}


def test_live_leak_figures_reach_metrics_and_the_model_endpoint(replicas) -> None:  # noqa: ANN001
    from atr.store.prediction_store import LeakEstimate

    reg, first, second = replicas
    with open_store(f"sqlite:///{reg.root / 'predictions' / 'predictions.db'}")() as s:
        s.merge(LeakEstimate(scanner_id="scanner-f", model_version="1", audits=40, leaks=2,
                             rate=0.05, upper=0.15, statistic=3.1, alarm=True))
        s.commit()
    time.sleep(0.5)
    for server in (first, second):  # every replica reads the monitor's figures
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
        assert 'atr_leak{figure="upper",scanner="scanner-f",version="1"} 0.15' in metrics
        assert 'atr_leak{figure="alarm",scanner="scanner-f",version="1"} 1.0' in metrics
        line = httpx.get(f"{server.url}/v1/model", timeout=30).json()["line"]
        est = next(e for e in line["leak_estimates"] if e["scanner_id"] == "scanner-f")
        assert (est["audits"], est["leaks"], est["alarm"]) == (40, 2, True)
