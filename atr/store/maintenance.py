"""`atr store upgrade|current|prune`: the operator's jobs on the prediction store.

    atr store upgrade --url postgresql+psycopg://atr@db:5432/atr
    atr store current
    atr store prune --dry-run store.retention_days=30
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from atr.store import migrations
from atr.store.migrations import safe_url


def _url(cfg: DictConfig) -> str:
    url = str(cfg.store.url or "")
    if not url:
        raise ValueError("store.url: which store (--url URL, or paths.prediction_db)")
    return url


def upgrade(cfg: DictConfig) -> dict[str, Any]:
    url = _url(cfg)
    before, after = migrations.upgrade(url)
    return {"store": safe_url(url), "before": before, "after": after,
            "changed": before != after}


def current(cfg: DictConfig) -> dict[str, Any]:
    url = _url(cfg)
    revision, head = migrations.current(url)
    state = ("current" if revision == head else "empty" if revision is None
             else "older" if migrations.is_known(revision) else "newer than this code")
    return {"store": safe_url(url), "revision": revision, "head": head, "state": state}


def prune(cfg: DictConfig) -> dict[str, Any]:
    from atr.store.image_store import open_image_store
    from atr.store.prediction_store import open_store
    from atr.store.retention import prune_images

    sessions = open_store(_url(cfg))
    try:
        report = prune_images(sessions, open_image_store(str(cfg.store.image_store)),
                              cfg.store.retention_days, dry_run=bool(cfg.store.dry_run))
    finally:
        sessions.kw["bind"].dispose()
    return {"store": safe_url(_url(cfg)), **report}
