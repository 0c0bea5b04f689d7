"""The model package room: everything about the folder a trained model travels in.

Owns: its layout and MLflow names (layout: file names, the artifact path, the
`sha256.*` tags), its checksums and manifest (checksums, manifest), the checks that a
copy is the one evaluated and registered (verify), fetching a registered version from
MLflow verified (fetch), decoding and preprocessing images as the package says
(decode, dual_energy, preprocess, image_stats), the one loader and runner of its ONNX
network (onnx_scorer) and the fail-safe reason codes (reasons).

Serving, the MLflow pyfunc, evaluation, the gate, `atr approve` and the monitor all use
it. It must import neither atr.registry nor training code (torch, lightning): serving
imports it (tests/serving/test_boundaries.py).
"""

from atr.package.preprocess import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    PreprocessSpec,
    decode_image,
)

__all__ = ["DEFAULT_MAX_PIXELS", "ImageDecodeError", "PreprocessSpec", "decode_image"]
