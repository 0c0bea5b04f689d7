"""XraySimulator: seed -> one simulated postal item (raw dual-energy pair, RGB, labels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atr.policy.taxonomy import Taxonomy
from atr.xray.acquisition import acquire
from atr.xray.beam_hardening import PhysicsTables, physics_tables
from atr.xray.calibration import calibrated_palette
from atr.xray.class_mix import ClassMix
from atr.xray.colour import Palette, pseudo_colour
from atr.xray.scanner_profile import ScannerProfile
from atr.xray.scene import SceneComposer

GENERATOR_VERSION = "atr.xray/1.0"


@dataclass
class SimulatedItem:
    low: np.ndarray  # uint16 HxW, low-energy channel, 65535 = no attenuation
    high: np.ndarray  # uint16 HxW, high-energy channel
    rgb: np.ndarray  # uint8 HxWx3 pseudo-colour, computed from low/high only
    labels: dict[str, int]  # every taxonomy class -> 0/1
    paper_only: int
    boxes: list[dict] = field(default_factory=list)  # {"label", "xyxy"} goods and threats
    meta: dict[str, Any] = field(default_factory=dict)


class XraySimulator:
    """Picklable: heavy tables are rebuilt lazily (and from the disk cache) in each process."""

    def __init__(self, profile: ScannerProfile, taxonomy: Taxonomy, mix: ClassMix,
                 image_size: int = 256):
        if image_size < 32:
            raise ValueError("image_size must be >= 32")
        self.profile, self.taxonomy, self.mix, self.image_size = profile, taxonomy, mix, image_size
        self._composer = SceneComposer(taxonomy, mix, image_size,
                                       px_per_cm=10.0 / profile.pitch_mm(image_size))
        self._tables: PhysicsTables | None = None
        self._palette: Palette | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_tables"] = state["_palette"] = None
        return state

    @property
    def physics(self) -> PhysicsTables:
        if self._tables is None:
            self._tables = physics_tables(self.profile)
        return self._tables

    @property
    def palette(self) -> Palette:
        if self._palette is None:
            self._palette = calibrated_palette(self.profile)
        return self._palette

    def render_thickness(self, thickness: np.ndarray, seed: int = 0) -> tuple[np.ndarray, ...]:
        """Any (M, H, W) thickness stack through this scanner: (low, high, rgb)."""
        transmission = self.physics.transmission(thickness)
        low, high = acquire(transmission, self.profile, np.random.default_rng(seed))
        return low, high, pseudo_colour(low, high, self.palette)

    def render(self, seed: int) -> SimulatedItem:
        # Separate streams: the scene depends on the seed only, not on the
        # scanner's noise draws, so one seed gives the same parcel on every scanner.
        scene_seq, noise_seq = np.random.SeedSequence(int(seed)).spawn(2)
        scene = self._composer.compose(np.random.default_rng(scene_seq))
        transmission = self.physics.transmission(scene.thickness)
        low, high = acquire(transmission, self.profile, np.random.default_rng(noise_seq))
        rgb = pseudo_colour(low, high, self.palette)
        return SimulatedItem(
            low=low, high=high, rgb=rgb, labels=scene.labels,
            paper_only=self.taxonomy.paper_only(scene.labels), boxes=scene.boxes,
            meta={"seed": int(seed), "generator": GENERATOR_VERSION,
                  "scanner_id": self.profile.id, "scene_kind": scene.kind,
                  "container": scene.container, "concealment": scene.concealment,
                  "mix": self.mix.name, "ageing_years": self.profile.ageing.years,
                  "image_size": self.image_size},
        )
