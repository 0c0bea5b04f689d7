"""The service under test, started the ways an operator and the app's own tests do:

- `Server`: `atr serve` in a subprocess on a free loopback port (atr.demo_service's
  launcher, the one the demo uses), on a test registry's runtime folder;
- `thread_server`: create_app(settings) under a real uvicorn.Server in a thread, for
  tests that inject faults into the running app.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atr.demo_service import LoopbackService, free_port
from helpers.registry import NAME, Registry

REPO = Path(__file__).resolve().parents[2]
API_KEYS = ("test-key-1", "test-key-2")  # the keys /v1/feedback accepts in these tests
OPERATOR_KEY = "operator-key-1"  # the key the safe-mode calls accept
# The line's rules off unless a test turns them on: the other suites send flat-colour test
# images (no plausible X-ray) and count decisions item by item; the rules have their own
# tests (tests/serving/test_line_rules.py, test_safe_mode.py) on simulator images.
RULES_OFF = ["serve.audit_share=0.0", "serve.plausibility=false"]


class Server(LoopbackService):
    """`atr serve` on `registry`'s runtime folder, with `extra` serve overrides."""

    def __init__(self, registry: Registry, extra: list[str], start_timeout_s: float = 60.0
                 ) -> None:
        registry.root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        super().__init__([*registry.overrides, *RULES_OFF,
                          f"serve.operator_keys=[{OPERATOR_KEY}]", *extra], ",".join(API_KEYS),
                         registry.root / f"serve-{port}-{time.monotonic_ns()}.log",
                         port=port, start_timeout_s=start_timeout_s, cwd=REPO)
        self.registry = registry

    def start(self, wait_ready: bool = True, timeout: float | None = None) -> Server:
        """Wait for /ready (a model is served), or only /health with wait_ready=False."""
        super().start("/ready" if wait_ready else "/health", timeout)
        return self


def settings_for(registry: Registry, **overrides: object) -> Any:
    """Settings for an in-process app on this registry's runtime folder."""
    from serving.settings import Settings

    base: dict[str, object] = dict(
        prediction_db=f"sqlite:///{registry.root / 'predictions' / 'predictions.db'}",
        image_store=str(registry.root / "images"), tracking_uri=registry.tracking_uri,
        download_dir=str(registry.root / "serve" / "models"), poll_seconds=0.2,
        model_name=NAME, api_keys=("inproc-key",), operator_keys=(OPERATOR_KEY,),
        audit_share=0.0, plausibility=False)
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@contextmanager
def thread_server(settings: Any) -> Iterator[tuple[str, Any]]:
    """create_app(settings) under a real uvicorn.Server in a thread, on a free port."""
    import uvicorn

    from serving.app import create_app

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("in-process uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(15)
