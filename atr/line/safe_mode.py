"""`atr safe-mode`: an operator's command, through the service's API (one authorisation
path for people and tools: the operator key, $ATR_OPERATOR_KEY or safe_mode.key).

    atr safe-mode status
    atr safe-mode enter parcel_160kv --by alice safe_mode.note="belt 3 recalibrated"
    atr safe-mode lift parcel_160kv --by alice
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from omegaconf import DictConfig

KEY_ENV = "ATR_OPERATOR_KEY"


def _key(cfg: DictConfig) -> str:
    key = str(cfg.safe_mode.key or os.environ.get(KEY_ENV, ""))
    if not key:
        raise ValueError(f"safe_mode.key: an operator key is needed (or ${KEY_ENV})")
    return key


def _call(cfg: DictConfig, action: str) -> dict[str, Any]:
    sm = cfg.safe_mode
    url = str(sm.url).rstrip("/")
    if action == "status":
        resp = httpx.get(f"{url}/v1/scanners", timeout=float(sm.timeout_s), trust_env=False)
    else:
        if not sm.scanner:
            raise ValueError(f"safe_mode.scanner: which scanner (atr safe-mode {action} ID)")
        if not sm.by:
            raise ValueError("safe_mode.by: who does it (--by NAME)")
        body = {"action": action, "by": str(sm.by),
                **({"note": str(sm.note)} if sm.note else {})}
        resp = httpx.post(f"{url}/v1/scanners/{sm.scanner}/safe-mode", json=body,
                          headers={"X-API-Key": _key(cfg)}, timeout=float(sm.timeout_s),
                          trust_env=False)
    if resp.status_code >= 400:
        raise ValueError(f"safe mode {action}: HTTP {resp.status_code}: "
                         f"{resp.json().get('detail', resp.text)}")
    return resp.json()


def status(cfg: DictConfig) -> dict[str, Any]:
    return _call(cfg, "status")


def enter(cfg: DictConfig) -> dict[str, Any]:
    return _call(cfg, "enter")


def lift(cfg: DictConfig) -> dict[str, Any]:
    return _call(cfg, "lift")
