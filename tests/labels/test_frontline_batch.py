"""Feedback -> frontline dataset batch: valid, traceable, all-or-nothing, never twice."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from labels_fixtures import T0, Line
from sqlalchemy import select, update

from atr.data.manifest import read_dataset
from atr.labels import frontline_batch
from atr.labels.frontline_batch import write_frontline_batch
from atr.store.prediction_store import Feedback

PAPER = {"document": 1, "paper_only": 1}
KNIFE = {"knife": 1, "clothing": 1, "paper_only": 0}


def _batches(sessions) -> list[str | None]:
    with sessions() as s:
        return list(s.scalars(select(Feedback.batch).order_by(Feedback.id)))


def test_batch_is_a_valid_dataset_with_provenance_and_marks_feedback(
    line: Line, sessions, images, taxonomy, tmp_path: Path
) -> None:
    for k in range(10):
        line.decide(f"item-{k}", scanner=f"S{k % 2}", decision="REVIEW" if k % 3 else "CLEAR")
        line.verdict(f"item-{k}", KNIFE if k % 4 == 0 else PAPER, who=f"officer-{k}")
    line.decide("no-verdict")
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "frontline", now=T0)

    assert res.path == tmp_path / "frontline" / "2026-11-25T170000-10"
    ds = read_dataset(res.path, taxonomy)  # schema, files and cross-field checks
    m = ds.manifest.set_index("item_id")
    assert sorted(m.index) == [f"item-{k}" for k in range(10)]
    assert set(m["source"]) == {"frontline"}
    assert m.loc["item-1", "scanner_id"] == "S1" and m.loc["item-2", "scanner_id"] == "S0"
    assert m.loc["item-0", "knife"] == 1 and m.loc["item-0", "paper_only"] == 0
    assert m.loc["item-1", "document"] == 1 and m.loc["item-1", "paper_only"] == 1
    assert set(m["split"]) <= {"train", "val", "calib", "test"} and "train" in set(m["split"])
    meta = json.loads(m.loc["item-5", "meta"])
    assert meta["labelled_by"] == "officer-5" and meta["label_source"] == "inspection"
    assert meta["model_name"] == "atr-screening" and meta["model_version"] == "3"
    assert meta["decision"] == "REVIEW" and meta["reason"] == "uncertain"
    assert meta["request_id"].startswith("req-") and meta["labelled_at"].startswith("2026-11-25")
    # the original bytes of the stored image, not a re-encoding
    row = ds.manifest[ds.manifest["item_id"] == "item-5"].iloc[0]
    assert (res.path / row["image"]).read_bytes() == images.get(meta["image_ref"])
    assert _batches(sessions) == [res.name] * 10

    again = write_frontline_batch(sessions, images, taxonomy, tmp_path / "frontline")
    assert again.path is None and again.items == 0
    assert [p.name for p in (tmp_path / "frontline").iterdir()] == [res.name]


def test_inspection_beats_analyst_and_latest_verdict_wins(
    line: Line, sessions, images, taxonomy, tmp_path: Path
) -> None:
    line.decide("a")
    line.verdict("a", KNIFE, source="inspection", at=T0 + timedelta(hours=1))
    line.verdict("a", PAPER, source="analyst", who="ana", at=T0 + timedelta(hours=5))
    line.decide("b")
    line.verdict("b", PAPER, source="analyst", who="ana", at=T0 + timedelta(hours=1))
    line.verdict("b", KNIFE, source="analyst", who="bob", at=T0 + timedelta(hours=2))
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl", now=T0)
    m = read_dataset(res.path).manifest.set_index("item_id")
    assert m.loc["a", "knife"] == 1
    assert json.loads(m.loc["a", "meta"])["label_source"] == "inspection"
    meta_b = json.loads(m.loc["b", "meta"])
    assert m.loc["b", "knife"] == 1 and meta_b["labelled_by"] == "bob"
    assert [o["who"] for o in meta_b["superseded"]] == ["ana"]
    assert _batches(sessions) == [res.name] * 4  # superseded verdicts are consumed too

    line.verdict("a", PAPER, source="inspection", at=T0 + timedelta(hours=9))  # a re-inspection
    later = write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl",
                                  now=T0 + timedelta(days=1))
    m2 = read_dataset(later.path).manifest
    assert list(m2["item_id"]) == ["a"]
    assert json.loads(m2["meta"].iloc[0])["previous_batches"] == [res.name]


def test_unusable_feedback_waits_and_min_items(
    line: Line, sessions, images, taxonomy, tmp_path: Path
) -> None:
    line.decide("ok")
    line.verdict("ok", PAPER)
    line.verdict("ghost", PAPER)  # no prediction: no image to label
    line.decide("bad")
    line.verdict("bad", {"document": 1, "firearm": 1, "paper_only": 1})  # contradiction
    line.decide("alien")
    line.verdict("alien", {"unicorn": 1})
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl", min_items=2)
    assert res.path is None and res.items == 1
    assert set(res.skipped) == {"ghost", "bad", "alien"} and "unicorn" in res.skipped["alien"]
    assert _batches(sessions) == [None] * 4 and not (tmp_path / "fl").exists()
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl")
    assert res.items == 1 and _batches(sessions) == [res.name, None, None, None]


def test_failure_while_writing_leaves_nothing(
    line: Line, sessions, images, taxonomy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(4):
        line.decide(f"i{k}")
        line.verdict(f"i{k}", PAPER)
    real_get, calls = images.get, []

    def flaky_get(ref: str) -> bytes:
        calls.append(ref)
        if len(calls) == 3:
            raise OSError("disk went away")
        return real_get(ref)

    monkeypatch.setattr(images, "get", flaky_get)
    with pytest.raises(OSError, match="disk went away"):
        write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl")
    assert list((tmp_path / "fl").iterdir()) == []  # not even a temp folder
    assert _batches(sessions) == [None] * 4


def test_batch_taken_by_a_concurrent_run_is_withdrawn(
    line: Line, sessions, images, taxonomy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    line.decide("x")
    line.verdict("x", PAPER)
    real_mark = frontline_batch.mark_feedback

    def another_run_first(session, ids, name):  # another process commits its batch first
        with sessions.begin() as other:
            other.execute(update(Feedback).values(batch="other-run"))
        real_mark(session, ids, name)

    monkeypatch.setattr(frontline_batch, "mark_feedback", another_run_first)
    with pytest.raises(frontline_batch.BatchConflict, match="another batch"):
        write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl")
    assert list((tmp_path / "fl").iterdir()) == []  # counted once: in the other run's batch
    assert _batches(sessions) == ["other-run"]


def test_crash_while_marking_rolls_back_and_removes_the_folder(
    line: Line, sessions, images, taxonomy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(3):
        line.decide(f"x{k}")
        line.verdict(f"x{k}", PAPER)
    real_mark = frontline_batch.mark_feedback

    def crash_after_marking(session, ids, name):
        real_mark(session, ids, name)
        raise ConnectionError("database went away before commit")

    monkeypatch.setattr(frontline_batch, "mark_feedback", crash_after_marking)
    with pytest.raises(ConnectionError):
        write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl")
    assert list((tmp_path / "fl").iterdir()) == []
    assert _batches(sessions) == [None] * 3  # nothing acknowledged is lost: next run takes it
    monkeypatch.setattr(frontline_batch, "mark_feedback", real_mark)
    assert write_frontline_batch(sessions, images, taxonomy, tmp_path / "fl").items == 3


def test_batches_carry_no_threat_truth_for_either_definition(
    line: Line, sessions, images, taxonomy, tmp_path: Path
) -> None:
    # verdicts as a no_threat model's line sends them (serving derives the flags it can)
    verdicts = {
        "goods": {"clothing": 1, "paper_only": 0, "no_threat": 1},  # low risk, not paper
        "paper": {"document": 1, "paper_only": 1, "no_threat": 1},
        "knife": {"knife": 1, "paper_only": 0, "no_threat": 0},
        "implied": {"toy": 1},  # a verdict labels every class: both truths follow
        "contradiction": {"clothing": 1, "no_threat": 0},  # no threat class, yet no_threat 0
    }
    for item, labels in verdicts.items():
        line.decide(item, scores={"no_threat": 0.5, "knife": 0.1})
        line.verdict(item, labels)
    res = write_frontline_batch(sessions, images, taxonomy, tmp_path / "frontline", now=T0)
    m = read_dataset(res.path, taxonomy).manifest.set_index("item_id")
    truth = {k: (int(m.loc[k, "paper_only"]), int(m.loc[k, "no_threat"])) for k in m.index}
    assert truth == {"goods": (0, 1), "paper": (1, 1), "knife": (0, 0), "implied": (0, 1)}
    assert "no_threat=0 contradicts" in res.skipped["contradiction"]
    # complete rows (no meta.complete_labels): a no_threat model trains on them as is
    assert all("complete_labels" not in json.loads(v) for v in m["meta"])
