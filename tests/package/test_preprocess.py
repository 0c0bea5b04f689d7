"""decode_image for every image kind scanners deliver, and PreprocessSpec.prepare."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers.images import IMAGE_KINDS, make_image
from PIL import Image

from atr.package.preprocess import ImageDecodeError, PreprocessSpec, decode_image


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("kind", sorted(IMAGE_KINDS))
def test_every_image_kind_decodes_to_rgb_uint8(tmp_path, kind):
    path = make_image(tmp_path / kind, kind)
    width, height = Image.open(path).size
    for source in (path, str(path), path.read_bytes()):
        out = decode_image(source)
        assert out.dtype == np.uint8 and out.shape == (height, width, 3)


def test_gray_is_replicated_and_16_bit_is_divided_by_257_without_stretch():
    gray8 = np.array([[0, 100, 255]], np.uint8)
    out = decode_image(encode(Image.fromarray(gray8)))
    assert (out == gray8[:, :, None]).all()
    # A narrow 16-bit range stays narrow: attenuation keeps its absolute meaning.
    gray16 = np.array([[0, 257, 30000, 30257, 65535]], np.uint16)
    out = decode_image(encode(Image.fromarray(gray16)))
    assert out[0, :, 0].tolist() == [0, 1, 117, 118, 255]
    assert (out[..., 0] == out[..., 2]).all()


def test_alpha_is_composited_on_white_and_palette_expanded():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, :, :3] = (10, 20, 30)
    rgba[0, :, 3] = (0, 255, 128)
    out = decode_image(encode(Image.fromarray(rgba)))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [10, 20, 30]
    assert out[0, 2].tolist() == [132, 137, 142]  # halfway to white
    la = Image.fromarray(np.array([[[50, 0], [50, 255]]], np.uint8))
    assert la.mode == "LA"
    assert decode_image(encode(la))[0].tolist() == [[255, 255, 255], [50, 50, 50]]
    rgb = Image.fromarray(np.array([[[200, 10, 10], [10, 200, 10]]], np.uint8))
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
    assert decode_image(encode(pal))[0].tolist() == [[200, 10, 10], [10, 200, 10]]
    pal.info["transparency"] = pal.getpixel((0, 0))  # first colour fully transparent
    assert decode_image(encode(pal))[0].tolist() == [[255, 255, 255], [10, 200, 10]]


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = decode_image(encode(img, "JPEG", exif=exif))
    assert out.shape == (40, 20, 3)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"not an image at all", "not a recognised image format"),
        (encode(Image.new("RGB", (64, 64), 7))[:60], "corrupt"),
    ],
)
def test_bad_input_raises_with_reason(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_image(data)


def test_too_large_and_missing_inputs_are_refused(tmp_path):
    data = encode(Image.new("L", (200, 100)))
    with pytest.raises(ImageDecodeError, match=r"too large: 200x100 = 20000 pixels > limit 10000"):
        decode_image(data, max_pixels=10_000)
    with pytest.raises(ImageDecodeError, match="cannot read file"):
        decode_image(tmp_path / "missing.png")


def test_letterbox_keeps_aspect_and_pads_with_white():
    spec = PreprocessSpec(input_size=64)
    rgb = np.zeros((50, 200, 3), np.uint8)  # black, 4:1
    square = spec.resize_rgb(rgb)
    assert square.shape == (64, 64, 3)
    assert (square[:24] == 255).all() and (square[40:] == 255).all()  # padding above/below
    assert (square[25:39] == 0).all()  # image band (16 rows, centred)
    out = spec.prepare(rgb)
    assert out.shape == (3, 64, 64) and out.dtype == np.float32
    white = (1.0 - np.array(spec.mean)) / np.array(spec.std)
    black = -np.array(spec.mean) / np.array(spec.std)
    assert np.allclose(out[:, 0, 0], white, atol=1e-5)
    assert np.allclose(out[:, 32, 32], black, atol=1e-5)
    assert spec.geometry(50, 200) == (64, 16, 0, 24)


def test_stretch_bgr_and_batch():
    rgb = np.zeros((30, 90, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    spec = PreprocessSpec(input_size=32, resize="stretch", channel_order="BGR")
    out = spec.prepare(rgb)
    red = (1.0 - spec.mean[0]) / spec.std[0]
    assert np.allclose(out[2], red) and not np.allclose(out[0], red)  # red is last in BGR
    batch = PreprocessSpec(input_size=32).prepare_batch([rgb, rgb[:10]])
    assert batch.shape == (2, 3, 32, 32) and batch.dtype == np.float32
    assert np.array_equal(batch[0], PreprocessSpec(input_size=32).prepare(rgb))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        spec.prepare(rgb.astype(np.float32))


def test_spec_json_round_trip_and_refusals(tmp_path):
    spec = PreprocessSpec(input_size=128, resize="stretch", mean=[0.5, 0.5, 0.5])
    assert PreprocessSpec.from_json(spec.to_json()) == spec
    assert PreprocessSpec.load(spec.save(tmp_path / "preprocess.json")) == spec
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['gamma'\]"):
        PreprocessSpec.from_json('{"gamma": 2.2}')
    with pytest.raises(ValueError, match="resize"):
        PreprocessSpec(resize="crop")


@pytest.mark.parametrize("order", ["RGB", "BGR"])
def test_normalisation_table_matches_the_multiply_add_bit_for_bit(order):
    """prepare_batch normalises uint8 pixels through a per-channel table (a speed-up):
    every value must be the float32 (x / 255 - mean) / std the model was trained on."""
    spec = PreprocessSpec(input_size=32, channel_order=order, mean=(0.1, 0.5, 0.9),
                          std=(0.2, 0.3, 0.4))
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    images[0][:2, :2] = [[0, 128, 255], [255, 0, 1]]  # both ends of the range
    std = np.asarray(spec.std, np.float32)
    expected = (np.stack(images).astype(np.float32) * (1.0 / (255.0 * std))
                + (-np.asarray(spec.mean, np.float32) / std))
    if order == "BGR":
        expected = expected[..., ::-1]
    got = spec.prepare_batch(images)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert np.array_equal(got, expected.transpose(0, 3, 1, 2))
