"""`atr serve`: uvicorn with the app, settings from conf/serve.yaml (+ overrides)."""

from __future__ import annotations

from typing import Any

from serving.request_log import configure_logging
from serving.settings import settings_from_cfg


def run(cfg: Any) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.workers import serve_workers, worker_count

    settings = settings_from_cfg(cfg)
    configure_logging(settings.log_level, settings.log_format)
    workers = worker_count(settings)
    if workers > 1:  # N processes on the port, each its own micro-batcher (serving/workers.py)
        serve_workers(settings, workers)
        return
    # One process, one event loop: the micro-batcher needs all requests in the same
    # queue. Scale out with workers, or replicas behind a load balancer (shared store).
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level, access_log=False, log_config=None)
