"""Faults of the model lifecycle, on real processes: the MLflow server down when a replica
starts and while it should swap, and a version whose artifact was tampered with in the
artifact store after registration.

One real `atr mlflow` (auth on) serves the registry; the replica (`atr serve`) reads it
through that server with the reader account, as replicas of the distributed stack do. The
server is stopped and started again on the same port to make the faults. The tests run in
file order on one module-scoped setup (the server starts ~15 s, a replica ~5 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.mlflow_server import MlflowServer, env_for
from helpers.packages import build_package
from helpers.registry import NAME, Registry, registry_at
from helpers.service import SCAN_HEADERS, Server

pytestmark = pytest.mark.slow  # ~60 s: three server starts


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5, trust_env=False).status_code
    except httpx.HTTPError:
        return 0


def _served(replica: Server) -> str | None:
    r = httpx.get(f"{replica.url}/v1/model", timeout=5, trust_env=False)
    return r.json().get("version") if r.status_code == 200 else None


def _scan(replica: Server, item: str) -> dict:
    r = httpx.post(f"{replica.url}/v1/scans", content=png_bytes(), timeout=30,
                   params={"item_id": item, "scanner_id": "S1"}, trust_env=False,
                   headers={"Content-Type": "image/png", **SCAN_HEADERS})
    assert r.status_code == 200, r.text
    return r.json()


class Setup:
    def __init__(self, root: Path) -> None:
        self.package = build_package(root / "package", seed=0)
        self.registry: Registry = registry_at(root / "runtime")
        self.registry.register(self.package)
        self.registry.set_alias("champion", "1")
        self.mlflow = MlflowServer(self.registry)
        self.replica: Server | None = None

    def start_replica(self) -> Server:
        url = self.mlflow.url
        self.replica = Server(self.registry, ["serve.poll_seconds=0.5",
                                              f"paths.tracking_uri={url}",
                                              f"paths.registry_uri={url}"])
        self.replica.env.update(env_for("reader"))  # a replica only reads the registry
        return self.replica.start(wait_ready=False)

    def metrics(self) -> str:
        assert self.replica is not None
        return httpx.get(f"{self.replica.url}/metrics", timeout=5, trust_env=False).text


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    s = Setup(tmp_path_factory.mktemp("faults"))
    try:
        s.mlflow.start()
        s.mlflow.add_accounts()
        s.mlflow.stop()  # the accounts exist; the server is down for the first fault
        yield s
    finally:
        if s.replica is not None:
            s.replica.stop()
        s.mlflow.stop()


def test_mlflow_down_at_start_the_replica_is_live_not_ready_then_ready(setup: Setup) -> None:
    replica = setup.start_replica()
    assert _status(f"{replica.url}/health") == 200  # alive: the balancer keeps it ...
    assert _status(f"{replica.url}/ready") == 503  # ... but sends it nothing: no model
    assert _scan(replica, "before-mlflow")["decision"] == "INSPECT"  # fail-safe, no model
    time.sleep(1.5)  # three polls against a closed port
    assert _status(f"{replica.url}/ready") == 503 and replica.proc.poll() is None
    setup.mlflow.start()
    _until(lambda: _status(f"{replica.url}/ready") == 200)
    assert _served(replica) == "1"
    assert_served_decision(_scan(replica, "after-mlflow"), setup.registry)


def test_mlflow_down_during_a_swap_the_replica_keeps_serving(setup: Setup) -> None:
    replica = setup.replica
    assert replica is not None and _served(replica) == "1"
    version = setup.registry.register(setup.package)
    setup.mlflow.stop()
    setup.registry.set_alias("champion", version)  # approved while the server is down
    time.sleep(2.0)  # four polls that cannot reach the registry
    assert _status(f"{replica.url}/ready") == 200
    info = httpx.get(f"{replica.url}/v1/model", timeout=5).json()
    assert info["version"] == "1" and "cannot resolve @champion" in info["last_error"]
    body = _scan(replica, "during-outage")
    assert body["model"]["version"] == "1"
    assert_served_decision(body, setup.registry)
    setup.mlflow.start()
    _until(lambda: _served(replica) == version)  # the swap happens once it is back


def test_a_tampered_artifact_is_never_loaded_and_the_refusal_is_logged(setup: Setup) -> None:
    replica = setup.replica
    assert replica is not None
    served = _served(replica)
    version = setup.registry.register(setup.package)
    client = setup.registry.client()
    folder = Path(client.get_model_version_download_uri(NAME, version).removeprefix(
        "file://"))
    policy = next(folder.rglob("package/policy.json"))
    policy.write_text(policy.read_text() + "\n")  # still valid JSON; one byte more
    setup.registry.set_alias("champion", version)  # approved: only its bytes are wrong
    _until(lambda: 'atr_model_swap_failures_total{cause="checksum",role="champion"} 1.0'
           in setup.metrics())
    info = httpx.get(f"{replica.url}/v1/model", timeout=5).json()
    assert info["version"] == served and "checksum" in info["last_error"]
    assert _status(f"{replica.url}/ready") == 200
    body = _scan(replica, "after-tamper")
    assert body["model"]["version"] == served
    assert_served_decision(body, setup.registry)
    # one structured event line naming the version and the cause
    events = [ln for ln in replica.log.read_text().splitlines() if "model_refused" in ln]
    assert len(events) == 1 and f"version={version}" in events[0]
    assert "cause=checksum" in events[0] and f"kept={served}" in events[0]
    time.sleep(1.5)  # polls go on: nothing is loaded, nothing logged again
    assert _served(replica) == served
    assert sum("model_refused" in ln for ln in replica.log.read_text().splitlines()) == 1
