"""Which model serves: the alias poller and the atomic swap.

The served model is one attribute holding an immutable LoadedModel. A request (batch)
reads it once and keeps that reference, so a swap — one assignment — never disturbs work
in flight, and no request waits on a load: candidates are downloaded, verified and warmed
up in the poller thread while the old model keeps serving. Moving the alias back is a
rollback by the same path.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from serving.metrics import ServiceMetrics
from serving.model_source import LoadedModel, ModelSource
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
            model = self.source.load(version, alias)
        except Exception as exc:  # any failure of a candidate: log it, keep the old model
            self._failed[(role, version)] = time.monotonic()
            self.metrics.swap_failures.labels(role=role).inc()
            self._note(f"refused {self.settings.model_name} v{version} (@{alias}): {exc}")
            return
        self._swap(role, model)

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
