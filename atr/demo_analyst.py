"""The demo report's analyst view: REVIEW and INSPECT items as the service stored them,
drawn with their boxes (atr.line.analyst_view), and, when a folder of real development-set
scans is given (`demo.analyst_real_images`), a few of them sent through the same service
so the view shows at least one real image.

The real scans go in after every measured stage, from a scanner id of their own
(`demo.analyst_real_scanner`), so they touch none of the demo's figures; that scanner is
not in the champion's calibration, so its would-be CLEARs are held by safe mode (REVIEW)
and still carry their localisation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
from omegaconf import DictConfig

from atr.line.analyst_view import html_section, pick, stored_items

log = logging.getLogger(__name__)

REAL_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def real_images(cfg: DictConfig) -> list[Path]:
    """The first `demo.analyst_real_count` image files of `demo.analyst_real_images`
    (sorted by name: the same ones every run); none when unset or absent."""
    folder = cfg.demo.get("analyst_real_images")
    if not folder or not Path(str(folder)).is_dir():
        return []
    files = sorted(p for p in Path(str(folder)).rglob("*") if p.suffix.lower() in REAL_SUFFIXES)
    return files[: int(cfg.demo.analyst_real_count)]


def send_real_images(cfg: DictConfig, url: str, scan_key: str) -> int:
    """POST the real scans to the running service; returns how many were answered."""
    scanner = str(cfg.demo.analyst_real_scanner)
    answered = 0
    with httpx.Client(base_url=url, timeout=30.0, trust_env=False) as client:
        for k, path in enumerate(real_images(cfg)):
            resp = client.post("/v1/scans", content=path.read_bytes(),
                               params={"item_id": f"real-{k:03d}-{path.stem}"[:200],
                                       "scanner_id": scanner},
                               headers={"Content-Type": "application/octet-stream",
                                        "X-API-Key": scan_key})
            answered += resp.status_code == 200
            if resp.status_code != 200:
                log.warning("real scan %s: HTTP %s %s", path.name, resp.status_code,
                            resp.text[:200])
    return answered


def analyst_section(cfg: DictConfig, records: list[dict[str, Any]]) -> str:
    """The report's HTML section: the line's worst-scored REVIEW / INSPECT items with
    their boxes, from the store, plus the real scans' (at least one when any came back)."""
    from atr.store.image_store import open_image_store
    from atr.store.prediction_store import open_store

    truth = {str(r["item_id"]): tuple(r.get("threats") or ()) for r in records}
    real = str(cfg.demo.analyst_real_scanner)
    folder = cfg.demo.get("analyst_real_images")
    items = stored_items(open_store(str(cfg.paths.prediction_db)),
                         open_image_store(str(cfg.paths.image_store)), truth=truth,
                         sources={real: f"real development set ({Path(str(folder)).name})"
                                  if folder else "real"})
    n = int(cfg.demo.analyst_view_items)
    shown = pick([i for i in items if i.scanner_id != real], n)
    shown += pick([i for i in items if i.scanner_id == real], max(1, n // 4))
    return html_section(shown, "The analyst's view: where the model saw the evidence")
