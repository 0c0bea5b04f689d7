"""Prometheus metrics of the service, in a registry of its own (several apps in one process,
as in tests, never collide in the global one).

With `serve.workers` > 1 (serving/workers.py), prometheus_client's multiprocess mode is on
(PROMETHEUS_MULTIPROC_DIR, set by the parent before the workers start): every counter and
histogram is kept in a file per worker, and /metrics sums them over all the workers,
whichever one answers. The gauges are not summed: they describe state (the model being
served, the stored safe-mode flags, the leak figures read from the shared store at each
scrape), the same in every worker but for the few seconds of a model swap, and come from
the answering worker's own registry.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # read at construction, as prometheus_client reads it at import
        self.shared_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if self.shared_dir:
            # The gauges' series are removed from this worker's registry, which is where
            # they are read from (_AllWorkers); the stale value left in the worker's file is
            # never read, so prometheus_client's warning does not apply.
            warnings.filterwarnings("ignore", r"(Removal|Clearing) of labels has not been",
                                    UserWarning, "prometheus_client")
        r = self.registry
        self.requests = Counter("atr_requests_total", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "atr_request_latency_seconds", "HTTP request latency by endpoint", ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r)
        self.decisions = Counter("atr_decisions_total", "Decisions sent to the sorter",
                                 ["decision"], registry=r)
        self.failsafe = Counter("atr_failsafe_total", "Fail-safe INSPECT decisions by reason",
                                ["reason"], registry=r)
        self.model_info = Gauge("atr_model_info", "1 for the model version being served",
                                ["name", "version", "role"], registry=r)
        self.swaps = Counter("atr_model_swaps_total", "Model swaps (approvals and rollbacks)",
                             ["role"], registry=r)
        self.swap_failures = Counter("atr_model_swap_failures_total",
                                     "Candidate versions refused (old model kept), by cause: "
                                     "registry|checksum|package|warm_up|unapproved",
                                     ["role", "cause"], registry=r)
        # The line's rules: the audit share is audits / would_clear per scanner.
        self.would_clear = Counter("atr_would_clear_total",
                                   "Items the policy would CLEAR, by scanner", ["scanner"],
                                   registry=r)
        self.audits = Counter("atr_audits_total", "Would-be CLEARs sent to INSPECT as audits",
                              ["scanner"], registry=r)
        self.implausible = Counter("atr_implausible_total",
                                   "Items whose image failed a plausibility check",
                                   ["check"], registry=r)
        self.safe_mode_held = Counter("atr_safe_mode_decisions_total",
                                      "Would-be CLEARs held back by safe mode", ["scanner"],
                                      registry=r)
        self.safe_mode = Gauge("atr_safe_mode", "1 while a scanner is in stored safe mode",
                               ["scanner", "cause"], registry=r)
        self.leak = Gauge("atr_leak", "Live leak monitor figures (atr monitor), by scanner "
                          "and model version", ["scanner", "version", "figure"], registry=r)
        # Keys (serving/api_common.py): refusals by reason, 429s by key name
        self.auth_refused = Counter("atr_auth_refused_total", "Calls refused by the key "
                                    "check (401/403/503)", ["reason"], registry=r)
        self.rate_limited = Counter("atr_rate_limited_total", "Calls refused 429 by a key's "
                                    "rate limit (per replica)", ["key_name"], registry=r)
        self.batch_size = Histogram("atr_batch_size", "Images per ONNX run (micro-batch)",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)

    def set_model(self, role: str, name: str, version: str | None) -> None:
        """Exactly one info series per role: the one being served."""
        for labels in list(self.model_info._metrics):  # noqa: SLF001  # no public removal-by-role API
            if labels[2] == role:
                self.model_info.remove(*labels)
        if version is not None:
            self.model_info.labels(name=name, version=version, role=role).set(1)

    def count_line(self, row: dict) -> None:
        """The line-rule counters for one stored decision."""
        would = row.get("would_be") or {}
        scanner = str(row.get("scanner_id"))
        if would.get("decision") == "CLEAR":
            self.would_clear.labels(scanner=scanner).inc()
        if row.get("audit"):
            self.audits.labels(scanner=scanner).inc()
        reason = str(row.get("reason") or "")
        if reason.startswith("image_implausible:"):
            self.implausible.labels(check=reason.split(":", 1)[1]).inc()
        elif reason == "safe_mode":
            self.safe_mode_held.labels(scanner=scanner).inc()

    def set_line_state(self, stored: dict, leaks: list) -> None:
        """Gauges from the shared store's state, refreshed at each scrape."""
        self.safe_mode.clear()
        for scanner, state in stored.items():
            self.safe_mode.labels(scanner=scanner, cause=str(state.get("cause"))).set(1)
        self.leak.clear()
        for est in leaks:
            for figure in ("audits", "leaks", "rate", "upper", "statistic", "alarm"):
                value = est.get(figure)
                if value is not None:
                    self.leak.labels(scanner=est["scanner_id"], version=est["model_version"],
                                     figure=figure).set(float(value))

    def render(self) -> bytes:
        if self.shared_dir is None:
            return generate_latest(self.registry)
        scrape = CollectorRegistry()
        scrape.register(_AllWorkers(self.shared_dir, self.registry))
        return generate_latest(scrape)


class _AllWorkers:
    """Counters and histograms summed over every worker's file; gauges from this worker."""

    def __init__(self, path: str, own: CollectorRegistry) -> None:
        self.path, self.own = path, own

    def collect(self) -> Iterator[Metric]:
        files = glob.glob(os.path.join(self.path, "*.db"))
        for metric in MultiProcessCollector.merge(files, accumulate=True):
            if metric.type != "gauge":
                yield metric
        for metric in self.own.collect():
            if metric.type == "gauge":
                yield metric
