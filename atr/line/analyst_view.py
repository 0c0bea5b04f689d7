"""The analyst's view of the line: a sample of REVIEW and INSPECT items drawn with where
the model saw the evidence (the `localisation` boxes and heatmap peak the service sent).

The line summary (`atr line`, beside `line.out`) and the demo report show it. Worst-scored
items first, as an analyst's queue orders them: INSPECT and REVIEW items alternate, each
group by its strongest box.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atr.package.decode import ImageDecodeError, decode_image
from atr.policy.taxonomy import Taxonomy
from atr.store.prediction_store import Prediction

# Model boxes in the colours of the decision they explain; the simulator's truth (when
# known) in green, so a reader sees at once whether the box is on the threat.
_COLOURS = {"INSPECT": (220, 30, 30), "REVIEW": (235, 150, 0)}
_TRUTH = (20, 160, 60)
SHOWN_DECISIONS = ("INSPECT", "REVIEW")


@dataclass(frozen=True)
class ViewItem:
    """One item as the analyst sees it: the image as scanned and what the service said."""

    item_id: str
    scanner_id: str
    decision: str
    reason: str
    image: bytes  # the file the scanner sent (PNG, JPEG, TIFF...)
    localisation: dict[str, Any]
    truth: tuple[str, ...] = ()  # the threat classes really in the item, when known
    truth_boxes: tuple[dict[str, Any], ...] = ()  # [{"label", "xyxy"}], pixels
    source: str = "line"  # "line", or the development set's name for a real image

    @property
    def strongest(self) -> float:
        boxes = self.localisation.get("boxes") or []
        peak = self.localisation.get("peak") or {}
        return max([float(b.get("score") or 0.0) for b in boxes]
                   + [float(peak.get("score") or 0.0)])


def pick(items: Iterable[ViewItem], n: int) -> list[ViewItem]:
    """Up to `n` items, worst-scored first, INSPECT and REVIEW alternating so that both
    appear; items without localisation cannot be shown and are skipped."""
    groups = {d: sorted((i for i in items if i.decision == d and i.localisation),
                        key=lambda i: -i.strongest) for d in SHOWN_DECISIONS}
    items = list(groups["INSPECT"]), list(groups["REVIEW"])
    out: list[ViewItem] = []
    for k in range(max(len(g) for g in items) if any(items) else 0):
        out += [g[k] for g in items if k < len(g)]
    return out[:n]


def line_items(parcels: list[Any], records: list[dict[str, Any]],
               taxonomy: Taxonomy) -> list[ViewItem]:
    """The line's REVIEW / INSPECT items with a localisation (atr.line.parcels.Parcel and
    atr.line.metrics.record rows, in line order), with the simulator's threat objects."""
    threats = set(taxonomy.threats)
    return [ViewItem(item_id=p.item_id, scanner_id=p.scanner_id, decision=r["decision"],
                     reason=str(r.get("reason")), image=p.png,
                     localisation=r["localisation"], truth=tuple(p.threats(taxonomy)),
                     truth_boxes=tuple(b for b in p.boxes if b.get("label") in threats))
            for p, r in zip(parcels, records, strict=True)
            if r.get("localisation") and r["decision"] in SHOWN_DECISIONS]


def stored_items(sessions: sessionmaker[Session], images: Any, limit: int = 400,
                 truth: dict[str, tuple[str, ...]] | None = None,
                 sources: dict[str, str] | None = None) -> list[ViewItem]:
    """What the service stored: the latest `limit` REVIEW / INSPECT rows with a
    localisation, their images read back from the image store (`images.get(ref)`);
    `truth`: item_id -> threat classes, when known; `sources`: scanner_id -> the name of a
    development set whose real scans that scanner sent. A pruned or missing image is
    skipped (retention may have removed it; the row stays)."""
    with sessions() as s:
        rows = s.execute(
            select(Prediction.item_id, Prediction.scanner_id, Prediction.decision,
                   Prediction.reason, Prediction.localisation, Prediction.image_ref)
            .where(Prediction.decision.in_(SHOWN_DECISIONS), Prediction.image_ref.is_not(None),
                   Prediction.localisation.is_not(None), Prediction.image_pruned_at.is_(None))
            .order_by(Prediction.id.desc()).limit(limit)).all()
    out = []
    for item_id, scanner, decision, reason, where, ref in rows:
        if not where or not (where.get("boxes") or where.get("peak")):
            continue
        try:
            data = images.get(ref)
        except (OSError, KeyError, ValueError):
            continue
        out.append(ViewItem(item_id, scanner, decision, reason, data, where,
                            truth=(truth or {}).get(item_id, ()),
                            source=(sources or {}).get(scanner, "line")))
    return out


def draw(item: ViewItem, max_side: int = 360) -> bytes:
    """The item's image with its boxes and peak, scaled to `max_side`, as PNG bytes."""
    try:
        pixels = decode_image(item.image)
    except ImageDecodeError as exc:
        raise ImageDecodeError(f"item {item.item_id}: {exc}") from exc
    img = Image.fromarray(pixels)
    scale = min(1.0, max_side / max(img.size))
    if scale < 1.0:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    pen = ImageDraw.Draw(img)
    colour = _COLOURS.get(item.decision, (90, 90, 90))
    for box in item.truth_boxes:
        pen.rectangle(_scaled(box["xyxy"], scale), outline=_TRUTH, width=1)
    for box in item.localisation.get("boxes") or []:
        x0, y0, x1, y1 = _scaled(box["xyxy"], scale)
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=2)
        pen.text((x0 + 2, max(0, y0 - 11)), f"{box['label']} {float(box['score']):.2f}",
                 fill=colour)
    peak = item.localisation.get("peak")
    if peak and peak.get("xy"):
        x, y = (float(v) * scale for v in peak["xy"])
        pen.line((x - 6, y, x + 6, y), fill=colour, width=2)
        pen.line((x, y - 6, x, y + 6), fill=colour, width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _scaled(xyxy: list[float], scale: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) * scale for v in xyxy)
    return x0, y0, x1, y1


def _caption(item: ViewItem) -> str:
    boxes = item.localisation.get("boxes") or []
    said = ", ".join(f"{b['label']} {float(b['score']):.2f}" for b in boxes) or "no box"
    truth = ", ".join(item.truth) if item.truth else "none known"
    return (f"<b>{html.escape(item.decision)}</b> ({html.escape(item.reason)}) — "
            f"{html.escape(item.scanner_id)} / {html.escape(item.item_id)}"
            f"{' — ' + html.escape(item.source) if item.source != 'line' else ''}<br>"
            f"boxes: {html.escape(said)}<br>threats in the item: {html.escape(truth)}")


def html_section(items: list[ViewItem], heading: str = "The analyst's view") -> str:
    """An HTML fragment: one figure per item, its image inline (data URI)."""
    if not items:
        return (f"<h2>{html.escape(heading)}</h2><p>No REVIEW or INSPECT item carried a "
                "localisation (a served model without a heatmap output, or none sent).</p>")
    figures = "".join(
        f'<figure style="display:inline-block;vertical-align:top;width:370px;margin:4px">'
        f'<img src="data:image/png;base64,{base64.b64encode(draw(i)).decode()}">'
        f'<figcaption style="font-size:12px">{_caption(i)}</figcaption></figure>'
        for i in items)
    return (f"<h2>{html.escape(heading)}</h2><p>Worst-scored first. Model boxes in red "
            "(INSPECT) or amber (REVIEW) with their scores, the heatmap's peak as a cross; "
            f"the simulator's true objects in green where known.</p>{figures}")


def write_view(path: Path, items: list[ViewItem], title: str = "ATR analyst view") -> Path:
    """A standalone HTML page of `items` (what `atr line` writes beside its summary)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f'<!doctype html><html><head><meta charset="utf-8"><title>'
                   f"{html.escape(title)}</title></head><body style=\"font-family:sans-serif\">"
                   f"{html_section(items, title)}</body></html>")
    tmp.replace(path)
    return path
