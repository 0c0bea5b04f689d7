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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from atr.demo_service import LoopbackService, ServiceKeys, free_port, issue_keys
from atr.store.migrations import upgrade
from helpers.registry import NAME, Registry

REPO = Path(__file__).resolve().parents[2]
# The keys every test service accepts (registered by write_test_keys, hashed, as
# `atr keys issue` does): a scanner key for the scanner ids the tests send, a feedback key
# per source, an operator key for safe mode.
SCAN_KEY = "test-scan-key"
INSPECTION_KEY, ANALYST_KEY = "test-key-1", "test-key-2"
API_KEYS = (INSPECTION_KEY, ANALYST_KEY)  # feedback: source inspection, source analyst
OPERATOR_KEY = "operator-key-1"
TEST_KEYS = ServiceKeys(SCAN_KEY, INSPECTION_KEY, ANALYST_KEY, OPERATOR_KEY)
SCAN_HEADERS = {"X-API-Key": SCAN_KEY}
TEST_SCANNERS = ("S", "S1", "S2", "S3", "S4", "S5", "S9", "NT1", "DE1", "a", "b", "x", "s",
                 "s1", "lineA", "test-scanner", "parcels", "parcel_160kv", "parcel_140kv",
                 "letter_80kv", "letters", "hums-1", "hums-line", "nist-1",
                 *(f"scanner-{c}" for c in "abcdef"))
# The line's rules off unless a test turns them on: the other suites send flat-colour test
# images (no plausible X-ray) and count decisions item by item; the rules have their own
# tests (tests/serving/test_line_rules.py, test_safe_mode.py) on simulator images.
RULES_OFF = ["serve.audit_share=0.0", "serve.plausibility=false"]


class Server(LoopbackService):
    """`atr serve` on `registry`'s runtime folder, with `extra` serve overrides."""

    def __init__(self, registry: Registry, extra: list[str], start_timeout_s: float = 60.0
                 ) -> None:
        registry.root.mkdir(parents=True, exist_ok=True)
        upgrade(f"sqlite:///{registry.root / 'predictions' / 'predictions.db'}")  # serve won't
        port = free_port()
        super().__init__([*registry.overrides, *RULES_OFF,
                          f"serve.keys_file={write_test_keys(registry.root)}", *extra],
                         registry.root / f"serve-{port}-{time.monotonic_ns()}.log",
                         port=port, start_timeout_s=start_timeout_s, cwd=REPO)
        self.registry = registry

    def start(self, wait_ready: bool = True, timeout: float | None = None) -> Server:
        """Wait for /ready (a model is served), or only /health with wait_ready=False."""
        super().start("/ready" if wait_ready else "/health", timeout)
        return self


def write_test_keys(root: Path) -> Path:
    """TEST_KEYS into <root>/keys.yaml (the runtime's paths.keys_file); its path."""
    path = root / "keys.yaml"
    issue_keys(path, TEST_SCANNERS, "test", tokens=asdict(TEST_KEYS))
    return path


def settings_for(registry: Registry, **overrides: object) -> Any:
    """Settings for an in-process app on this registry's runtime folder."""
    from serving.settings import Settings

    base: dict[str, object] = dict(
        prediction_db=f"sqlite:///{registry.root / 'predictions' / 'predictions.db'}",
        image_store=str(registry.root / "images"), tracking_uri=registry.tracking_uri,
        download_dir=str(registry.root / "serve" / "models"), poll_seconds=0.2,
        model_name=NAME, keys_file=str(write_test_keys(registry.root)),
        audit_share=0.0, plausibility=False)
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@contextmanager
def thread_server(settings: Any) -> Iterator[tuple[str, Any]]:
    """create_app(settings) under a real uvicorn.Server in a thread, on a free port."""
    import uvicorn

    from serving.app import create_app

    upgrade(settings.prediction_db)  # the test owns the store; create_app only checks it
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
