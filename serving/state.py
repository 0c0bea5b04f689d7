"""What one running service holds (one per app, so tests can run several in a process)."""

from __future__ import annotations

from dataclasses import dataclass

from atr.store.image_store import ImageStore
from serving.line_state import LineState
from serving.metrics import ServiceMetrics
from serving.model_manager import ModelManager
from serving.recorder import PredictionRecorder
from serving.scan_service import ScanService
from serving.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    models: ModelManager
    recorder: PredictionRecorder
    images: ImageStore
    scans: ScanService
    line: LineState

    @classmethod
    def build(cls, settings: Settings) -> ServiceState:
        metrics = ServiceMetrics()
        models = ModelManager(settings, metrics)
        recorder = PredictionRecorder(settings.prediction_db)
        images = ImageStore(settings.image_store)
        line = LineState(settings, recorder.sessions)
        models.on_champion.append(lambda m: line.on_champion(m.version, m.policy))
        scans = ScanService(settings, models, recorder, images, line)
        return cls(settings, metrics, models, recorder, images, scans, line)
