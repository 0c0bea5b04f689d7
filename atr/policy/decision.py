"""The decision rule the sorting line runs: scores in, CLEAR / REVIEW / INSPECT out.

Pure numpy on purpose: serving imports this module, and it must not pull in
torch, scipy or pandas. Calibration (atr.policy.calibration) produces the
`Policy`; this module only applies and (de)serialises it (`policy.json`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from atr.policy.taxonomy import LOW_RISK_DEFINITIONS

POLICY_FORMAT = "atr-policy"
POLICY_VERSION = 1
PAPER_ONLY = "paper_only"
# How far the policy's claims reach (policy.json `mode`; files without it are certified):
#   certified:   calibrated on enough data; CLEAR (if any) carries the leak bound;
#   triage_only: the calibration split could not certify the bound; never CLEARs, threats
#                go to INSPECT, everything else to REVIEW (atr.policy.calibration).
CERTIFIED, TRIAGE_ONLY = "certified", "triage_only"
MODES = (CERTIFIED, TRIAGE_ONLY)

# The reason of a CLEAR is the policy's low-risk definition (`paper_only` or `no_threat`);
# this is the one of policies calibrated before the definition was configurable.
REASON_CLEAR = PAPER_ONLY
REASON_UNCERTAIN = "uncertain"
REASON_INVALID = "invalid_scores"
THREAT_REASON_PREFIX = "threat:"


class Decision(StrEnum):
    CLEAR = "CLEAR"
    REVIEW = "REVIEW"
    INSPECT = "INSPECT"


@dataclass
class Policy:
    """Thresholds on the model's scores, with the targets and evidence they were calibrated to.

    outputs: score columns in `Taxonomy.model_outputs` order: the low-risk output first
        (one of `LOW_RISK_DEFINITIONS`: `paper_only` or `no_threat`), then threats.
    clear_threshold: low-risk score at or above which an item may be CLEARed;
        +inf (null in JSON) means the policy never clears.
    inspect_thresholds: per threat, the score at or above which the item is INSPECTed.
    clear_guards: optional per threat: CLEAR also needs that threat's score below it.
    scanner_clear_thresholds: per scanner, a clear threshold certified on that scanner's own
        frontline labels (atr.policy.recalibration); other scanners use clear_threshold.
        A scanner's threshold is never below the global one (the recalibration only
        tightens or re-certifies it), so the global bound is never loosened.
    mode: `certified` or `triage_only` (never CLEARs; see MODES).
    """

    outputs: list[str]
    clear_threshold: float
    inspect_thresholds: dict[str, float]
    clear_guards: dict[str, float] = field(default_factory=dict)
    scanner_clear_thresholds: dict[str, float] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    version: int = POLICY_VERSION
    mode: str = CERTIFIED

    def __post_init__(self) -> None:
        if not self.outputs or self.outputs[0] not in LOW_RISK_DEFINITIONS:
            raise ValueError(f"policy outputs must start with one of {LOW_RISK_DEFINITIONS} "
                             f"(the low-risk output), got {self.outputs}")
        if self.mode not in MODES:
            raise ValueError(f"policy mode {self.mode!r} not one of {MODES}")
        if self.mode == TRIAGE_ONLY and not math.isinf(self.clear_threshold):
            # A triage policy was never certified to clear: refuse one that would.
            raise ValueError("a triage_only policy never clears: clear_threshold must be null")
        threats = self.threats
        if set(self.inspect_thresholds) != set(threats):
            # A threat without a threshold could never trigger INSPECT: refuse at load time.
            raise ValueError(
                f"policy inspect_thresholds cover {sorted(self.inspect_thresholds)}, "
                f"outputs list threats {threats}"
            )
        extra = sorted(set(self.clear_guards) - set(threats))
        if extra:
            raise ValueError(f"policy clear_guards name unknown threat(s) {extra}")
        for name, value in {**self.inspect_thresholds, **self.clear_guards}.items():
            if not math.isfinite(value):
                raise ValueError(f"policy threshold for {name!r} is not finite: {value}")
        if math.isnan(self.clear_threshold):
            raise ValueError("policy clear_threshold is NaN")
        for scanner, value in self.scanner_clear_thresholds.items():
            if math.isnan(value) or value < self.clear_threshold:
                raise ValueError(f"policy scanner_clear_thresholds.{scanner} = {value} is "
                                 f"below the global clear_threshold {self.clear_threshold}")

    @property
    def threats(self) -> list[str]:
        return list(self.outputs[1:])

    @property
    def low_risk(self) -> str:
        """The low-risk definition the policy was calibrated under (its first output)."""
        return self.outputs[0]

    @property
    def triage_only(self) -> bool:
        return self.mode == TRIAGE_ONLY

    @property
    def clears_nothing(self) -> bool:
        return self.clear_threshold > 1.0

    def threshold_for(self, scanner_id: str | None) -> float:
        """The clear threshold that applies to a scanner's items."""
        if scanner_id is None:
            return self.clear_threshold
        return self.scanner_clear_thresholds.get(str(scanner_id), self.clear_threshold)

    def decide(self, scores: Any, scanner_ids: Any = None) -> tuple[list[Decision], list[str]]:
        """Decide each row of an N x K score matrix (K = len(outputs)); `scanner_ids` (one
        per row) selects per-scanner clear thresholds, the global one otherwise.

        INSPECT if any threat score reaches its threshold (reason `threat:<class>`,
        the highest-scoring such class); else CLEAR if the low-risk score reaches
        clear_threshold and every guarded threat is below its guard (reason: the
        low-risk definition, `paper_only` or `no_threat`); else REVIEW (`uncertain`).
        A triage_only policy never CLEARs. Fail-safe: a row that is not
        finite or outside [0, 1], or a matrix of the wrong shape, is INSPECTed
        with reason `invalid_scores`; nothing invalid is ever CLEARed.
        """
        try:
            matrix = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError):
            return _all_invalid(_row_count(scores))
        if matrix.ndim != 2 or matrix.shape[1] != len(self.outputs):
            return _all_invalid(matrix.shape[0] if matrix.ndim >= 1 else 1)

        valid = np.all(np.isfinite(matrix) & (matrix >= 0.0) & (matrix <= 1.0), axis=1)
        threat_scores = matrix[:, 1:]
        inspect_at = np.array([self.inspect_thresholds[t] for t in self.threats])

        over = threat_scores >= inspect_at
        inspect = over.any(axis=1)
        clear = ~inspect & self.clear_eligible(matrix, scanner_ids) & (not self.triage_only)
        # Which threat to name: the highest score among those over their threshold.
        named = np.argmax(np.where(over, threat_scores, -np.inf), axis=1)
        threat_reasons = np.array([THREAT_REASON_PREFIX + t for t in self.threats], dtype=object)

        # Integer codes, then Decision members: numpy would turn the str-enum into plain str.
        codes = np.zeros(matrix.shape[0], dtype=np.int8)  # 0 REVIEW, 1 CLEAR, 2 INSPECT
        reasons = np.full(matrix.shape[0], REASON_UNCERTAIN, dtype=object)
        codes[clear], reasons[clear] = 1, self.low_risk
        codes[inspect] = 2
        reasons[inspect] = threat_reasons[named[inspect]]
        # Last, so that it overrides anything the comparisons made of a bad row.
        codes[~valid], reasons[~valid] = 2, REASON_INVALID
        by_code = (Decision.REVIEW, Decision.CLEAR, Decision.INSPECT)
        return [by_code[c] for c in codes.tolist()], reasons.tolist()

    def clear_eligible(self, matrix: np.ndarray, scanner_ids: Any = None) -> np.ndarray:
        """Rows that CLEAR would take if no threat reached INSPECT: low-risk score at or over
        the (scanner's) clear threshold and every guarded threat under its guard."""
        guard_at = np.array([self.clear_guards.get(t, np.inf) for t in self.threats])
        guarded = np.all(matrix[:, 1:] < guard_at, axis=1)
        if scanner_ids is None or not self.scanner_clear_thresholds:
            at: Any = self.clear_threshold
        else:
            ids = list(scanner_ids)
            if len(ids) != matrix.shape[0]:
                raise ValueError(f"{len(ids)} scanner ids for {matrix.shape[0]} score rows")
            at = np.array([self.threshold_for(s) for s in ids], dtype=np.float64)
        return guarded & (matrix[:, 0] >= at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT,
            "version": self.version,
            "mode": self.mode,
            "low_risk": self.low_risk,
            "outputs": list(self.outputs),
            # JSON has no infinity: null is "never clear".
            "clear_threshold": None if math.isinf(self.clear_threshold) else self.clear_threshold,
            "inspect_thresholds": dict(self.inspect_thresholds),
            "clear_guards": dict(self.clear_guards),
            "scanner_clear_thresholds": dict(self.scanner_clear_thresholds),
            "targets": self.targets,
            "calibration": self.calibration,
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        # allow_nan=False: policy.json must be plain JSON any consumer can parse.
        return json.dumps(_plain(self.to_dict()), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        if data.get("format") != POLICY_FORMAT:
            raise ValueError(f"not an ATR policy (format={data.get('format')!r})")
        version = int(data.get("version", 0))
        if version != POLICY_VERSION:
            raise ValueError(f"policy format version {version} not supported ({POLICY_VERSION})")
        clear = data.get("clear_threshold")
        outputs = [str(o) for o in data["outputs"]]
        low_risk = data.get("low_risk")
        if low_risk is not None and (not outputs or str(low_risk) != outputs[0]):
            raise ValueError(f"policy low_risk {low_risk!r} is not its first output {outputs[:1]}")
        return cls(
            outputs=outputs,
            clear_threshold=math.inf if clear is None else float(clear),
            inspect_thresholds={str(k): float(v) for k, v in data["inspect_thresholds"].items()},
            clear_guards={str(k): float(v) for k, v in (data.get("clear_guards") or {}).items()},
            scanner_clear_thresholds={str(k): float(v) for k, v in
                                      (data.get("scanner_clear_thresholds") or {}).items()},
            targets=dict(data.get("targets") or {}),
            calibration=dict(data.get("calibration") or {}),
            warnings=[str(w) for w in data.get("warnings") or []],
            version=version,
            # Files written before triage mode existed were all calibrated in full.
            mode=str(data.get("mode") or CERTIFIED),
        )

    @classmethod
    def from_json(cls, text: str) -> Policy:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        return cls.from_json(Path(path).read_text())


def _row_count(scores: Any) -> int:
    if isinstance(scores, str | bytes):
        return 1
    try:
        return max(len(scores), 1)
    except TypeError:
        return 1


def _all_invalid(n: int) -> tuple[list[Decision], list[str]]:
    return [Decision.INSPECT] * n, [REASON_INVALID] * n


def _plain(value: Any) -> Any:
    """numpy scalars and tuples to JSON types (calibration evidence is built from numpy)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
