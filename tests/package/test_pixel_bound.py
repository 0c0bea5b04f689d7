"""The per-call pixel bound of decode_image / decode_dual_energy (atr/package/decode.py):
refused from the header before decoding, Pillow's process-wide guard left at its default."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from atr.package.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from atr.package.dual_energy import decode_dual_energy

PILLOW_DEFAULT = int(1024 * 1024 * 1024 // 4 // 3)  # Image.MAX_IMAGE_PIXELS as Pillow ships it


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height 8-bit grey pixels and holds none (a pixel bomb:
    a few bytes on the wire, gigabytes once decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                              8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_pillow_guard_is_left_at_its_default() -> None:
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT


@pytest.mark.parametrize(("size", "bound"), [
    ((9000, 9000), DEFAULT_MAX_PIXELS),      # 81 MP > our 50 MP, under Pillow's guard
    ((20000, 20000), 500_000_000),           # 400 MP: past Pillow's own error bound too
])
def test_a_pixel_bomb_is_too_large_not_unreadable(size: tuple[int, int], bound: int) -> None:
    for decode in (decode_image, decode_dual_energy):
        with pytest.raises(ImageDecodeError, match="^image too large"):
            decode(png_header(*size), max_pixels=bound)


def test_a_large_legitimate_scan_within_the_bound_decodes() -> None:
    width, height = 5000, 4000  # 20 MP, exactly the bound
    buf = io.BytesIO()
    Image.new("L", (width, height), 77).save(buf, format="PNG", compress_level=1)
    image = decode_image(buf.getvalue(), max_pixels=width * height)
    assert image.shape == (height, width, 3) and int(image[0, 0, 0]) == 77
    with pytest.raises(ImageDecodeError, match="^image too large"):
        decode_image(buf.getvalue(), max_pixels=width * height - 1)


def test_a_large_dual_energy_pair_within_the_bound_decodes() -> None:
    stacked = np.full((2 * 1500, 2000), 40000, np.uint16)  # low on top of high: 6 MP
    buf = io.BytesIO()
    Image.fromarray(stacked).save(buf, format="PNG")
    pair = decode_dual_energy(buf.getvalue(), max_pixels=stacked.size)
    assert pair.shape == (1500, 2000, 2)
    assert Image.MAX_IMAGE_PIXELS == PILLOW_DEFAULT  # nothing changed it on the way
