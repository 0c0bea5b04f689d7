"""Prometheus metrics of the service, in a registry of its own (several apps in one process,
as in tests, never collide in the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
                                     "Candidate versions refused (old model kept)", ["role"],
                                     registry=r)
        self.batch_size = Histogram("atr_batch_size", "Images per ONNX run (micro-batch)",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)

    def set_model(self, role: str, name: str, version: str | None) -> None:
        """Exactly one info series per role: the one being served."""
        for labels in list(self.model_info._metrics):  # noqa: SLF001  # no public removal-by-role API
            if labels[2] == role:
                self.model_info.remove(*labels)
        if version is not None:
            self.model_info.labels(name=name, version=version, role=role).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
