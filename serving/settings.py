"""The service's settings: a plain dataclass, built from the `serve` config or directly
(tests build apps without Hydra).

Settings holds the defaults: it is the structured config of the `serve` group
(atr/config_schema.py registers it; conf/serve/default.yaml only wires the keys without a
default to paths/registry and may override the rest), so they are written once, here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from atr.policy.audit import DEFAULT_AUDIT_SHARE, DEFAULT_TIGHTENED_SHARE
from serving.keys import ROLES
from serving.rate_limit import RateLimit, default_limits


@dataclass(frozen=True)
class Settings:
    # No defaults: where the runtime lives (conf/paths) and which model (conf/registry).
    prediction_db: str  # SQLite by default; replicas share one PostgreSQL store instead
    image_store: str  # content-addressed frontline images (a shared folder for replicas)
    tracking_uri: str
    model_name: str  # the registered model served (registry.model_name)
    download_dir: str  # downloaded, verified packages
    registry_uri: str | None = None  # None: the tracking store
    alias: str = "champion"  # the alias served; a reviewer moves it to approve / roll back
    shadow: bool = False  # also score with `shadow_alias`, stored in predictions.shadow only
    shadow_alias: str = "challenger"
    host: str = "127.0.0.1"  # loopback by default; 0.0.0.0 behind a load balancer
    port: int = 8080
    # Worker processes on that one port (serving/workers.py: uvicorn's supervisor), each with
    # its own event loop, micro-batcher and copy of the model; 0: one per core this process
    # may use. 1 by default: docs/serving-performance.md has the figures and why.
    workers: int = 1
    poll_seconds: float = 5.0  # how often the alias is re-resolved (swap within ~this delay)
    max_batch: int = 16  # micro-batch: at most this many images per ONNX run ...
    # ... growing at most this long while items keep arriving (an idle queue dispatches at once)
    max_wait_ms: float = 5.0
    timeout_ms: float = 2000.0  # per request; past it the item gets INSPECT / timeout
    max_upload_bytes: int = 20_000_000  # bigger uploads: INSPECT / image_too_large (not decoded)
    max_pixels: int | None = None  # None: the package's preprocess.json max_pixels
    embedding_dims: int = 256  # stored embedding: the whole vector if D <= this, else its head
    # ONNX Runtime threads per scoring run (one scoring thread); 2 measured best with the
    # 4-view model (serving/README.md)
    intra_op_threads: int | None = 2
    # ONNX Runtime's threads busy-wait between runs when true (its default); off, they sleep
    # and leave the cores to the event loop and the decode thread (serving/README.md)
    ort_spinning: bool = False
    # Decode each upload in a decode thread as it arrives, overlapping the ONNX run of the
    # batch before (measured +7 %: serving/README.md)
    decode_ahead: bool = True
    # The API key registry (serving/keys.py, `atr keys`): scanner keys for the scans,
    # inspection/analyst keys for feedback, operator keys for safe mode. Re-read within
    # ~1 s of a change. None (no registry): every keyed call is refused (401).
    keys_file: str | None = None
    # Token bucket per key, by the key's role: rate (items/s) and burst (serving/rate_limit.py)
    rate_limits: dict[str, RateLimit] = field(default_factory=default_limits)
    log_level: str = "info"
    # json: one object a line with the request id (serving/request_log.py); text: a terminal's
    log_format: str = "json"
    # --- the line's rules (atr/policy/line_rules.py) -------------------------------------
    # Share of would-be CLEARs sent to INSPECT as random audits (the only unbiased sample
    # of what CLEAR releases), per scanner in audit_shares, else audit_share; the draw is
    # keyed by audit_seed (keep it secret from the line). A scanner's own share is added
    # with a `+`: atr serve +serve.audit_shares.letter_80kv=0.05
    audit_share: float = DEFAULT_AUDIT_SHARE
    audit_shares: dict[str, float] = field(default_factory=dict)
    audit_seed: int = 0
    # Tightened audits: a scanner whose leak CUSUM is above 0 (an audited leak not yet paid
    # back by clean audits; the monitor's LeakEstimate of the serving version) gets this
    # share while it lasts (atr/monitor/tightened_audits.py). Set monitor.leak.
    # tightened_share alike: the monitor's threshold counts these audits. <= the normal
    # share: no tightening.
    audit_tightened_share: float = DEFAULT_TIGHTENED_SHARE
    # What a scanner in safe mode gets instead of CLEAR: REVIEW (default) or INSPECT
    safe_mode_fallback: str = "REVIEW"
    # A scanner the champion's calibration does not certify is in safe mode
    uncovered_safe_mode: bool = True
    state_poll_seconds: float = 2.0  # how often the stored safe-mode flags are re-read
    plausibility: bool = True  # no CLEAR without evidence in the image
    # Where the evidence is (boxes + peak, atr/package/localisation.py) in the reply and the
    # stored row of every REVIEW/INSPECT item, for a package with a heat-map; CLEARs never
    # pay for it (docs/localisation.md). false: no item gets it.
    localisation: bool = True

    def __post_init__(self) -> None:
        # A composed config gives a list: kept as a tuple, so that settings built either
        # way compare equal.
        limits = {**default_limits(), **{str(k): v if isinstance(v, RateLimit) else RateLimit(
            **dict(v)) for k, v in dict(self.rate_limits or {}).items()}}
        unknown = sorted(set(limits) - set(ROLES))
        if unknown:
            raise ValueError(f"serve.rate_limits.{unknown[0]}: not a key role "
                             f"({', '.join(ROLES)})")
        object.__setattr__(self, "rate_limits", limits)
        object.__setattr__(self, "audit_shares",
                           {str(k): float(v) for k, v in dict(self.audit_shares or {}).items()})
        for name, share in {"audit_share": self.audit_share,
                            "audit_tightened_share": self.audit_tightened_share, **{
                f"audit_shares.{k}": v for k, v in self.audit_shares.items()}}.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"serve.{name} must be in [0, 1], got {share}")
        if self.safe_mode_fallback not in ("REVIEW", "INSPECT"):
            raise ValueError("serve.safe_mode_fallback must be REVIEW or INSPECT, got "
                             f"{self.safe_mode_fallback!r}")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"serve.log_format must be json or text, got {self.log_format!r}")
        if self.state_poll_seconds <= 0:
            raise ValueError("serve.state_poll_seconds must be > 0")
        if self.workers < 0:
            raise ValueError(f"serve.workers must be >= 0 (0: one per core), got {self.workers}")
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


def settings_from_cfg(cfg: Any) -> Settings:
    """Settings from a composed `atr serve` config (the `serve` group); a misspelt key, a
    wrong type or a missing one is refused, named (serve.<key>).

    The group's schema (conf/serve/schema, registered by atr/config_schema.py) already types
    and checks the node at composition, so this only builds the instance; no atr config
    helper is imported, since serving depends on atr.package, atr.store and atr.policy only.
    """
    node = cfg.serve
    if OmegaConf.get_type(node) is not Settings:
        raise ValueError("serve: not composed with the serve schema (defaults: - schema)")
    # `+serve.x=...` gets past composition; the frozen dataclass would refuse it unnamed
    unknown = sorted(set(map(str, node)) - {f.name for f in fields(Settings)})
    if unknown:
        raise ValueError(f"serve.{unknown[0]}: not a serve setting (serving/settings.py)")
    try:
        return OmegaConf.to_object(node)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = f"serve.{exc.full_key}" if getattr(exc, "full_key", None) else "serve"
        raise ValueError(f"{key}: {str(getattr(exc, 'msg', None) or exc).splitlines()[0]}") \
            from None
