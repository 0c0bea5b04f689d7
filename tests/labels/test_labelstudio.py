"""Label Studio round trip: export tasks, an analyst labels them, the export comes back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from labels_fixtures import CONFIDENT, Line
from sqlalchemy import func, select

from atr.labels.label_queue import mark_exported, open_tasks, refresh_queue
from atr.labels.labelstudio import (
    LabelImportError,
    export_labelstudio,
    import_labelstudio,
    labelling_config,
)
from atr.store.prediction_store import Feedback, LabelTask


def _export(line: Line, sessions, images, taxonomy, runtime: Path, out: Path) -> list[dict]:
    line.decide("p1", decision="REVIEW", scores={**CONFIDENT, "knife": 0.7})
    line.decide("p2", decision="REVIEW")
    refresh_queue(sessions)
    with sessions.begin() as s:
        pairs = open_tasks(s, 10)
        tasks = export_labelstudio(pairs, out, taxonomy=taxonomy, images=images,
                                   image_root=runtime)
        mark_exported([t for t, _ in pairs])
    return tasks


def _analyst(tasks: list[dict], choices: dict[str, list[str]]) -> list[dict]:
    """What Label Studio's JSON export holds after an analyst labelled the imported tasks."""
    out = []
    for k, task in enumerate(tasks, start=1):
        result = [{"from_name": "classes", "to_name": "image", "type": "choices",
                   "value": {"choices": choices[task["data"]["item_id"]]}}]
        out.append({**task, "id": 100 + k, "annotations": [
            {"id": k, "completed_by": {"id": 3, "email": "ana@customs.example"},
             "created_at": "2026-11-26T09:00:00.000000Z",
             "updated_at": "2026-11-26T09:05:00.000000Z", "was_cancelled": False,
             "result": result},
        ]})
    return out


def test_export_then_import_gives_analyst_feedback(
    line: Line, sessions, images, taxonomy, runtime: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ls" / "tasks.json"
    tasks = _export(line, sessions, images, taxonomy, runtime, out)
    assert json.loads(out.read_text()) == tasks and [t["data"]["item_id"] for t in tasks] == [
        "p1", "p2"]
    image = tasks[0]["data"]["image"]
    rel = parse_qs(urlparse(image).query)["d"][0]
    assert image.startswith("/data/local-files/?d=") and (runtime / rel).is_file()
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"] == ["knife"]
    assert tasks[0]["meta"]["scores"]["knife"] == 0.7
    view = ET.fromstring((out.parent / "labelling.xml").read_text())
    assert [c.get("value") for c in view.iter("Choice")] == taxonomy.names
    assert view.find("Choices").get("choice") == "multiple"

    export = tmp_path / "export.json"
    export.write_text(json.dumps(_analyst(tasks, {"p1": ["knife", "clothing"],
                                                  "p2": ["document"]})))
    assert import_labelstudio(sessions, export, taxonomy)["feedback_added"] == 2
    with sessions() as s:
        fb = {f.item_id: f for f in s.scalars(select(Feedback))}
        status = set(s.scalars(select(LabelTask.status)))
    assert fb["p1"].labels["knife"] == 1 and fb["p1"].labels["clothing"] == 1
    assert fb["p1"].labels["paper_only"] == 0 and fb["p1"].labels["firearm"] == 0
    assert fb["p2"].labels["paper_only"] == 1
    assert fb["p1"].source == "analyst" and fb["p1"].who == "ana@customs.example"
    assert fb["p1"].at.strftime("%Y-%m-%d %H:%M") == "2026-11-26 09:05"
    assert status == {"labelled"}
    # importing the same export again adds nothing
    assert import_labelstudio(sessions, export, taxonomy)["already_imported"] == 2


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t[1]["data"].update(item_id="nobody"), "task id 102: item 'nobody'"),
        (lambda t: t[0]["annotations"][0]["result"][0]["value"].update(choices=["unicorn"]),
         "task id 101 .*unicorn"),
    ],
)
def test_bad_export_is_refused_and_nothing_written(
    line: Line, sessions, images, taxonomy, runtime: Path, tmp_path: Path, edit, message
) -> None:
    tasks = _export(line, sessions, images, taxonomy, runtime, tmp_path / "tasks.json")
    labelled = _analyst(tasks, {"p1": ["knife"], "p2": ["book"]})
    edit(labelled)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(labelled))
    with pytest.raises(LabelImportError, match=message):
        import_labelstudio(sessions, export, taxonomy)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 0
        assert set(s.scalars(select(LabelTask.status))) == {"exported"}


def test_labelling_config_is_well_formed(taxonomy) -> None:
    xml = labelling_config(taxonomy)
    assert '<Image name="image" value="$image"/>' in xml
    ET.fromstring(xml)  # well-formed
