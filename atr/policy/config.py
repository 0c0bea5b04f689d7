"""The calibration targets of the decision policy (conf/policy/*.yaml), without Hydra."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

# What calibration does when the split cannot support the policy's claims (too few items
# that are not low risk for the leak bound, too few positives of a threat class):
#   triage: register a triage-only policy (never CLEARs; threats INSPECT, rest REVIEW);
#   error:  refuse (InsufficientCalibrationError), the evaluate stage fails.
ON_INSUFFICIENT = ("triage", "error")


@dataclass(frozen=True)
class PolicyConfig:
    """What the calibrated policy must guarantee; see conf/policy/default.yaml."""

    leak_rate_target: float = 0.005
    confidence: float = 0.95
    threat_recall_target: float = 0.95
    threat_recall_targets: dict[str, float] = field(default_factory=dict)
    max_threat_cleared: int = 0
    min_threat_positives: int = 10
    clear_guard: float | None = None
    on_insufficient: str = "triage"
    # A triage policy's inspect threshold for a class with too few positives is capped here
    # (and is this for a class with none): see atr.policy.calibration.triage_inspect_threshold.
    triage_inspect_threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("leak_rate_target", "confidence", "threat_recall_target"):
            value = getattr(self, name)
            _require(0.0 < value < 1.0, f"{name} must lie in (0, 1), got {value}")
        for cls, value in self.threat_recall_targets.items():
            _require(0.0 < value <= 1.0, f"threat_recall_targets.{cls} must lie in (0, 1]")
        _require(self.max_threat_cleared >= 0, "max_threat_cleared must be >= 0")
        _require(self.min_threat_positives >= 1, "min_threat_positives must be >= 1")
        guard = self.clear_guard
        _require(guard is None or 0.0 < guard <= 1.0, "clear_guard must be null or in (0, 1]")
        _require(self.on_insufficient in ON_INSUFFICIENT,
                 f"on_insufficient must be one of {ON_INSUFFICIENT}, got {self.on_insufficient!r}")
        fallback = self.triage_inspect_threshold
        _require(0.0 < fallback <= 1.0,
                 f"triage_inspect_threshold must lie in (0, 1], got {fallback}")

    def recall_target(self, threat: str) -> float:
        return self.threat_recall_targets.get(threat, self.threat_recall_target)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["threat_recall_targets"] = dict(self.threat_recall_targets)
        return data

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> PolicyConfig:
        """Build from the `policy` node of a Hydra config (DictConfig or plain dict)."""
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            # A misspelt key would silently fall back to a default target: refuse it.
            raise ValueError(f"policy config: unknown key(s) {unknown}; known: {sorted(known)}")
        args: dict[str, Any] = {}
        for key in ("leak_rate_target", "confidence", "threat_recall_target",
                    "triage_inspect_threshold"):
            if key in cfg:
                args[key] = float(cfg[key])
        for key in ("max_threat_cleared", "min_threat_positives"):
            if key in cfg:
                args[key] = int(cfg[key])
        if cfg.get("threat_recall_targets") is not None:
            args["threat_recall_targets"] = {
                str(k): float(v) for k, v in dict(cfg["threat_recall_targets"]).items()
            }
        if "on_insufficient" in cfg:
            args["on_insufficient"] = str(cfg["on_insufficient"])
        if cfg.get("clear_guard") is not None:
            args["clear_guard"] = float(cfg["clear_guard"])
        return cls(**args)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PolicyConfig:
        with open(path) as fh:
            return cls.from_dict(yaml.safe_load(fh))


def default_policy_config() -> PolicyConfig:
    from atr.config import conf_dir

    return PolicyConfig.from_yaml(conf_dir() / "policy" / "default.yaml")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"policy config: {message}")
