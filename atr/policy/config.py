"""The calibration targets of the decision policy (`policy` in conf/), without Hydra.

PolicyConfig holds the defaults: it is the structured config of the `policy` group
(conf/policy/default.yaml only overrides it; atr/config_schema.py registers it), and the
object calibration takes. One class, so the YAML default and the code default cannot part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from atr.structured import to_dataclass

# What calibration does when the split cannot support the policy's claims (too few items
# that are not low risk for the leak bound, too few positives of a threat class):
#   triage: register a triage-only policy (never CLEARs; threats INSPECT, rest REVIEW);
#   error:  refuse (InsufficientCalibrationError), the evaluate stage fails.
ON_INSUFFICIENT = ("triage", "error")


@dataclass(frozen=True)
class PolicyConfig:
    """What the calibrated policy must guarantee, on the held-out `calib` split.

    Leak = an item that is not low risk decided CLEAR (released without a human looking);
    low risk is the taxonomy's `low_risk` (paper_only or no_threat), the model's first
    output. The policy claims P(leak rate <= leak_rate_target) >= confidence, from an exact
    one-sided Clopper-Pearson bound. Zero leaks in n items support that claim only when
    n >= ln(1 - confidence) / ln(1 - leak_rate_target): 598 items that are not low risk at
    these defaults; calibration never overstates the bound on a smaller set (on_insufficient).
    """

    leak_rate_target: float = 0.005
    confidence: float = 0.95
    # Share of items of each threat class that must reach INSPECT on the calibration set.
    threat_recall_target: float = 0.95
    # Per-class overrides, e.g. {knife: 0.97, firearm: 0.99}.
    threat_recall_targets: dict[str, float] = field(default_factory=dict)
    # Threat items the chosen clear threshold may CLEAR on the calibration set (0: none).
    max_threat_cleared: int = 0
    # A recall claim needs this many positives of the class in the calibration set.
    min_threat_positives: int = 10
    # None: CLEAR needs only "no threat at INSPECT"; a float g additionally requires every
    # threat score < g (a stricter second look before releasing an item unseen).
    clear_guard: float | None = None
    # When the calibration split cannot support the claims (ON_INSUFFICIENT above): triage
    # registers a triage-only policy (policy.json mode: triage_only; its first warning says
    # why and how many more labelled items would certify CLEAR); error refuses.
    on_insufficient: str = "triage"
    # A triage policy's inspect threshold for a class with too few positives is the
    # recall-target rule on the positives there are, capped here (never less sensitive);
    # a class with none gets this value (atr.policy.calibration.triage_inspect_threshold).
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
        """From the `policy` node of a composed config, or a (partial) plain dict: missing
        keys take the defaults above; a misspelt key or a wrong type is refused, named."""
        return to_dataclass(cls, cfg, "policy config: policy")

    @classmethod
    def from_yaml(cls, path: str | Path) -> PolicyConfig:
        with open(path) as fh:
            raw = yaml.safe_load(fh) or {}
        raw.pop("defaults", None)  # a conf/policy file's Hydra defaults list, not a key
        return cls.from_dict(raw)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"policy config: {message}")
