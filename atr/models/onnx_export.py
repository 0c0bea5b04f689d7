"""Export the screening model to the package's ONNX contract and check it against torch.

Contract (docs/CONTRACTS.md): input `image` float32 Nx3xSxS (dynamic N), outputs
`scores` (sigmoid probabilities, NxK in `model_outputs` order) and `embedding` (NxD),
and, for a model with a localisation head, `heatmap` (sigmoid, N x C x h x w, C = the
threat outputs in order; docs/localisation.md). All are averaged over the test-time views
(atr/models/test_time_views.py).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from atr.models.test_time_views import ViewAveragedScores

log = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAMES = ("scores", "embedding")
HEATMAP_NAME = "heatmap"
OPSET = 17


class OnnxParityError(RuntimeError):
    pass


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_size: int,
    *,
    opset: int = OPSET,
    atol: float = 1e-4,
    verify: bool = True,
    views: Sequence[str] = ("identity",),
) -> Path:
    """Write `model` (forward -> logits, embedding) as ONNX; verify with onnxruntime.

    What serving runs is probabilities, not logits (the policy thresholds
    probabilities), averaged over `views`.

    The TorchScript-based exporter (dynamo=False) is used: measured with torch
    2.14 on mobilenetv3, the dynamo exporter takes ~20x longer (5.5 s vs 0.26 s)
    and its down-conversion to opset 17 fails (it keeps opset 18), while the
    outputs match either way.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A CPU copy in eval mode: export must not disturb the module being trained.
    wrapper = ViewAveragedScores(copy.deepcopy(model).cpu().eval(), views)
    example = torch.zeros(2, 3, input_size, input_size)
    names = output_names(wrapper)
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *names)},
            opset_version=opset,
            dynamo=False,
        )
    if verify:
        verify_onnx(wrapper, path, input_size, atol=atol)
    return path


def output_names(wrapper: ViewAveragedScores) -> list[str]:
    return [*OUTPUT_NAMES, HEATMAP_NAME] if wrapper.localises else list(OUTPUT_NAMES)


def verify_onnx(
    wrapper: nn.Module, path: str | Path, input_size: int, *, atol: float = 1e-4, batch: int = 3
) -> float:
    """Max |onnx - torch| over every output on random input (a batch size unlike export's)."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in wrapper.eval()(x)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = output_names(wrapper) if isinstance(wrapper, ViewAveragedScores) \
        else list(OUTPUT_NAMES)
    got = session.run(names, {INPUT_NAME: x.numpy()})
    worst = 0.0
    for name, e, g in zip(names, expected, got, strict=True):
        if e.shape != g.shape:
            raise OnnxParityError(f"{path}: output {name} has shape {g.shape}, torch {e.shape}")
        # scale-aware: embeddings are unbounded features, and float32 kernels that sum in
        # another order differ in proportion to the magnitude (scores are in [0, 1])
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        diff = float(np.max(np.abs(e - g))) / scale if e.size else 0.0
        if diff > atol:
            raise OnnxParityError(
                f"{path}: output {name} differs from torch by {diff:.2e} (relative to "
                f"max(1, |output|)) > {atol}"
            )
        worst = max(worst, diff)
    log.info("ONNX parity ok: max |diff| %.2e", worst)
    return worst
