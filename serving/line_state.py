"""What the line's rules need from outside the request: which scanners are in safe mode,
the live leak figures, and the audit plan (tightened for a scanner whose leak statistic,
read with the figures, is above 0).

Safe mode has two sources: the stored flag (atr.store.safe_mode: the monitor's drift and
leak events, an operator), shared by every replica, and the champion's own calibration: a
scanner its policy.json does not certify (`calibration.scanners[S].certified`) is in safe
mode while that version serves (cause `uncovered`). A policy that records no per-scanner
evidence at all (calibrated before it was recorded) speaks for its whole calibration mix.

The stored state is re-read at most every `serve.state_poll_seconds` (in the scoring
thread, one small query). If the store cannot be read, the last state read is kept; before
any successful read every scanner counts as in safe mode: an unknown state never clears.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from atr.policy.audit import AuditPlan
from atr.policy.decision import Policy
from atr.store.prediction_store import LeakEstimate
from atr.store.safe_mode import lift_safe_mode, safe_mode_scanners
from serving.settings import Settings

log = logging.getLogger("serving.line")


def uncovered(policy: Policy, scanner_id: str) -> bool:
    """True when the policy records per-scanner evidence and does not certify this one."""
    scanners = policy.calibration.get("scanners")
    if not scanners:
        return False
    return not bool((scanners.get(scanner_id) or {}).get("certified"))


class LineState:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.audits = AuditPlan(settings.audit_share, dict(settings.audit_shares),
                                settings.audit_seed, settings.audit_tightened_share)
        self.stored: dict[str, dict[str, Any]] = {}
        self.leaks: list[dict[str, Any]] = []
        self.tightened_keys: frozenset[tuple[str, str]] = frozenset()  # (scanner, version)
        self.known = False  # a first read succeeded
        self._read_at = -float("inf")
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._read_at < self.settings.state_poll_seconds:
                return
            self._read_at = now
            try:
                with self.sessions() as session:
                    stored = safe_mode_scanners(session)
                    leaks = [_leak_row(r) for r in session.scalars(select(LeakEstimate))]
            except Exception as exc:  # keep the last state: never clear on a guess
                log.error("line state not read from the store: %s", exc)
                return
            self.stored, self.leaks, self.known = stored, leaks, True
            self.tightened_keys = frozenset((r["scanner_id"], r["model_version"])
                                            for r in leaks if (r["statistic"] or 0.0) > 0.0)

    async def refresh_async(self, force: bool = False) -> None:
        """refresh() for the endpoints: the store read runs off the event loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.refresh, force)

    def safe_mode(self, scanner_id: str, policy: Policy | None) -> str | None:
        """The cause when the scanner is in safe mode, else None."""
        if not self.known:
            return "state_unknown"
        if scanner_id in self.stored:
            return str(self.stored[scanner_id]["cause"])
        if policy is not None and self.settings.uncovered_safe_mode \
                and uncovered(policy, scanner_id):
            return "uncovered"
        return None

    def tightened(self, scanner_id: str, version: str | None) -> bool:
        """Audits tightened: the leak CUSUM of this scanner and version is above 0. (An
        unknown state needs no tightening: it clears nothing, safe_mode says why.)"""
        return (scanner_id, str(version)) in self.tightened_keys

    def on_champion(self, version: str, policy: Policy) -> list[str]:
        """A new champion ends the stored safe mode of each scanner its calibration
        certifies (entered under another version, by the monitor: an operator's safe mode
        is an operator's to lift); returns the scanners lifted. Every replica may do it:
        the lift is conditional, so it is logged once."""
        self.refresh(force=True)
        lifted = []
        for scanner, state in list(self.stored.items()):
            if state.get("cause") == "operator" or state.get("model_version") == version \
                    or uncovered(policy, scanner) or not policy.calibration.get("scanners"):
                continue
            try:
                with self.sessions() as session:
                    if lift_safe_mode(session, scanner, by=f"champion v{version}",
                                      cause="covered", model_version=version):
                        lifted.append(scanner)
            except Exception as exc:
                log.error("safe mode of %s not lifted: %s", scanner, exc)
        if lifted:
            log.warning("safe mode lifted for %s: v%s is certified for them", lifted, version)
            self.refresh(force=True)
        return lifted

    def describe(self, policy: Policy | None) -> dict[str, Any]:
        """For /v1/model: the stored flags, uncovered scanners, the audit plan, leaks."""
        scanners = (policy.calibration.get("scanners") or {}) if policy else {}
        return {
            "safe_mode": dict(self.stored),
            "certified_scanners": sorted(s for s, e in scanners.items()
                                         if (e or {}).get("certified")),
            "uncovered_scanners_in_safe_mode": self.settings.uncovered_safe_mode,
            "fallback": self.settings.safe_mode_fallback,
            "audit": {"share": self.audits.share, "shares": dict(self.audits.shares),
                      "tightened_share": self.audits.tightened,
                      "tightened": sorted(self.tightened_keys)},
            "leak_estimates": list(self.leaks),
            "state_known": self.known,
        }


def _leak_row(r: LeakEstimate) -> dict[str, Any]:
    return {"scanner_id": r.scanner_id, "model_version": r.model_version,
            "audits": r.audits, "leaks": r.leaks, "rate": r.rate, "upper": r.upper,
            "statistic": r.statistic, "alarm": bool(r.alarm),
            "at": r.at.isoformat() if r.at else None}
