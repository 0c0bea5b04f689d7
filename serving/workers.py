"""`atr serve serve.workers=N`: N worker processes on one port, under uvicorn's supervisor.

One process is one GIL for the event loop and the decode, scoring and commit threads; a
second process per core is how `mlflow models serve` gets its best figure (its uvicorn
workers), and here the same supervisor runs N copies of the app (each its own event loop,
micro-batcher and model) on the socket the parent binds. docs/serving-performance.md has
the figures.

The parent, before any worker starts:
- checks the store once (serve never creates nor upgrades it: `atr store upgrade` does):
  a store at another revision is refused with one message, not one traceback per worker;
- makes a fresh folder for prometheus_client's multiprocess mode: /metrics sums the
  counters of every worker, whichever one answers (serving/metrics.py); removed on exit;
- hands the workers the Settings in an environment variable (spawned, they inherit it).
The supervisor turns SIGTERM/SIGINT into a SIGTERM to each worker (each drains: the
batches already scored are committed) and waits for them; a worker that dies is replaced.

Each worker (`app_factory`, in the worker process):
- ends when the parent does, even if it was SIGKILLed (PR_SET_PDEATHSIG);
- downloads packages into download_dir/worker-<k>, slot k held by a lock for the worker's
  life: a load replaces the version's copy (atr/package/fetch.py), so two workers sharing
  a folder would delete the copy the other one is verifying;
- refills each key's token bucket at rate / N (burst unchanged): the kernel hands each
  connection to one worker, so a key's sustained rate stays within `rate` in all, however
  its connections are spread (a key on one connection gets rate / N);
- names itself in every reply's `X-ATR-Worker` header (its pid; serving/app.py);
- counts its open connections with the others', and closes one after its reply when it
  holds more than its share, so the client reconnects (serving/balance.py).
What the workers share is the store: SQLite in WAL mode takes one writer at a time and
the others wait (busy_timeout, atr/store/prediction_store.py), and the unique
(scanner, item, resend) index makes a resend through another worker a replay of the
stored decision, as it is across replicas. Audit draws are keyed hashes of
(seed, scanner, item) (atr/policy/audit.py), the same in every worker.
"""

from __future__ import annotations

import ctypes
import dataclasses
import fcntl
import itertools
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from serving import balance
from serving.rate_limit import RateLimit
from serving.request_log import configure_logging
from serving.settings import Settings

SETTINGS_ENV = "ATR_SERVE_SETTINGS"  # {"settings": asdict(Settings), "workers": N, "parent": pid}
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name
# uvicorn pings each worker; a worker still importing (spawned: a fresh interpreter, ~4 s
# of imports on a busy 2-core box) must not be taken for hung and restarted (default 5 s)
HEALTHCHECK_S = 30
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_slot: tuple[int, IO[str]] | None = None  # this worker's download slot, its lock held for life


def worker_count(settings: Settings) -> int:
    """serve.workers, 0 meaning one per core this process may use."""
    return settings.workers or len(os.sched_getaffinity(0))


def serve_workers(settings: Settings, workers: int) -> None:
    """Bind the port, start `workers` worker processes, return once they have all stopped."""
    import uvicorn

    from atr.store.prediction_store import open_store

    open_store(settings.prediction_db).kw["bind"].dispose()  # StoreSchemaError: named, once
    metrics_dir = tempfile.mkdtemp(prefix="atr-serve-metrics-")
    os.environ[METRICS_ENV] = metrics_dir
    os.environ[SETTINGS_ENV] = json.dumps({"settings": dataclasses.asdict(settings),
                                           "workers": workers, "parent": os.getpid()})
    try:
        uvicorn.run("serving.workers:app_factory", factory=True, workers=workers,
                    http="serving.balance:BalancedHttp",  # spreads the connections
                    host=settings.host, port=settings.port, log_level=settings.log_level,
                    access_log=False, log_config=None, timeout_worker_healthcheck=HEALTHCHECK_S)
    finally:
        os.environ.pop(SETTINGS_ENV, None)
        os.environ.pop(METRICS_ENV, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def app_factory() -> Any:
    """The app of one worker process (uvicorn calls it in the worker)."""
    handed = json.loads(os.environ[SETTINGS_ENV])
    _stop_with_parent(int(handed["parent"]))
    settings = _typed(handed["settings"])
    configure_logging(settings.log_level, settings.log_format)
    # configure_logging lets uvicorn's loggers through; its access log stays off, as uvicorn
    # set it before calling us (access_log=False: a line per request costs the hot path)
    logging.getLogger("uvicorn.access").propagate = False
    from serving.app import create_app

    workers = int(handed["workers"])
    mine = worker_settings(settings, workers)
    slot = _slot[0] if _slot else workers
    if slot < workers:  # a replacement started before its predecessor ended: not counted
        balance.table = balance.ConnectionTable(
            Path(os.environ[METRICS_ENV]) / "connections.table", workers, slot)
    return create_app(mine)


def worker_settings(settings: Settings, workers: int) -> Settings:
    """This worker's share: its own download folder, rate / workers per key."""
    global _slot
    _slot = _download_slot(Path(settings.download_dir))
    limits = {role: RateLimit(limit.rate / workers, limit.burst)
              for role, limit in settings.rate_limits.items()}
    return dataclasses.replace(settings, rate_limits=limits,
                               download_dir=str(Path(settings.download_dir) / f"worker-{_slot[0]}"))


def _typed(values: dict[str, Any]) -> Settings:
    """Settings from their asdict() form: Settings.__post_init__ types the nested fields
    again (the rate limits), as it does for a composed config's."""
    return Settings(**values)


def _download_slot(root: Path) -> tuple[int, IO[str]]:
    """The lowest slot no live worker holds (an flock, released when its holder dies)."""
    root.mkdir(parents=True, exist_ok=True)
    for slot in itertools.count():
        fh = (root / f".worker-{slot}.lock").open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        return slot, fh
    raise AssertionError("unreachable")


def _stop_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervisor dies, even by SIGKILL (Linux), so no worker
    outlives it; exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        raise SystemExit(f"atr serve worker: the supervisor (pid {parent}) is gone")
