"""`atr labels export|import|batch` against a real Label Studio server (tests/conftest.py
`labelstudio`): the project and its config, tasks worst first with the model's boxes as
pre-annotations, two analysts' annotations made through the SDK, each imported once,
an edit before the batch, and the corrected box in the frontline batch."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
from helpers.labelstudio import overrides
from labels_fixtures import CONFIDENT, Line, png
from sqlalchemy import select

from atr.config import compose
from atr.data.manifest import read_dataset
from atr.labels import job as labels_job
from atr.labels.labelstudio_project import client
from atr.labels.labelstudio_server import load_credentials
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, LabelTask, Prediction, ensure_store

BOX = {"label": "knife", "score": 0.81, "xyxy": [16.0, 8.0, 48.0, 40.0]}  # in a 68x64 image
PCT = (100 * 16 / 68, 12.5, 100 * 32 / 68, 50.0)  # the same box in percent: x, y, w, h


def labelstudio_token(server) -> str:
    return load_credentials(server.credentials_path).token


def _rect(label: str) -> dict:
    x, y, w, h = PCT
    return {"from_name": "boxes", "to_name": "image", "type": "rectanglelabels",
            "original_width": 68, "original_height": 64, "image_rotation": 0,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": [label]}}


def _choices(*names: str) -> dict:
    return {"from_name": "classes", "to_name": "image", "type": "choices",
            "value": {"choices": list(names)}}


def test_round_trip_through_label_studio(labelstudio, tmp_path: Path) -> None:
    cfg = compose("labels", overrides(labelstudio, tmp_path / "runtime", f"rt {tmp_path.name}"))
    sessions = ensure_store(cfg.paths.prediction_db)
    line = Line(sessions, ImageStore(cfg.paths.image_store))
    line.decide("calm", decision="REVIEW", image=png(1, 60))
    knife = line.decide("knife", decision="REVIEW", scores={**CONFIDENT, "knife": 0.6},
                        image=png(2, 64))
    line.decide("sure", image=png(3, 60))  # confident CLEAR: last in the queue
    with sessions.begin() as s:
        s.get(Prediction, knife.id).localisation = {
            "boxes": [BOX], "peak": {"label": "knife", "score": 0.81, "xy": [30, 20]}}

    exported = labels_job.export(cfg)
    assert exported["exported"] == 3
    ls, pid = client(labelstudio.url, labelstudio.credentials_path), exported["project_id"]
    tasks = sorted(ls.tasks.list(project=pid, fields="all"), key=lambda t: t.id)
    # worst first: the knife REVIEW (uncertain + REVIEW) leads, the confident CLEAR trails
    assert [t.data["item_id"] for t in tasks] == ["knife", "calm", "sure"]
    view = ET.fromstring(ls.projects.get(id=pid).label_config)
    assert [lab.get("value") for lab in view.iter("Label")] == [
        "firearm", "knife", "ammunition", "narcotics", "lithium_battery"]
    assert [c.get("hotkey") for c in view.iter("Choice")][:3] == ["a", "s", "d"]
    pre = tasks[0].predictions[0]
    assert pre.model_version == "atr" and len(pre.result) == 1  # the box, no extra choice
    box = pre.result[0]
    assert box["value"]["rectanglelabels"] == ["knife"]
    assert (box["original_width"], box["original_height"]) == (68, 64)
    assert [round(box["value"][k], 6) for k in ("x", "y", "width", "height")] == [
        round(v, 6) for v in PCT]
    # the image is served by Label Studio from the image store
    img = tasks[0].data["image"]
    served = httpx.get(f"{labelstudio.url}{img}", trust_env=False, timeout=30,
                       headers={"Authorization": f"Token {labelstudio_token(labelstudio)}"})
    assert img.startswith("/data/local-files/?d=") and served.status_code == 200
    assert served.content == line.images.get(knife.image_ref)
    assert labels_job.export(cfg)["exported"] == 0  # exported tasks are not sent again

    # analyst 1 corrects the box's label (knife -> firearm) and ticks electronics;
    # analyst 2 reads the same image as a knife only
    me = ls.users.whoami()
    other = ls.users.create(email="second-analyst@atr.local", username="second",
                            password="pass-2-secret")
    first = ls.annotations.create(id=tasks[0].id, result=[
        _rect("firearm"), _choices("electronics")], completed_by=me.id)
    ls.annotations.create(id=tasks[0].id, result=[_rect("knife")],
                          completed_by=other.id)
    ls.annotations.create(id=tasks[1].id, result=[_choices("book")], completed_by=me.id)
    ls.annotations.create(id=tasks[2].id, result=[], was_cancelled=True, completed_by=me.id)

    got = labels_job.import_(cfg)
    assert (got["annotations"], got["feedback_added"], got["disagreements"]) == (3, 3, 1)
    again = labels_job.import_(cfg)
    assert (again["feedback_added"], again["already_imported"]) == (0, 3)  # exactly once
    # analyst 1 edits the annotation before the batch: the row follows, no new row
    ls.annotations.update(id=first.id, result=[_rect("firearm")])
    assert labels_job.import_(cfg)["updated"] == 1
    with sessions() as s:
        rows = list(s.scalars(select(Feedback).order_by(Feedback.id)))
        status = {t.item_id: t.status for t in s.scalars(select(LabelTask))}
    assert len(rows) == 3 and all(r.source == "analyst" and r.source_ref for r in rows)
    mine = next(r for r in rows if r.item_id == "knife" and r.who == me.email)
    assert mine.labels["firearm"] == 1 and mine.labels["electronics"] == 0
    assert mine.labels["knife"] == 0 and mine.labels["no_threat"] == 0
    assert mine.boxes == [{"label": "firearm", "xyxy": [16.0, 8.0, 48.0, 40.0]}]
    assert status == {"knife": "labelled", "calm": "labelled", "sure": "exported"}

    # the frontline batch: one row per item, the latest verdict labels it
    done = labels_job.batch(cfg)
    assert done["items"] == 2
    ds = read_dataset(done["batch"])
    row = ds.manifest.set_index("item_id").loc["knife"]
    meta = json.loads(row["meta"])
    assert meta["analysts_disagree"] is True and len(meta["superseded"]) == 1
    # analyst 1's edit is the latest verdict: the corrected box is the row's box
    assert meta["labelled_by"] == me.email and row["firearm"] == 1 and row["knife"] == 0
    assert json.loads(row["boxes"]) == [{"label": "firearm", "xyxy": [16.0, 8.0, 48.0, 40.0]}]
    # an edit after the batch is counted, not imported into the sealed batch
    ls.annotations.update(id=first.id, result=[_rect("ammunition")])
    assert labels_job.import_(cfg)["edited_after_batch"] == 1
