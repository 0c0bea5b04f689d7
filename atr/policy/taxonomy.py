"""The class taxonomy, read from configuration (conf/taxonomy/)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

GROUPS = ("paper", "goods", "threat")
# What "low risk" (the CLEAR evidence, the model's first output) means:
#   paper_only: only paper products visible -- the customs screening label (default);
#   no_threat:  no threat present -- for sources whose threat labels are complete
#               (public archives label threats, none labels "paper only").
# Each is also a manifest truth column (1 = positive evidence, 0 = not known to be).
LOW_RISK_DEFINITIONS = ("paper_only", "no_threat")


@dataclass(frozen=True)
class ClassSpec:
    name: str
    group: str
    shape: str


@dataclass(frozen=True)
class Taxonomy:
    name: str
    classes: tuple[ClassSpec, ...]
    low_risk: str = "paper_only"

    def __post_init__(self) -> None:
        if self.low_risk not in LOW_RISK_DEFINITIONS:
            raise ValueError(
                f"taxonomy low_risk {self.low_risk!r} not one of {LOW_RISK_DEFINITIONS}"
            )

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def paper(self) -> list[str]:
        return [c.name for c in self.classes if c.group == "paper"]

    @property
    def goods(self) -> list[str]:
        return [c.name for c in self.classes if c.group == "goods"]

    @property
    def threats(self) -> list[str]:
        return [c.name for c in self.classes if c.group == "threat"]

    @property
    def model_outputs(self) -> list[str]:
        """Heads the screening model predicts: the low-risk score first, then each threat."""
        return [self.low_risk, *self.threats]

    def spec(self, name: str) -> ClassSpec:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(f"class {name!r} is not in taxonomy {self.name!r} ({', '.join(self.names)})")

    def paper_only(self, present: Mapping[str, int]) -> int:
        """1 when at least one paper class and nothing else is present.

        Only meaningful for completely labelled items (the simulator, an
        analyst's verdict); importers of partly labelled data decide for
        themselves and default to 0, the fail-safe answer.
        """
        has_paper = any(present.get(n, 0) for n in self.paper)
        has_other = any(present.get(n, 0) for n in self.names if n not in self.paper)
        return int(has_paper and not has_other)

    def no_threat(self, present: Mapping[str, int]) -> int:
        """1 when no threat class is present. Only meaningful when the item's threat
        labels are complete; importers of sources that are not say 0 (fail-safe)."""
        return int(not any(present.get(n, 0) for n in self.threats))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "low_risk": self.low_risk,
                "classes": [c.__dict__ for c in self.classes]}

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> Taxonomy:
        raw: Sequence[Mapping[str, Any]] = cfg.get("classes") or []
        if not raw:
            raise ValueError("taxonomy has no classes")
        specs = []
        for i, c in enumerate(raw):
            missing = {"name", "group"} - set(c)
            if missing:
                raise ValueError(f"taxonomy class #{i}: missing field(s) {sorted(missing)}")
            if c["group"] not in GROUPS:
                raise ValueError(
                    f"taxonomy class {c['name']!r}: group {c['group']!r} not one of {GROUPS}"
                )
            specs.append(ClassSpec(str(c["name"]), str(c["group"]), str(c.get("shape", c["name"]))))
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"taxonomy: duplicate class name(s) {dupes}")
        reserved = {*LOW_RISK_DEFINITIONS, "image", "raw", "item_id", "split", "scanner_id",
                    "source", "width", "height", "boxes", "meta"}
        clash = sorted(reserved & set(names))
        if clash:
            raise ValueError(f"taxonomy: class name(s) {clash} clash with manifest columns")
        if not any(s.group == "paper" for s in specs):
            raise ValueError("taxonomy needs at least one paper class")
        return cls(name=str(cfg.get("name", "custom")), classes=tuple(specs),
                   low_risk=str(cfg.get("low_risk") or "paper_only"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Taxonomy:
        with open(path) as fh:
            return cls.from_dict(yaml.safe_load(fh))


def default_taxonomy() -> Taxonomy:
    from atr.config import conf_dir

    return Taxonomy.from_yaml(conf_dir() / "taxonomy" / "default.yaml")
