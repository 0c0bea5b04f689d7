"""A reviewer approves a model in the MLflow UI and the sorting line follows; an account
without the reviewer role is refused in the same browser.

Real `atr mlflow` (MLflow basic-auth + the atr-auth app, as operators start it) over a tmp
SQLite store holding three registered versions with @champion on v1 (approved); accounts
made as `atr mlflow-user` makes them; real `atr serve` on that store polling the alias
every second; headless Debian chromium driven by Playwright. The reviewer logs in (HTTP
basic auth) and adds `champion` to version 2 from the version page: the server records the
approval naming the reviewer, and the service switches to v2. Then, in a second context of
the same browser, the service account (EDIT, not MANAGE) tries to move `champion` to v3:
refused (the UI shows the error), the alias stays on v2 and the service keeps serving v2.

Needs /usr/bin/chromium (`apt-get install -y chromium`); the test installs nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from helpers.decisions import assert_served_decision
from helpers.images import png_bytes
from helpers.mlflow_server import ACCOUNTS, MlflowServer
from helpers.packages import build_package
from helpers.registry import NAME, registry_at
from helpers.service import SCAN_HEADERS, Server

from atr.package import approval

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SWITCH_WITHIN_S = 45.0  # poll 1 s + download + checksum + warm-up, on a loaded 2-core box


def _served_version(url: str) -> str | None:
    resp = httpx.get(f"{url}/v1/model", timeout=5, trust_env=False)
    return str(resp.json()["version"]) if resp.status_code == 200 else None


def _credentials(role: str) -> dict[str, str]:
    name, password = ACCOUNTS[role]
    return {"username": name, "password": password}


def _edit_champion_alias(page, ui: str, version: str):
    """On version `version`'s page: Edit aliases, type `champion`, Save; the dialog."""
    from playwright.sync_api import expect

    page.goto(f"{ui}/#/models/{NAME}/versions/{version}")
    expect(page.get_by_role("heading", name=f"Version {version}")).to_be_visible(
        timeout=60_000)
    page.get_by_role("button", name="Edit aliases").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"alias for model version {version}")
    alias_box = dialog.get_by_role("combobox")
    alias_box.fill("champion")
    alias_box.press("Enter")
    # The UI warns that the alias moves away from the current champion.
    expect(dialog).to_contain_text('"champion" alias is also being used on version')
    dialog.get_by_role("button", name="Save aliases").click()
    return dialog


def test_reviewer_moves_champion_in_mlflow_ui_and_service_follows(tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `apt-get update && apt-get install -y "
                    "chromium` before this test (it drives Debian's chromium, never a "
                    "downloaded browser)")
    from playwright.sync_api import expect, sync_playwright

    registry = registry_at(tmp_path / "runtime")
    for seed in (0, 1, 2):  # three different networks: v1, v2, v3
        registry.register(build_package(tmp_path / f"package-{seed}", seed=seed))
    registry.set_alias("champion", "1")
    registry.set_alias("challenger", "2")  # the gate's candidate, the one to approve

    mlflow_server = MlflowServer(registry)
    service = Server(registry, ["serve.poll_seconds=1"])
    try:
        mlflow_server.start()
        mlflow_server.add_accounts()
        ui = mlflow_server.url
        service.start()
        assert _served_version(service.url) == "1"

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            reviewer = browser.new_context(viewport={"width": 1400, "height": 900},
                                           http_credentials=_credentials("reviewer"))
            page = reviewer.new_page()
            try:
                dialog = _edit_champion_alias(page, ui, "2")
                expect(dialog).to_be_hidden(timeout=30_000)
                expect(page.get_by_title("champion").first).to_be_visible()
            except Exception:
                page.screenshot(path=str(tmp_path / "mlflow-ui-reviewer.png"), full_page=True)
                raise

            # the registry now says v2 (the UI did it, not an API call of ours), and the
            # server recorded who: the reviewer's account, from the browser
            client = registry.client()
            assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
            tags = client.get_model_version(NAME, "2").tags
            assert approval.approval_problem(tags, "champion") is None
            assert tags[approval.APPROVED_BY] == ACCOUNTS["reviewer"][0]
            assert (tags[approval.MODE], tags[approval.PREVIOUS]) == ("ui", "1")
            # ... and the line's service swaps to v2 within the bound
            deadline = time.monotonic() + SWITCH_WITHIN_S
            while time.monotonic() < deadline and _served_version(service.url) != "2":
                time.sleep(0.5)
            assert _served_version(service.url) == "2", service.output()

            # a second account, without the reviewer role, in the same browser: refused
            registry.set_alias("challenger", "3")  # a newer candidate
            other = browser.new_context(viewport={"width": 1400, "height": 900},
                                        http_credentials=_credentials("service"))
            page = other.new_page()
            try:
                dialog = _edit_champion_alias(page, ui, "3")
                expect(page.get_by_text("needs the reviewer role").first).to_be_visible(
                    timeout=30_000)
                page.screenshot(path=str(tmp_path / "mlflow-ui-refused.png"))  # for a look
            except Exception:
                page.screenshot(path=str(tmp_path / "mlflow-ui-refused.png"), full_page=True)
                raise
            finally:
                browser.close()

        assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
        assert approval.APPROVED_BY not in client.get_model_version(NAME, "3").tags
        time.sleep(2.0)  # two polls: nothing to follow
        assert _served_version(service.url) == "2"
        scan = httpx.post(f"{service.url}/v1/scans", content=png_bytes(),
                          params={"item_id": "ui-approved-1", "scanner_id": "parcel_160kv"},
                          headers={"Content-Type": "image/png", **SCAN_HEADERS}, timeout=10,
                          trust_env=False)
        assert scan.status_code == 200 and str(scan.json()["model"]["version"]) == "2"
        assert_served_decision(scan.json(), registry)
    finally:
        service.stop()
        mlflow_server.stop()
