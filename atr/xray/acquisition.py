"""From ideal transmission to what the detector reports: blur, gain, ageing, noise, 16 bits.

Line scanners build the image one detector row at a time, so each detector
element has its own gain: as the detector ages those gains drift apart and
show as streaks along the belt direction, the overall response drops and the
read noise grows. The element gain pattern is fixed per scanner id (the
same physical detector), its size grows with age.

Every line scanner normalises each channel by an air (bright-field) reading taken
when it is calibrated, so the channel gains it had then cancel: air reads full
scale and the low/high ratio of a material does not depend on them. Here that
calibration is the one made at installation (`gain_low`/`gain_high` at age 0);
what the detector has lost since (gain drift, element spread, read noise) is not
corrected, which is what an ageing detector looks like between services.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.ndimage import gaussian_filter

from atr.xray.scanner_profile import REFERENCE_SIZE, ScannerProfile


def _element_pattern(profile: ScannerProfile, n: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(profile.id.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal((2, n, 1)).astype(np.float32)


def acquire(transmission: np.ndarray, profile: ScannerProfile,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(2, H, W) I/I0 -> (low, high) uint16, 65535 = no attenuation."""
    _, h, w = transmission.shape
    sigma = profile.blur_sigma_px * w / REFERENCE_SIZE
    signal = gaussian_filter(transmission, sigma=(0, sigma, sigma), truncate=3.0) if sigma > 0 \
        else transmission.copy()
    age = profile.ageing
    years = age.years
    gains = np.array([profile.gain_low, profile.gain_high], dtype=np.float32)
    gains *= max(1.0 - age.gain_drift_per_year * years, 0.1)
    spread = age.row_gain_spread_per_year * years
    gain_map = gains[:, None, None] * (1.0 + spread * _element_pattern(profile, h))
    signal *= gain_map
    photons = np.array([profile.noise.photons_low, profile.noise.photons_high], dtype=np.float32)
    electronic = profile.noise.electronic_sigma * (1.0 + age.noise_growth_per_year * years)
    # Quantum (Poisson, variance ~ signal / quanta) and read noise add in variance.
    variance = np.maximum(signal, 0.0) / photons[:, None, None]
    variance += np.float32(electronic) ** 2
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noise *= np.sqrt(variance, out=variance)
    signal += noise
    # Air calibration at installation: divide the install-time channel gains back out.
    # Skipped when they are 1 so unit-gain profiles keep their exact float path.
    install = np.array([profile.gain_low, profile.gain_high], dtype=np.float32)
    if not np.all(install == 1.0):
        signal /= install[:, None, None]
    raw = np.clip(signal, 0.0, 1.0) * np.float32(65535.0) + np.float32(0.5)
    out = raw.astype(np.uint16)
    return out[0], out[1]
