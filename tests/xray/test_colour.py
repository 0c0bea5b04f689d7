"""Pseudo-colour from the raw pair: hue classes by material, darker with thickness."""

from __future__ import annotations

import colorsys

import numpy as np

from atr.xray.colour import pseudo_colour


def _hue_class(rgb: np.ndarray) -> str:
    r, g, b = (rgb.reshape(-1, 3).astype(float).mean(axis=0) / 255.0)
    h = colorsys.rgb_to_hsv(r, g, b)[0] * 360
    return "orange" if h < 70 else "green" if h < 170 else "blue"


def _centre(sim, slab, material: str, thickness: float):
    low, high, rgb = sim.render_thickness(slab(material, thickness), seed=1)
    c = slice(24, 40)
    return low[c, c], high[c, c], rgb[c, c]


def test_steel_blue_polyethylene_orange_aluminium_green(sim, slab):
    # Thicknesses with about equal high-channel transmission (~0.45).
    assert _hue_class(_centre(sim, slab, "polyethylene", 5.0)[2]) == "orange"
    assert _hue_class(_centre(sim, slab, "steel", 0.25)[2]) == "blue"
    assert _hue_class(_centre(sim, slab, "aluminium", 2.0)[2]) == "green"
    assert _hue_class(_centre(sim, slab, "paper", 3.0)[2]) == "orange"


def test_darker_when_thicker(sim, slab):
    thin = _centre(sim, slab, "polyethylene", 2.0)[2].mean()
    thick = _centre(sim, slab, "polyethylene", 12.0)[2].mean()
    assert thick < thin - 20


def test_air_is_white_and_colour_uses_only_the_raw_pair():
    low = np.full((8, 8), 65535, np.uint16)
    rgb = pseudo_colour(low, low)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3) and rgb.min() > 245
    steel_like = pseudo_colour(np.full((2, 2), 8000, np.uint16), np.full((2, 2), 30000, np.uint16))
    assert _hue_class(steel_like) == "blue"
    organic_like = pseudo_colour(np.full((2, 2), 26000, np.uint16),
                                 np.full((2, 2), 30000, np.uint16))
    assert _hue_class(organic_like) == "orange"
