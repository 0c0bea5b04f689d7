"""`atr store prune` on a real store and real image files, both engines: unlabelled images
past retention are removed; labelled ones, ones shared with a labelled or recent item, and
every row stay; a dry run only counts; a second run finds nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.images import png_bytes
from sqlalchemy import select

from atr.cli import main
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Feedback, Prediction, ensure_store, utcnow
from atr.store.retention import prune_images

OLD, NEW = utcnow() - timedelta(days=45), utcnow() - timedelta(days=2)


def _fill(url: str, images: ImageStore) -> dict[str, str]:
    """item -> image ref: old/new, labelled or not, some sharing the same bytes."""
    data = {"old-unlabelled": png_bytes((1, 2, 3)), "old-labelled": png_bytes((4, 5, 6)),
            "old-shares-labelled": png_bytes((7, 8, 9)), "new-labelled-twin": png_bytes((7, 8, 9)),
            "old-shares-recent": png_bytes((10, 11, 12)), "new-twin": png_bytes((10, 11, 12)),
            "new-unlabelled": png_bytes((13, 14, 15))}
    refs = {item: images.put(b) for item, b in data.items()}
    sessions = ensure_store(url)
    with sessions.begin() as s:
        for i, (item, ref) in enumerate(refs.items()):
            s.add(Prediction(request_id=f"r{i}", item_id=item, scanner_id="S1",
                             created_at=OLD if item.startswith("old") else NEW,
                             decision="REVIEW", reason="uncertain", image_ref=ref))
        for item in ("old-labelled", "new-labelled-twin"):
            s.add(Feedback(item_id=item, labels={"paper_only": 1}, source="inspection",
                           who="officer", at=NEW))
    sessions.kw["bind"].dispose()
    return refs


def _rows(url: str) -> dict[str, Prediction]:
    sessions = ensure_store(url)
    with sessions() as s:
        rows = {p.item_id: p for p in s.scalars(select(Prediction))}
    sessions.kw["bind"].dispose()
    return rows


def _prune(url: str, root: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["store", "prune", "--url", url, f"store.image_store={root}",
                 "store.retention_days=30", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_prune_removes_only_unlabelled_unshared_old_images(
        empty_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = ImageStore(tmp_path / "images")
    refs = _fill(empty_url, images)

    dry = _prune(empty_url, images.root, "--dry-run", capsys=capsys)
    assert (dry["dry_run"], dry["expired_rows"], dry["images_to_remove"],
            dry["images_removed"], dry["images_kept_shared"], dry["labelled_rows_kept"]) \
        == (True, 3, 1, 0, 2, 1)
    assert all(ref in images for ref in refs.values())  # nothing touched
    assert all(p.image_pruned_at is None for p in _rows(empty_url).values())

    done = _prune(empty_url, images.root, capsys=capsys)
    assert (done["images_removed"], done["rows_marked"]) == (1, 1)
    assert refs["old-unlabelled"] not in images  # the file is gone ...
    rows = _rows(empty_url)
    assert len(rows) == 7  # ... every row is kept, with its reference, marked
    assert rows["old-unlabelled"].image_ref == refs["old-unlabelled"]
    assert rows["old-unlabelled"].image_pruned_at is not None
    for item in ("old-labelled", "old-shares-labelled", "old-shares-recent", "new-unlabelled"):
        assert refs[item] in images and rows[item].image_pruned_at is None, item

    again = _prune(empty_url, images.root, capsys=capsys)
    assert (again["expired_rows"], again["images_removed"], again["rows_marked"]) == (2, 0, 0)


def test_a_crash_between_files_and_rows_is_finished_by_the_next_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    images = ImageStore(tmp_path / "images")
    refs = _fill(url, images)
    images.delete(refs["old-unlabelled"])  # the file went, the row was not marked yet
    report = prune_images(ensure_store(url), images, 30)
    assert (report["images_removed"], report["rows_marked"]) == (0, 1)
    assert _rows(url)["old-unlabelled"].image_pruned_at is not None


def test_retention_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="retention_days must be a positive"):
        prune_images(ensure_store(f"sqlite:///{tmp_path / 'p.db'}"),
                     ImageStore(tmp_path / "i"), 0)
