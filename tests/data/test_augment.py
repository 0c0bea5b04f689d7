"""Augmentations respect X-ray physics: no colour jitter, hue classes survive the gain."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
from omegaconf import OmegaConf

from atr.config import compose
from atr.data.augment import AttenuationGain, attenuation_lut, build_augment

# Transforms that move hue/saturation/colour balance: forbidden on pseudo-colour.
COLOUR_TRANSFORMS = {
    "HueSaturationValue", "ColorJitter", "RGBShift", "ChannelShuffle", "ChannelDropout",
    "ToGray", "ToSepia", "FancyPCA", "PlanckianJitter", "RandomToneCurve", "InvertImg",
    "Equalize", "CLAHE", "Posterize", "Solarize", "RandomBrightnessContrast", "RandomGamma",
}
PHYSICS_SAFE = {"HorizontalFlip", "VerticalFlip", "RandomRotate90", "Affine", "AttenuationGain",
                "GaussNoise", "GaussianBlur"}


def default_pipeline() -> A.Compose:
    cfg = compose("train", [])
    return build_augment(OmegaConf.to_container(cfg.augment, resolve=True))


def test_default_pipeline_has_no_colour_jitter() -> None:
    names = {type(t).__name__ for t in default_pipeline().transforms}
    assert names, "the default pipeline should augment"
    assert not names & COLOUR_TRANSFORMS
    assert names <= PHYSICS_SAFE, f"unreviewed transform(s): {names - PHYSICS_SAFE}"
    assert "AttenuationGain" in names


def pseudo_colour_pixels() -> tuple[np.ndarray, np.ndarray]:
    """Organic (orange), inorganic (green), metal (blue) at several thicknesses; class = argmax."""
    hues = {0: (240, 150, 40), 1: (90, 200, 80), 2: (50, 110, 230)}
    pixels, classes = [], []
    for cls, rgb in hues.items():
        for darkness in np.linspace(1.0, 0.25, 8):
            pixels.append(np.round(np.array(rgb) * darkness))
            classes.append(cls)
    return np.array(pixels, np.uint8)[None], np.array(classes)


@pytest.mark.parametrize("g", [0.8, 1.0, 1.25])
@pytest.mark.parametrize("b", [-0.05, 0.0, 0.05])
def test_attenuation_gain_keeps_hue_class(g: float, b: float) -> None:
    image, classes = pseudo_colour_pixels()
    out = AttenuationGain(p=1.0).apply(image, g=g, b=b)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert (out[0].argmax(axis=1) == classes).all()
    # Every channel goes through the same monotone map, so channel order is kept.
    assert (np.argsort(-out[0].astype(int), axis=1, kind="stable")[:, 0] == classes).all()


def test_attenuation_gain_is_physical() -> None:
    assert attenuation_lut(1.25, 0.0)[255] == 255  # empty belt stays empty
    thicker = attenuation_lut(1.25, 0.0).astype(int)
    thinner = attenuation_lut(0.8, 0.0).astype(int)
    assert (thicker <= np.arange(256)).all() and (thinner >= np.arange(256)).all()
    assert (np.diff(thicker) >= 0).all()  # darker stays darker


def test_pipeline_output_is_uint8_rgb_and_seeded() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    pipe = default_pipeline()
    pipe.set_random_seed(7)
    first = pipe(image=image)["image"]
    pipe.set_random_seed(7)
    again = pipe(image=image)["image"]
    assert first.dtype == np.uint8 and first.shape[2] == 3
    np.testing.assert_array_equal(first, again)


def test_none_and_unknown_steps() -> None:
    none = compose("train", ["augment=none"]).augment
    assert len(build_augment(OmegaConf.to_container(none)).transforms) == 0
    with pytest.raises(ValueError, match="hue"):
        build_augment({"hue": {"p": 0.5}})
