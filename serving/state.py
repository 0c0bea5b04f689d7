"""What one running service holds (one per app, so tests can run several in a process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from atr.store.image_store import ImageStore, open_image_store
from atr.store.s3_images import S3ImageStore
from serving.keys import KeyRegistry
from serving.line_state import LineState
from serving.metrics import ServiceMetrics
from serving.model_manager import ModelManager
from serving.rate_limit import RateLimiter
from serving.recorder import PredictionRecorder
from serving.scan_service import ScanService
from serving.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    models: ModelManager
    recorder: PredictionRecorder
    images: ImageStore | S3ImageStore
    scans: ScanService
    line: LineState
    keys: KeyRegistry = field(default_factory=lambda: KeyRegistry(None))
    limiter: RateLimiter = field(default_factory=RateLimiter)

    @classmethod
    def build(cls, settings: Settings) -> ServiceState:
        metrics = ServiceMetrics()
        models = ModelManager(settings, metrics)
        recorder = PredictionRecorder(settings.prediction_db)
        images = open_image_store(settings.image_store)  # a folder or s3://
        line = LineState(settings, recorder.sessions)
        models.on_champion.append(lambda m: line.on_champion(m.version, m.policy))
        scans = ScanService(settings, models, recorder, images, line)
        return cls(settings, metrics, models, recorder, images, scans, line,
                   KeyRegistry(settings.keys_file))
