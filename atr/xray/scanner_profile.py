"""Scanner profiles: one YAML per scanner model in conf/scanner/ (Hydra group `scanner`).

A profile is everything that makes two scanners see the same parcel
differently: tube voltage and filtration (spectrum), the two detector layers
and the copper filter between them (channel energy response), noise, blur,
gain, pixel pitch, the vendor's colour palette, and how the detector ages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Pixel pitch and blur are quoted for a 256-pixel output; other output sizes
# resample the same field of view, so a parcel fills the image the same way.
REFERENCE_SIZE = 256


@dataclass(frozen=True)
class TubeSpec:
    kvp: float
    anode_angle_deg: float = 12.0
    filters: tuple[tuple[str, float], ...] = (("Al", 2.0),)  # (element, mm) after the anode


@dataclass(frozen=True)
class DetectorLayer:
    material: str  # a detector material of atr.xray.materials (csi, gos)
    thickness_mm: float


@dataclass(frozen=True)
class DetectorSpec:
    low: DetectorLayer
    high: DetectorLayer
    cu_filter_mm: float  # between the layers: hardens what reaches the high layer


@dataclass(frozen=True)
class NoiseSpec:
    photons_low: float  # effective quanta per pixel at full scale (sets quantum noise)
    photons_high: float
    electronic_sigma: float  # additive read noise, fraction of full scale


@dataclass(frozen=True)
class AgeingSpec:
    years: float = 0.0
    gain_drift_per_year: float = 0.02  # scintillator and photodiode lose response
    noise_growth_per_year: float = 0.15  # read noise grows (relative, per year)
    row_gain_spread_per_year: float = 0.004  # detector elements drift apart: streaks


@dataclass(frozen=True)
class ScannerProfile:
    id: str
    tube: TubeSpec
    detector: DetectorSpec
    noise: NoiseSpec
    vendor: str = ""
    blur_sigma_px: float = 0.7
    gain_low: float = 1.0
    gain_high: float = 1.0
    pixel_pitch_mm: float = 1.6
    energy_bins: int = 28
    palette: tuple[tuple[str, Any], ...] = (("name", "classic"),)
    ageing: AgeingSpec = field(default_factory=AgeingSpec)

    @property
    def physics_key(self) -> tuple:
        """What the physics tables depend on (hashable; spectrum + detector + grid)."""
        return (self.tube, self.detector, self.energy_bins)

    @property
    def palette_params(self) -> dict[str, Any]:
        return dict(self.palette)

    def pitch_mm(self, image_size: int) -> float:
        return self.pixel_pitch_mm * REFERENCE_SIZE / image_size

    def with_ageing(self, years: float) -> ScannerProfile:
        from dataclasses import replace

        return replace(self, ageing=replace(self.ageing, years=float(years)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tube"]["filters"] = dict(self.tube.filters)
        d["palette"] = dict(self.palette)
        d["gain"] = {"low": d.pop("gain_low"), "high": d.pop("gain_high")}
        return d

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ScannerProfile:
        cfg = _plain(cfg)
        try:
            tube = dict(cfg["tube"])
            det = dict(cfg["detector"])
            noise = dict(cfg["noise"])
            pid = str(cfg["id"])
        except KeyError as exc:
            raise ValueError(f"scanner profile: missing section {exc}") from None
        filters = tube.pop("filters", {"Al": 2.0}) or {}
        gain = cfg.get("gain", {}) or {}
        profile = cls(
            id=pid,
            vendor=str(cfg.get("vendor", "")),
            tube=TubeSpec(filters=tuple((str(k), float(v)) for k, v in filters.items()), **tube),
            detector=DetectorSpec(
                low=DetectorLayer(**det["low"]),
                high=DetectorLayer(**det["high"]),
                cu_filter_mm=float(det.get("cu_filter_mm", 0.0)),
            ),
            noise=NoiseSpec(**noise),
            blur_sigma_px=float(cfg.get("blur_sigma_px", 0.7)),
            gain_low=float(gain.get("low", 1.0)),
            gain_high=float(gain.get("high", 1.0)),
            pixel_pitch_mm=float(cfg.get("pixel_pitch_mm", 1.6)),
            energy_bins=int(cfg.get("energy_bins", 28)),
            palette=tuple(sorted((cfg.get("palette") or {"name": "classic"}).items())),
            ageing=AgeingSpec(**(cfg.get("ageing") or {})),
        )
        profile.validate()
        return profile

    @classmethod
    def from_yaml(cls, path: str | Path) -> ScannerProfile:
        with open(path) as fh:
            return cls.from_dict(yaml.safe_load(fh))

    def validate(self) -> None:
        if not 20 <= self.tube.kvp <= 450:
            raise ValueError(f"scanner {self.id}: kvp {self.tube.kvp} outside 20..450")
        if self.pixel_pitch_mm <= 0 or self.blur_sigma_px < 0:
            raise ValueError(f"scanner {self.id}: pitch must be > 0 and blur >= 0")
        if not 8 <= self.energy_bins <= 128:
            raise ValueError(f"scanner {self.id}: energy_bins must be in 8..128")
        if self.ageing.years < 0:
            raise ValueError(f"scanner {self.id}: ageing.years must be >= 0")


def _plain(cfg: Any) -> Any:
    """Accept an OmegaConf DictConfig as well as a dict."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)


def load_profile(name_or_path: str | Path) -> ScannerProfile:
    """A profile by id (conf/scanner/<id>.yaml) or by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        from atr.config import conf_dir

        path = conf_dir() / "scanner" / f"{name_or_path}.yaml"
    return ScannerProfile.from_yaml(path)
