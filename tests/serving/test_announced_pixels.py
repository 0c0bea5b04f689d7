"""The pixel-bomb check's header read on the event loop: a PNG's IHDR bytes, else Pillow."""

from __future__ import annotations

import io

from PIL import Image

from serving.scan_service import _announced_pixels


def _encoded(size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(buf, fmt)
    return buf.getvalue()


def test_png_size_comes_from_its_header_as_pillow_reads_it() -> None:
    for size in [(1, 1), (300, 200), (5000, 3)]:
        assert _announced_pixels(_encoded(size, "PNG")) == size[0] * size[1]


def test_other_formats_and_unreadable_bytes() -> None:
    assert _announced_pixels(_encoded((64, 48), "JPEG")) == 64 * 48  # through Pillow
    png = _encoded((300, 200), "PNG")
    assert _announced_pixels(png[:20]) == 0  # a truncated header: the decode says why
    assert _announced_pixels(b"not an image") == 0
    assert _announced_pixels(None) == 0
