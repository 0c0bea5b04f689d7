"""The dual-energy representation: decoding low/high scans, attenuation, geometry."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from atr.package.decode import ImageDecodeError
from atr.package.dual_energy import air_levels, attenuation, decode_dual_energy
from atr.package.preprocess import PreprocessSpec

MAX = 10_000_000


def png16(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def tiff_pages(*arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    pages = [Image.fromarray(a) for a in arrays]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def test_stacked_and_two_page_scans_decode_to_the_same_pair() -> None:
    rng = np.random.default_rng(0)
    low = rng.integers(0, 65535, (30, 41), dtype=np.uint16)
    high = rng.integers(0, 65535, (30, 41), dtype=np.uint16)
    for data in (png16(np.vstack([low, high])), tiff_pages(low, high)):
        pair = decode_dual_energy(data, max_pixels=MAX)
        assert pair.dtype == np.uint16 and pair.shape == (30, 41, 2)
        assert np.array_equal(pair[..., 0], low) and np.array_equal(pair[..., 1], high)


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"not an image at all", "not a recognised image"),
    (png16(np.zeros((31, 8))), "even height"),
    (tiff_pages(np.zeros((8, 8), np.uint16), np.zeros((9, 8), np.uint16)), "differ in size"),
])
def test_bad_scans_are_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(ImageDecodeError, match=message):
        decode_dual_energy(data, max_pixels=MAX)


def test_pictures_are_not_dual_energy_scans() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (16, 32), (200, 120, 0)).save(buf, format="PNG")
    with pytest.raises(ImageDecodeError, match="16-bit grey"):
        decode_dual_energy(buf.getvalue(), max_pixels=MAX)
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_dual_energy(png16(np.zeros((64, 64))), max_pixels=1000)


def test_attenuation_is_minus_log_transmission_with_air_at_zero() -> None:
    air = 50_000
    pair = np.full((20, 20, 2), air, np.uint16)
    pair[5:10, 5:10, 0] = air // 4          # low energy: a quarter transmitted
    pair[5:10, 5:10, 1] = air // 2          # high energy: half
    pair[0, 0, :] = 0                        # a dead pixel: clipped, not infinite
    att = attenuation(pair)                  # air measured from the scan
    assert att.dtype == np.float32
    np.testing.assert_allclose(att[7, 7], [np.log(4), np.log(2)], rtol=1e-4)
    assert np.all(att[15:, 15:] == 0.0)
    assert np.isfinite(att).all() and att[0, 0, 0] == pytest.approx(-np.log(1e-3), rel=1e-5)
    np.testing.assert_allclose(attenuation(pair, air_level=2 * air)[15, 15], np.log(2),
                               rtol=1e-4)


def test_air_is_the_bright_plateau_not_the_hot_pixels() -> None:
    rng = np.random.default_rng(1)
    channel = rng.normal(49_500, 60, (200, 200))
    channel[:120] = rng.normal(20_000, 3_000, (120, 200))  # the bag covers 60 %
    channel[rng.random(channel.shape) < 0.01] = 56_000      # 1 % hot pixels
    pair = np.stack([channel, channel], -1).clip(0, 65535).astype(np.uint16)
    levels = air_levels(pair, None)
    assert np.all(np.abs(levels - 49_500) < 300)
    assert np.percentile(channel, 99.5) > 55_000  # what a percentile would have read


def test_spec_decodes_and_prepares_dual_energy_channels() -> None:
    spec = PreprocessSpec(input_size=32, representation="dual_energy", resize="pitch",
                          pixel_scale=0.5, mean=(0, 0, 0), std=(1, 1, 1))
    assert spec.input_column == "raw"
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    air = 40_000
    low = np.full((20, 40), air, np.uint16)
    high = low.copy()
    low[:, :20], high[:, :20] = air // 4, air // 2
    att = spec.decode(png16(np.vstack([low, high])))
    x = spec.prepare(att)
    assert x.shape == (3, 32, 32) and x.dtype == np.float32
    # pitch 0.5: the 20x40 scan lands as 10x20 in the middle of the canvas, air around it
    new_w, new_h, px, py = spec.geometry(20, 40)
    assert (new_w, new_h, px, py) == (20, 10, 6, 11)
    inside = x[:, py + 5, px + 3]
    np.testing.assert_allclose(inside, [np.log(4), np.log(2), np.log(2)], rtol=1e-3)
    assert np.all(x[:, 0, 0] == 0.0)  # padding is air
    np.testing.assert_array_equal(spec.display(att)[0, 0], [64, 64, 64])  # 1/4 transmitted


def test_pitch_never_enlarges_and_shrinks_only_what_does_not_fit() -> None:
    spec = PreprocessSpec(input_size=100, resize="pitch", pixel_scale=1.0)
    assert spec.geometry(30, 50)[:2] == (50, 30)        # small scan: true size, padded
    assert spec.geometry(400, 200)[:2] == (50, 100)     # too big: fitted
    letterbox = PreprocessSpec(input_size=100)
    assert letterbox.geometry(30, 50)[:2] == (100, 60)  # letterbox blows it up


def test_a_pseudo_colour_spec_is_unchanged() -> None:
    spec = PreprocessSpec(input_size=16)
    rgb = np.full((8, 8, 3), 255, np.uint8)
    assert spec.input_column == "image" and spec.decode(png_rgb(rgb)).shape == (8, 8, 3)
    np.testing.assert_allclose(spec.prepare(rgb)[:, 0, 0],
                               (1.0 - np.array(spec.mean)) / np.array(spec.std), rtol=1e-5)


def png_rgb(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()
