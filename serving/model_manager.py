"""Which model serves: the alias poller and the atomic swap.

The served model is one attribute holding an immutable LoadedModel. A request (batch)
reads it once and keeps that reference, so a swap — one assignment — never disturbs work
in flight, and no request waits on a load: candidates are downloaded, verified and warmed
up in the poller thread while the old model keeps serving. Moving the alias back is a
rollback by the same path.

A refused candidate (CandidateError: registry, checksum, package, warm_up, unapproved) is
logged as one structured line (`model_refused role=... version=... cause=...`) and counted
in atr_model_swap_failures_total{role,cause}, once per version and cause; the old model
keeps serving. A version refused for its files is retried after RETRY_FAILED_S; an
unapproved one is re-checked at every poll (a metadata read, no download), so the approval
recorded just after the alias moved is picked up at the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from serving.metrics import ServiceMetrics
from serving.model_source import CandidateError, LoadedModel, ModelSource, UnapprovedError
from serving.settings import Settings

log = logging.getLogger("serving.model")

# A version that failed to load is retried only after this long (a broken version behind
# the alias must not be re-downloaded every poll; a transient failure still heals).
RETRY_FAILED_S = 60.0


class ModelManager:
    def __init__(self, settings: Settings, metrics: ServiceMetrics,
                 source: ModelSource | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.source = source or ModelSource(settings)
        self.current: LoadedModel | None = None
        self.shadow: LoadedModel | None = None
        self.last_error: str | None = None
        self._failed: dict[tuple[str, str], float] = {}
        self._counted: set[tuple[str, str, str]] = set()  # (role, version, cause) refused
        # Called (in the poller thread) with each new champion, after the swap.
        self.on_champion: list[Callable[[LoadedModel], Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Poll now (first load) and every poll_seconds, in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.settings.poll_seconds)

    def poll_once(self) -> None:
        """Follow the served alias (and the shadow alias when shadow mode is on)."""
        self._follow("champion", self.settings.alias)
        if self.settings.shadow:
            self._follow("shadow", self.settings.shadow_alias)

    def _follow(self, role: str, alias: str) -> None:
        held = self.current if role == "champion" else self.shadow
        try:
            version = self.source.resolve(alias)
        except Exception as exc:  # registry unreachable: keep serving what we have
            self._note(f"cannot resolve @{alias}: {exc}")
            return
        if version is None:
            # An alias removed is not a reason to stop the line: keep the loaded model.
            if held is None:
                self._note(f"alias @{alias} of {self.settings.model_name} is not set")
            return
        if held is not None and held.version == version:
            return
        failed_at = self._failed.get((role, version))
        if failed_at is not None and time.monotonic() - failed_at < RETRY_FAILED_S:
            return
        try:
            model = self.source.load(version, alias, approved=role == "champion")
        except Exception as exc:  # any failure of a candidate: log it, keep the old model
            cause = exc.cause if isinstance(exc, CandidateError) else "load"
            if not isinstance(exc, UnapprovedError):
                self._failed[(role, version)] = time.monotonic()
            self._refused(role, version, alias, cause, exc)
            return
        self._swap(role, model)

    def _refused(self, role: str, version: str, alias: str, cause: str,
                 exc: BaseException) -> None:
        key = (role, version, cause)
        if key not in self._counted:  # one event per version and cause, not one per poll
            self._counted.add(key)
            self.metrics.swap_failures.labels(role=role, cause=cause).inc()
            log.error("model_refused role=%s model=%s version=%s alias=%s cause=%s kept=%s",
                      role, self.settings.model_name, version, alias, cause,
                      held.version if (held := self.current if role == "champion"
                                       else self.shadow) else None)
        self._note(f"refused {self.settings.model_name} v{version} (@{alias}): {exc}")

    def _swap(self, role: str, model: LoadedModel) -> None:
        old = self.current if role == "champion" else self.shadow
        if role == "champion":
            self.current = model  # the swap: one reference assignment
        else:
            self.shadow = model
        self.last_error = None
        self.metrics.swaps.labels(role=role).inc()
        self.metrics.set_model(role, model.name, model.version)
        log.warning("serving %s %s v%s (was v%s)", role, model.name, model.version,
                    old.version if old else None)
        for hook in self.on_champion if role == "champion" else ():
            try:
                hook(model)
            except Exception:  # the swap stands; the hook's own state says what failed
                log.exception("after the swap to v%s", model.version)

    def _note(self, message: str) -> None:
        if message != self.last_error:  # once per distinct problem, not once per poll
            log.error(message)
        self.last_error = message
