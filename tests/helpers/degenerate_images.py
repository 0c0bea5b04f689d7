"""Uploads that are not X-ray scans of a postal item, as a client would send them.

Blank and broken frames (a scanner that imaged nothing, a truncated strip, noise), and
real-looking pictures from other domains (a photo-like scene, a text page, a QR-like
pattern), all drawn offline and deterministically: no file is downloaded. The
plausibility tests send each through `decode_image` and expect it refused a CLEAR.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

PNG, JPEG = "image/png", "image/jpeg"


def encode(img: Image.Image, fmt: str = "PNG", **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def photo_scene(width: int = 320, height: int = 240) -> Image.Image:
    """A photo-like outdoor scene: sky gradient, sun, hills, a house, soft sensor noise."""
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - y) * np.array([70, 130, 220]) + y * np.array([190, 220, 250])
    img = Image.fromarray(np.broadcast_to(sky, (height, width, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    draw.ellipse((width * 0.75, 20, width * 0.75 + 40, 60), fill=(250, 220, 90))
    draw.polygon([(0, height * 0.6), (width * 0.4, height * 0.45), (width, height * 0.65),
                  (width, height), (0, height)], fill=(70, 140, 60))
    draw.polygon([(0, height * 0.8), (width * 0.6, height * 0.7), (width, height * 0.85),
                  (width, height), (0, height)], fill=(50, 110, 45))
    draw.rectangle((60, 110, 130, 170), fill=(180, 60, 50))
    draw.polygon([(55, 110), (95, 80), (135, 110)], fill=(110, 40, 40))
    draw.rectangle((85, 135, 100, 170), fill=(90, 60, 30))
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    grain = np.random.default_rng(7).normal(0, 3, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(img) + grain, 0, 255).astype(np.uint8))


def document_page(width: int = 300, height: int = 400) -> Image.Image:
    """A printed page: black text lines on white paper."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default()
    rng = np.random.default_rng(3)
    draw.text((24, 20), "INVOICE No. 2024-0117", fill=(0, 0, 0), font=font)
    for line in range(30):
        words = " ".join("lorem ipsum dolor sit amet"[: int(rng.integers(3, 26))]
                         for _ in range(3))
        draw.text((24, 50 + 11 * line), words[:48], fill=(0, 0, 0), font=font)
    return img


def checkerboard(size: int = 256, square: int = 16) -> Image.Image:
    idx = np.arange(size) // square
    board = ((idx[:, None] + idx[None, :]) % 2 * 255).astype(np.uint8)
    return Image.fromarray(board)


def qr_like(modules: int = 29, module_px: int = 8) -> Image.Image:
    """Random black/white modules with the three finder squares of a QR code."""
    grid = np.random.default_rng(11).integers(0, 2, (modules, modules)).astype(bool)
    for r, c in ((0, 0), (0, modules - 7), (modules - 7, 0)):
        grid[r:r + 7, c:c + 7] = True
        grid[r + 1:r + 6, c + 1:c + 6] = False
        grid[r + 2:r + 5, c + 2:c + 5] = True
    pixels = np.where(np.kron(grid, np.ones((module_px, module_px), bool)), 0, 255)
    return Image.fromarray(np.pad(pixels, 16, constant_values=255).astype(np.uint8))


def stripes(size: int = 256, width: int = 3) -> Image.Image:
    """Vertical bars of two mid greys: no clipping, no air, only pixel-scale structure."""
    bars = np.where((np.arange(size) // width) % 2 == 0, 40, 200).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(bars, (size, size)).copy())


def degenerate_corpus() -> list[tuple[str, bytes, str]]:
    """(name, encoded bytes, content type) of every upload no scan looks like."""
    gray16 = Image.fromarray(np.full((256, 256), 30000, np.uint16))
    return [
        ("blank_white", encode(Image.new("RGB", (256, 256), (255, 255, 255))), PNG),
        ("blank_black", encode(Image.new("RGB", (256, 256), (0, 0, 0))), PNG),
        ("stripes", encode(stripes()), PNG),
        ("rgba_noise", encode(Image.fromarray(_noise((256, 256, 4), 1), "RGBA")), PNG),
        ("tiny", encode(Image.fromarray(_noise((6, 6, 3), 2))), PNG),
        ("strip_10000x2", encode(Image.new("RGB", (10000, 2), (0, 0, 0))), PNG),
        ("gray16_blank", encode(gray16), PNG),
        ("jpeg_noise", encode(Image.fromarray(_noise((256, 256, 3), 4)), "JPEG", quality=75),
         JPEG),
        ("photo_scene", encode(photo_scene(), "JPEG", quality=90), JPEG),
        ("document_page", encode(document_page()), PNG),
        ("checkerboard", encode(checkerboard()), PNG),
        ("qr_like", encode(qr_like()), PNG),
    ]
