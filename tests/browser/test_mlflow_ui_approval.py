"""A reviewer approves a model in the MLflow UI and the sorting line follows.

Real `mlflow server` (atr.registry.server.server_command) over a tmp SQLite store holding
two registered versions with @champion on v1; real `atr serve` on that store polling the
alias every second; headless Debian chromium driven by Playwright adds `champion` to
version 2 from the version page, as a reviewer would. The service must switch to v2.

Needs /usr/bin/chromium (`apt-get install -y chromium`); the test installs nothing.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.packages import build_package
from helpers.registry import NAME, registry_at
from helpers.service import Server

from atr.config import compose
from atr.demo_service import free_port
from atr.registry.server import server_command

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SWITCH_WITHIN_S = 45.0  # poll 1 s + download + checksum + warm-up, on a loaded 2-core box


def _wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} not up after {seconds} s:\n{log.read_text()[-3000:]}")


def _served_version(url: str) -> str | None:
    resp = httpx.get(f"{url}/v1/model", timeout=5, trust_env=False)
    return str(resp.json()["version"]) if resp.status_code == 200 else None


def test_reviewer_moves_champion_in_mlflow_ui_and_service_follows(tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get update && apt-get install -y "
                    "chromium` before this test (it drives Debian's chromium, never a "
                    "downloaded browser)")
    from playwright.sync_api import expect, sync_playwright

    registry = registry_at(tmp_path / "runtime")
    for seed in (0, 1):  # two different networks: v1 and v2
        registry.register(build_package(tmp_path / f"package-{seed}", seed=seed))
    registry.set_alias("champion", "1")

    port = free_port()
    cfg = compose("mlflow", [*registry.overrides, f"mlflow.port={port}"])
    log = tmp_path / "mlflow-server.log"
    with log.open("wb") as fh:
        mlflow_server = subprocess.Popen(server_command(cfg), stdout=fh,
                                         stderr=subprocess.STDOUT)
    service = Server(registry, ["serve.poll_seconds=1"])
    try:
        ui = f"http://127.0.0.1:{port}"
        _wait_http(f"{ui}/health", mlflow_server, log)
        service.start()
        assert _served_version(service.url) == "1"

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            try:
                page.goto(f"{ui}/#/models/{NAME}/versions/2")
                expect(page.get_by_role("heading", name="Version 2")).to_be_visible(
                    timeout=60_000)
                page.get_by_role("button", name="Edit aliases").click()
                dialog = page.get_by_role("dialog")
                expect(dialog).to_contain_text("alias for model version 2")
                alias_box = dialog.get_by_role("combobox")
                alias_box.fill("champion")
                alias_box.press("Enter")
                # The UI warns that the alias moves away from v1: the reviewer's confirmation.
                expect(dialog).to_contain_text('"champion" alias is also being used on '
                                               "version 1")
                dialog.get_by_role("button", name="Save aliases").click()
                expect(dialog).to_be_hidden(timeout=30_000)
                expect(page.get_by_title("champion").first).to_be_visible()
            except Exception:
                page.screenshot(path=str(tmp_path / "mlflow-ui-failure.png"), full_page=True)
                raise
            finally:
                browser.close()

        # the registry now says v2 (the UI did it, not an API call of ours) ...
        alias = registry.client().get_model_version_by_alias(NAME, "champion")
        assert str(alias.version) == "2"
        # ... and the line's service swaps to v2 within the bound
        deadline = time.monotonic() + SWITCH_WITHIN_S
        while time.monotonic() < deadline and _served_version(service.url) != "2":
            time.sleep(0.5)
        assert _served_version(service.url) == "2", service.output()
        scan = httpx.post(f"{service.url}/v1/scans", content=png_bytes(),
                          params={"item_id": "ui-approved-1", "scanner_id": "parcel_160kv"},
                          headers={"Content-Type": "image/png"}, timeout=10, trust_env=False)
        assert scan.status_code == 200 and str(scan.json()["model"]["version"]) == "2"
        assert_served_decision(scan.json(), registry)
    finally:
        service.stop()
        mlflow_server.terminate()
        try:
            mlflow_server.wait(20)
        except subprocess.TimeoutExpired:
            mlflow_server.kill()
