"""Inference-side code shared by training and serving (no torch imports here)."""

from atr.package.preprocess import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    PreprocessSpec,
    decode_image,
)

__all__ = ["DEFAULT_MAX_PIXELS", "ImageDecodeError", "PreprocessSpec", "decode_image"]
