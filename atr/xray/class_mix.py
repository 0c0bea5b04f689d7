"""What goes into a simulated item: conf/mix/*.yaml (Hydra group `mix`).

Shares of paper-only items and of items with threats, per-class weights,
how often threats are concealed and with which trick, and how cluttered the
parcels are. Drift drills swap the mix (seasonal goods, new concealment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Concealment tricks and the threat shape families each can hide. A trick
# whose host class is missing from the taxonomy falls back to under_clutter.
TRICKS: dict[str, dict[str, Any]] = {
    "in_book": {"host": "book", "threats": {"narcotics", "lithium_battery", "knife", "ammunition"}},
    "between_documents": {"host": "document", "threats": {"narcotics", "knife", "lithium_battery"}},
    "in_electronics": {"host": "electronics", "threats": {"narcotics", "lithium_battery",
                                                           "ammunition"}},
    "in_shoes": {"host": "shoes", "threats": {"narcotics", "knife", "ammunition",
                                               "lithium_battery"}},
    "under_clutter": {"host": None, "threats": None},  # any threat, goods piled over it
}


@dataclass(frozen=True)
class ClassMix:
    name: str = "default"
    p_paper_only: float = 0.35
    p_threat: float = 0.25
    p_second_threat: float = 0.1
    p_envelope: float = 0.25
    p_small_threat: float = 0.25
    p_concealed: float = 0.35
    tricks: dict[str, float] = field(default_factory=lambda: {"under_clutter": 1.0})
    paper_items: tuple[int, int] = (1, 4)  # min, max paper products in a paper-only item
    clutter_items: tuple[int, int] = (1, 7)  # min, max goods in other items
    paper_weights: dict[str, float] = field(default_factory=dict)
    goods_weights: dict[str, float] = field(default_factory=dict)
    threat_weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ClassMix:
        from atr.xray.scanner_profile import _plain

        cfg = _plain(cfg)
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"class mix: unknown key(s) {sorted(unknown)}")
        for key in ("paper_items", "clutter_items"):
            if key in cfg:
                cfg[key] = tuple(int(x) for x in cfg[key])
        for key in ("tricks", "paper_weights", "goods_weights", "threat_weights"):
            if key in cfg:
                cfg[key] = {str(k): float(v) for k, v in (cfg[key] or {}).items()}
        mix = cls(**cfg)
        mix.validate()
        return mix

    def validate(self) -> None:
        for name in ("p_paper_only", "p_threat", "p_second_threat", "p_envelope",
                     "p_small_threat", "p_concealed"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"class mix {self.name}: {name} must be in [0, 1]")
        if self.p_paper_only + self.p_threat > 1.0:
            raise ValueError(f"class mix {self.name}: p_paper_only + p_threat > 1")
        bad = set(self.tricks) - set(TRICKS)
        if bad:
            raise ValueError(f"class mix {self.name}: unknown trick(s) {sorted(bad)}; "
                             f"known: {sorted(TRICKS)}")
        for lo, hi in (self.paper_items, self.clutter_items):
            if not 0 <= lo <= hi:
                raise ValueError(f"class mix {self.name}: item ranges must be 0 <= min <= max")

    def check_against(self, class_names: list[str]) -> None:
        """Weights may only name classes of the taxonomy (typos would silently drop a class)."""
        for key in ("paper_weights", "goods_weights", "threat_weights"):
            bad = set(getattr(self, key)) - set(class_names)
            if bad:
                raise ValueError(
                    f"class mix {self.name}: {key} names unknown class(es) {sorted(bad)}")


def pick(rng: np.random.Generator, names: list[str], weights: Mapping[str, float]) -> str:
    """One name; classes not listed in the weights get weight 1 (new classes still appear)."""
    w = np.array([max(weights.get(n, 1.0), 0.0) for n in names], dtype=float)
    if w.sum() <= 0:
        w = np.ones(len(names))
    return names[int(rng.choice(len(names), p=w / w.sum()))]
