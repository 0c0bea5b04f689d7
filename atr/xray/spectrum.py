"""X-ray tube spectra (spekpy) and the coarse energy grid the renderer works on.

spekpy takes about a second per spectrum, so a spectrum is computed once per
tube setting and cached in memory and on disk. Rendering then works on a
coarse grid (~30 bins): bins are wide where attenuation is smooth and an
edge is forced at each K-edge in range (lead 88 keV, and the detector's
Cs/I/Gd edges) so a bin never straddles a jump in mu.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from atr.xray.cache import cached_array
from atr.xray.scanner_profile import TubeSpec

FINE_STEP_KEV = 1.0
MIN_ENERGY_KEV = 10.0  # below this the tube filtration and parcel wall absorb everything
# K-edges (keV) that matter here: iodine, caesium, gadolinium, lead.
K_EDGES_KEV = (33.17, 35.98, 50.24, 88.00)


@lru_cache(maxsize=16)
def fine_spectrum(tube: TubeSpec) -> tuple[np.ndarray, np.ndarray]:
    """(energies keV, photon fluence per bin) on a 1 keV grid from MIN_ENERGY_KEV to kVp."""

    def compute() -> np.ndarray:
        import spekpy

        spek = spekpy.Spek(kvp=tube.kvp, th=tube.anode_angle_deg, dk=FINE_STEP_KEV)
        for element, mm in tube.filters:
            if mm > 0:
                spek.filter(element, mm)
        k, fluence = spek.get_spectrum()
        return np.stack([np.asarray(k, float), np.asarray(fluence, float)])

    spec = {"kvp": tube.kvp, "th": tube.anode_angle_deg, "filters": tube.filters, "dk": 1.0}
    k, fluence = cached_array("spectrum", spec, compute)
    keep = k >= MIN_ENERGY_KEV
    return k[keep], fluence[keep]


@dataclass(frozen=True)
class EnergyGrid:
    edges: np.ndarray  # (B+1,) keV
    bin_of_fine: np.ndarray  # (F,) coarse bin index of each fine energy

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1


def energy_grid(fine_kev: np.ndarray, kvp: float, n_bins: int) -> EnergyGrid:
    """Roughly uniform coarse bins with edges snapped to the K-edges in range."""
    lo, hi = float(fine_kev[0] - FINE_STEP_KEV / 2), float(kvp)
    edges = list(np.linspace(lo, hi, n_bins + 1 - sum(lo < k < hi for k in K_EDGES_KEV)))
    for k_edge in K_EDGES_KEV:
        if lo < k_edge < hi:
            # Snap to the fine-grid boundary at or below the edge (fine bins
            # have integer boundaries), drop uniform edges too close to it.
            snapped = float(np.floor(k_edge))
            edges = [e for e in edges if abs(e - snapped) > 1.5 or e in (lo, hi)] + [snapped]
    edges_arr = np.unique(np.round(np.asarray(edges), 6))
    bin_of_fine = np.clip(np.searchsorted(edges_arr, fine_kev, side="right") - 1, 0, None)
    bin_of_fine = np.minimum(bin_of_fine, len(edges_arr) - 2)
    return EnergyGrid(edges=edges_arr, bin_of_fine=bin_of_fine)


def rebin(values: np.ndarray, grid: EnergyGrid) -> np.ndarray:
    """Sum a fine-grid quantity into the coarse bins (last axis)."""
    out = np.zeros((*values.shape[:-1], grid.n_bins), dtype=np.float64)
    np.add.at(out.T, grid.bin_of_fine, values.T)
    return out
