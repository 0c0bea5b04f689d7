"""An analyst corrects the model's box in Label Studio's UI; the correction becomes
feedback and the box of the next frontline batch.

Real Label Studio (the session's server, tests/conftest.py `labelstudio`), the queue
exported by `atr labels export` with the model's box (a knife) as the pre-annotation;
headless Debian chromium driven by Playwright, launched as the MLflow UI test does. The
analyst logs in with the credentials ATR made, opens the queued task, sees the
pre-annotated knife box, selects it, presses `1` (the firearm hotkey) and submits.
`atr labels import` then stores the verdict (firearm, with the box) and `atr labels
batch` writes the firearm box into the batch's manifest.

Needs /usr/bin/chromium (`make debian-tools`); the test installs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers.labelstudio import overrides
from sqlalchemy import select
from test_mlflow_ui_approval import CHROMIUM, CHROMIUM_ARGS

from atr.config import compose
from atr.data.dataset_writer import encode_png
from atr.data.manifest import read_dataset
from atr.labels import job as labels_job
from atr.labels.labelstudio_server import load_credentials
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, Prediction, ensure_store

pytestmark = pytest.mark.slow
BOX = {"label": "knife", "score": 0.77, "xyxy": [10.0, 8.0, 40.0, 30.0]}  # 68x64 image


def test_analyst_corrects_box_label_in_label_studio(labelstudio, tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: run `make debian-tools` before this test")
    from playwright.sync_api import expect, sync_playwright

    cfg = compose("labels", overrides(labelstudio, tmp_path / "runtime", f"ui {tmp_path.name}"))
    sessions = ensure_store(cfg.paths.prediction_db)
    image = encode_png(np.random.default_rng(7).integers(0, 256, (64, 68, 3), dtype=np.uint8))
    with sessions.begin() as s:  # what serving stores for a REVIEW with a knife box
        s.add(Prediction(request_id="req-ui-1", item_id="parcel-7", scanner_id="S1",
                         model_name="atr-screening", model_version="3", decision="REVIEW",
                         reason="uncertain", scores={"paper_only": 0.02, "knife": 0.77},
                         image_ref=ImageStore(cfg.paths.image_store).put(image),
                         localisation={"boxes": [BOX], "peak": None}))
    exported = labels_job.export(cfg)
    assert exported["exported"] == 1
    creds = load_credentials(labelstudio.credentials_path)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        try:
            page.goto(f"{labelstudio.url}/user/login/")
            page.fill('input[name="email"]', creds.email)
            page.fill('input[name="password"]', creds.password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(f"{labelstudio.url}/", timeout=60_000)
            page.goto(exported["url"])  # the project's queue
            page.get_by_text("parcel-7").first.click()  # the queued task
            # the model's box is there before the analyst does anything: the region list
            # names it (the label bar holds the other "knife", the hotkey's button)
            region = page.get_by_text("knife", exact=True)
            expect(region).to_have_count(2, timeout=60_000)
            region.last.click()
            page.keyboard.press("1")  # firearm, the first threat's hotkey
            expect(region).to_have_count(1)  # the region is a firearm now; the bar keeps knife
            page.get_by_role("button", name="Submit").click()
            expect(page.get_by_text("Annotation saved successfully", exact=True)).to_be_visible(
                timeout=30_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "labelstudio-analyst.png"), full_page=True)
            raise
        finally:
            browser.close()

    got = labels_job.import_(cfg)
    assert got["feedback_added"] == 1
    with sessions() as s:
        fb = s.scalars(select(Feedback)).one()
    assert (fb.who, fb.source) == (creds.email, "analyst")
    assert fb.labels["firearm"] == 1 and fb.labels["knife"] == 0
    assert [b["label"] for b in fb.boxes] == ["firearm"]
    assert [round(v) for v in fb.boxes[0]["xyxy"]] == BOX["xyxy"]
    row = read_dataset(labels_job.batch(cfg)["batch"]).manifest.iloc[0]
    assert row["item_id"] == "parcel-7" and row["firearm"] == 1
    assert [b["label"] for b in json.loads(row["boxes"])] == ["firearm"]
