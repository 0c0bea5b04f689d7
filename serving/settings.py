"""The service's settings: a plain dataclass, built from the `serve` config or directly
(tests build apps without Hydra)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

API_KEYS_ENV = "ATR_API_KEYS"


@dataclass(frozen=True)
class Settings:
    prediction_db: str
    image_store: str
    tracking_uri: str
    registry_uri: str | None = None
    model_name: str = "atr-screening"
    alias: str = "champion"
    shadow: bool = False
    shadow_alias: str = "challenger"
    download_dir: str = "runtime/serve/models"
    host: str = "127.0.0.1"
    port: int = 8080
    poll_seconds: float = 5.0
    max_batch: int = 16
    max_wait_ms: float = 5.0
    timeout_ms: float = 2000.0
    max_upload_bytes: int = 20_000_000
    max_pixels: int | None = None
    embedding_dims: int = 256
    intra_op_threads: int | None = 2
    decode_ahead: bool = True
    api_keys: tuple[str, ...] = field(default_factory=tuple)
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"serve.max_batch must be >= 1, got {self.max_batch}")
        if self.timeout_ms <= 0 or self.max_wait_ms < 0 or self.poll_seconds <= 0:
            raise ValueError("serve.timeout_ms and serve.poll_seconds must be > 0, "
                             "serve.max_wait_ms >= 0")
        if self.max_upload_bytes < 1 or self.embedding_dims < 1:
            raise ValueError("serve.max_upload_bytes and serve.embedding_dims must be >= 1")

    @property
    def registry(self) -> str:
        return self.registry_uri or self.tracking_uri

    def all_api_keys(self) -> frozenset[str]:
        """Configured keys plus those in $ATR_API_KEYS (comma-separated; read at each call so
        a key can be rotated by restarting with a new environment, not a new config)."""
        env = [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",")]
        return frozenset(k for k in (*self.api_keys, *env) if k)


def settings_from_cfg(cfg: Any) -> Settings:
    """Settings from a composed `atr serve` config (the `serve` group); unknown keys refused."""
    from omegaconf import OmegaConf

    raw: dict[str, Any] = OmegaConf.to_container(cfg.serve, resolve=True)  # type: ignore[assignment]
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"serve: unknown setting(s) {unknown}; known: {sorted(known)}")
    raw["api_keys"] = tuple(str(k) for k in raw.get("api_keys") or ())
    return Settings(**raw)
