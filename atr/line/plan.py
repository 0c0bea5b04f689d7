"""The line's plan: phases of parcels, each from one scanner profile and one class mix.

A drift drill is a plan with several phases, e.g. the 160 kV scanner for 500 items then
a second vendor's 140 kV scanner for 500 more: the service and the monitor see the switch
exactly where a real office would see a new machine come online.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from atr.config import conf_dir
from atr.data.synth import item_seed
from atr.xray import ClassMix, load_profile

_PHASE_KEYS = {"name", "scanner", "mix", "count", "ageing_years"}


@dataclass(frozen=True)
class Phase:
    index: int
    name: str
    scanner: str  # conf/scanner/<name>.yaml (or a path)
    mix: str  # conf/mix/<name>.yaml (or a path)
    count: int
    ageing_years: float | None = None  # None: the profile's own ageing

    def profile_dict(self) -> dict[str, Any]:
        profile = load_profile(self.scanner)
        if self.ageing_years is not None:
            profile = profile.with_ageing(float(self.ageing_years))
        return profile.to_dict()

    def mix_dict(self) -> dict[str, Any]:
        return load_mix(self.mix)


def load_mix(name_or_path: str) -> dict[str, Any]:
    """A class mix by name (conf/mix/<name>.yaml) or path, validated."""
    path = (Path(name_or_path) if name_or_path.endswith((".yaml", ".yml"))
            else conf_dir() / "mix" / f"{name_or_path}.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"class mix {name_or_path!r}: no file {path}")
    raw = yaml.safe_load(path.read_text())
    ClassMix.from_dict(raw)  # refuse a bad mix before rendering anything
    return raw


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def phases_from_cfg(line: Mapping[str, Any]) -> list[Phase]:
    """`line.phases` (a list of {scanner, mix, count, name, ageing_years}) or one phase
    built from `line.scanner`, `line.mix`, `line.count`. A phase without a count gets an
    equal share of `line.count`."""
    raw = _plain(line.get("phases")) or []
    count = int(line.get("count") or 0)
    if not raw:
        raw = [{"scanner": line.get("scanner", "parcel_160kv"),
                "mix": line.get("mix", "default"), "count": count}]
    phases = []
    for i, spec in enumerate(raw):
        spec = dict(_plain(spec))
        unknown = set(spec) - _PHASE_KEYS
        if unknown:
            raise ValueError(f"line.phases[{i}]: unknown key(s) {sorted(unknown)}; "
                             f"allowed {sorted(_PHASE_KEYS)}")
        n = int(spec.get("count") or count // len(raw))
        if n < 1:
            raise ValueError(f"line.phases[{i}]: count must be >= 1 (got {n})")
        scanner = str(spec.get("scanner") or line.get("scanner", "parcel_160kv"))
        mix = str(spec.get("mix") or line.get("mix", "default"))
        ageing = spec.get("ageing_years")
        phases.append(Phase(i, str(spec.get("name") or f"{i}:{scanner}/{mix}"), scanner, mix, n,
                            None if ageing is None else float(ageing)))
    return phases


def item_ids_and_seeds(phases: list[Phase], seed: int, prefix: str) -> list[tuple[str, int]]:
    """(item_id, simulator seed) per parcel in line order. Seeds run on across phases, so
    every parcel is a new scene; ids carry the run prefix so two runs never collide."""
    out, i = [], 0
    for phase in phases:
        for _ in range(phase.count):
            out.append((f"{prefix}-{i:06d}", item_seed(seed, i)))
            i += 1
    return out
