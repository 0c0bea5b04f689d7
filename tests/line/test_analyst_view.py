"""The analyst's view: which items are shown, in which order, and that the boxes the
service sent are drawn where they say, from the line's records and from a real store."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from atr.line.analyst_view import ViewItem, draw, line_items, pick, stored_items, write_view
from atr.line.parcels import Parcel
from atr.policy.taxonomy import default_taxonomy
from atr.store.image_store import ImageStore
from atr.store.prediction_store import Prediction, ensure_store


def grey_png(w: int = 200, h: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def where(score: float, xyxy: list[float] | None = None) -> dict:
    return {"boxes": [{"label": "knife", "score": score, "xyxy": xyxy or [20, 10, 80, 60]}],
            "peak": {"label": "knife", "score": score, "xy": [50, 35]}}


def item(decision: str, score: float, name: str = "") -> ViewItem:
    return ViewItem(name or f"{decision}-{score}", "s1", decision, "r", grey_png(), where(score))


def test_pick_alternates_worst_first_and_never_shows_clear_or_unlocalised() -> None:
    items = [item("REVIEW", 0.3), item("INSPECT", 0.6), item("INSPECT", 0.9),
             item("REVIEW", 0.5), item("CLEAR", 0.99),
             ViewItem("bare", "s1", "INSPECT", "r", grey_png(), {})]
    shown = [i.item_id for i in pick(items, 10)]
    assert shown == ["INSPECT-0.9", "REVIEW-0.5", "INSPECT-0.6", "REVIEW-0.3"]
    assert [i.item_id for i in pick(items, 3)] == shown[:3]
    assert pick([item("CLEAR", 0.9)], 5) == []


def test_draw_puts_the_box_where_the_service_said_scaled_to_the_view() -> None:
    png = draw(item("INSPECT", 0.8), max_side=100)  # 200x100 image -> scaled by 0.5
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert img.shape[:2] == (50, 100)
    red = (img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80)
    ys, xs = np.nonzero(red[12:])  # below the label text
    # the box [20, 10, 80, 60] at half scale: [10, 5, 40, 30]; the peak's cross inside it
    assert xs.min() >= 9 and xs.max() <= 41 and ys.max() + 12 <= 31
    assert red[20, 10] and red[20, 40] and red[30, 15]  # left, right and bottom edges
    assert red[17, 25] and red[23, 25]  # the cross at the peak (25, 17.5)
    assert not red[25, 15]  # the inside is the image, not paint
    assert (np.abs(img[45:, 60:] - 200) < 2).all()  # far from the box: untouched


def test_line_items_keep_the_simulator_threat_boxes_and_only_localised_non_clear() -> None:
    taxonomy = default_taxonomy()
    threat = taxonomy.threats[0]
    boxes = ({"label": threat, "xyxy": [1, 2, 30, 40]}, {"label": "book", "xyxy": [0, 0, 5, 5]})
    parcels = [Parcel(f"i{k}", "s1", 0, grey_png(), {threat: 1}, 0, boxes=boxes)
               for k in range(3)]
    records = [{"decision": "INSPECT", "reason": f"threat:{threat}", "localisation": where(0.7)},
               {"decision": "CLEAR", "reason": "paper_only", "localisation": where(0.7)},
               {"decision": "REVIEW", "reason": "uncertain"}]
    got = line_items(parcels, records, taxonomy)
    assert [g.item_id for g in got] == ["i0"]
    assert got[0].truth == (threat,)
    assert got[0].truth_boxes == (boxes[0],)  # goods are not drawn as truth


def test_stored_items_read_rows_and_images_back_from_a_real_store(tmp_path) -> None:
    sessions = ensure_store(f"sqlite:///{tmp_path / 'p.db'}")
    images = ImageStore(tmp_path / "images")
    ref = images.put(grey_png())
    rows = [("a", "INSPECT", where(0.9), ref, None), ("b", "CLEAR", None, ref, None),
            ("c", "REVIEW", where(0.4), ref, None), ("d", "REVIEW", where(0.8), "gone.png", None),
            ("e", "INSPECT", None, ref, None)]
    with sessions() as s:
        for k, (item_id, decision, loc, image_ref, _) in enumerate(rows):
            s.add(Prediction(request_id=f"r{k}", item_id=item_id, scanner_id="real-1",
                             decision=decision, reason="x", image_ref=image_ref,
                             localisation=loc))
        s.commit()
    got = stored_items(sessions, images, truth={"a": ("knife",)},
                       sources={"real-1": "HUMS"})
    assert sorted(g.item_id for g in got) == ["a", "c"]  # no CLEAR, no box, no image: skipped
    a = next(g for g in got if g.item_id == "a")
    assert a.truth == ("knife",) and a.source == "HUMS" and a.image == grey_png()
    page = write_view(tmp_path / "view" / "line.analyst.html", pick(got, 5)).read_text()
    assert page.count("data:image/png;base64,") == 2 and "HUMS" in page
