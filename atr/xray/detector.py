"""Two-layer dual-energy detector: what fraction of each photon energy each channel records.

Layout along the beam: low-energy scintillator (thin), copper filter, high-
energy scintillator (thick). The layers are energy integrating, so a photon
contributes in proportion to its energy times the probability it is absorbed
in the layer; the high layer only sees what the low layer and the copper let
through. This is what makes the two channels' effective energies differ.
"""

from __future__ import annotations

import numpy as np

from atr.xray.materials import mu_table
from atr.xray.scanner_profile import DetectorSpec


def channel_response(det: DetectorSpec, energies_kev: np.ndarray) -> np.ndarray:
    """Response D[c, e] (c = low, high) per photon of energy e, in keV deposited."""
    names = (det.low.material, det.high.material, "cu_filter")
    mu = mu_table(names, tuple(float(e) for e in energies_kev)).astype(np.float64)
    t_low = det.low.thickness_mm / 10.0
    t_high = det.high.thickness_mm / 10.0
    t_cu = det.cu_filter_mm / 10.0
    e = np.asarray(energies_kev, dtype=np.float64)
    absorbed_low = 1.0 - np.exp(-mu[0] * t_low)
    reaches_high = np.exp(-mu[0] * t_low - mu[2] * t_cu)
    absorbed_high = reaches_high * (1.0 - np.exp(-mu[1] * t_high))
    return np.stack([e * absorbed_low, e * absorbed_high])
