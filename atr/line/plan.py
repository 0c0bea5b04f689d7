"""The line's plan: phases of parcels, each from one scanner profile and one class mix.

A drift drill is a plan with several phases, e.g. the 160 kV scanner for 500 items then
a second vendor's 140 kV scanner for 500 more: the service and the monitor see the switch
exactly where a real office would see a new machine come online.

A phase may also replay a dataset folder instead of simulating (atr/line/replay.py):
`{dataset: data/imports/hums, split: test, count: 500, scanner_id: hums-1}` sends the
split's real scans, cycling in a seeded order, with the manifest's truth (`offset: k`
starts k items into that order, so a replay can continue in chunks).
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
_REPLAY_KEYS = {"name", "dataset", "split", "count", "offset", "scanner_id"}


@dataclass(frozen=True)
class Phase:
    index: int
    name: str
    scanner: str  # conf/scanner/<name>.yaml (or a path)
    mix: str  # conf/mix/<name>.yaml (or a path)
    count: int
    ageing_years: float | None = None  # None: the profile's own ageing
    # A replay phase (scanner/mix unused): a dataset folder, its split ("all": every row)
    # and the scanner id sent with its items (None: each row's own scanner_id).
    dataset: str | None = None
    split: str = "test"
    scanner_id: str | None = None
    offset: int = 0  # start this many items into the replay's seeded order (resume)

    @property
    def replay(self) -> bool:
        return self.dataset is not None

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
    """`line.phases` (a list of {scanner, mix, count, name, ageing_years}, or of replays
    {dataset, split, count, scanner_id, name}) or one phase built from `line.scanner`,
    `line.mix`, `line.count`. A simulated phase without a count gets an equal share of
    `line.count`; a replay without one sends its split once (its count is set when the
    dataset is read, atr/line/replay.py)."""
    raw = _plain(line.get("phases")) or []
    count = int(line.get("count") or 0)
    if not raw:
        raw = [{"scanner": line.get("scanner", "parcel_160kv"),
                "mix": line.get("mix", "default"), "count": count}]
    phases = []
    for i, spec in enumerate(raw):
        spec = dict(_plain(spec))
        if "dataset" in spec:
            phases.append(_replay_phase(i, spec))
            continue
        unknown = set(spec) - _PHASE_KEYS
        if unknown:
            raise ValueError(f"line.phases[{i}]: unknown key(s) {sorted(unknown)}; "
                             f"allowed {sorted(_PHASE_KEYS)} (or a replay: "
                             f"{sorted(_REPLAY_KEYS)})")
        n = int(spec.get("count") or count // len(raw))
        if n < 1:
            raise ValueError(f"line.phases[{i}]: count must be >= 1 (got {n})")
        scanner = str(spec.get("scanner") or line.get("scanner", "parcel_160kv"))
        mix = str(spec.get("mix") or line.get("mix", "default"))
        ageing = spec.get("ageing_years")
        phases.append(Phase(i, str(spec.get("name") or f"{i}:{scanner}/{mix}"), scanner, mix, n,
                            None if ageing is None else float(ageing)))
    return phases


def _replay_phase(i: int, spec: dict[str, Any]) -> Phase:
    unknown = set(spec) - _REPLAY_KEYS
    if unknown:
        raise ValueError(f"line.phases[{i}]: unknown key(s) {sorted(unknown)} for a replay "
                         f"phase; allowed {sorted(_REPLAY_KEYS)}")
    if not spec.get("dataset"):
        raise ValueError(f"line.phases[{i}]: dataset is empty (a dataset folder to replay)")
    n = int(spec.get("count") or 0)  # 0: the split once, set by atr.line.replay
    if n < 0:
        raise ValueError(f"line.phases[{i}]: count must be >= 0 (0: the split once; got {n})")
    dataset, split = str(spec["dataset"]), str(spec.get("split") or "test")
    scanner_id, offset = spec.get("scanner_id"), int(spec.get("offset") or 0)
    if offset < 0:
        raise ValueError(f"line.phases[{i}]: offset must be >= 0 (got {offset})")
    return Phase(i, str(spec.get("name") or f"{i}:replay {Path(dataset).name}/{split}"),
                 str(scanner_id or "dataset"), "replay", n, dataset=dataset, split=split,
                 scanner_id=None if scanner_id is None else str(scanner_id), offset=offset)


def item_ids_and_seeds(phases: list[Phase], seed: int, prefix: str) -> list[tuple[str, int]]:
    """(item_id, simulator seed) per parcel in line order. Seeds run on across phases, so
    every parcel is a new scene; ids carry the run prefix so two runs never collide."""
    out, i = [], 0
    for phase in phases:
        for _ in range(phase.count):
            out.append((f"{prefix}-{i:06d}", item_seed(seed, i)))
            i += 1
    return out
