"""The one builder of tiny model packages for the tests (serving, line, browser, labels,
registry, evaluation): a real, untrained 2-layer CNN exported by the production exporter
(atr.models.onnx_export: input `image`, outputs `scores` and `embedding`), with the files
`atr train` leaves (model.onnx, preprocess.json, taxonomy.json) and, unless told
otherwise, those `atr evaluate` adds (policy.json, reference.parquet, eval metrics and
plot, package.json with every file's sha256)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atr.policy.decision import Policy
from atr.policy.taxonomy import Taxonomy, default_taxonomy

INPUT_SIZE = 32
EMBED_DIM = 8  # the serving tests check the stored embedding has all 8 values
# What `atr evaluate` records for the tiny package (the registry copies it into tags).
EVAL_METRICS = {"test": {"auto_clear_rate": 0.4, "leak_rate": 0.0, "auroc": {"paper_only": 0.9}},
                "note": "text is skipped"}
DEFAULT_TARGETS = {"leak_rate_target": 0.005, "confidence": 0.95}


def taxonomy_for(low_risk: str = "paper_only") -> Taxonomy:
    """The default taxonomy with `low_risk` as the model's first output."""
    return dataclasses.replace(default_taxonomy(), low_risk=low_risk)


def export_tiny_onnx(path: Path, n_outputs: int, seed: int,
                     localisation: bool = False) -> Path:
    """A 2-layer CNN (conv, mean pool, linear head: logits and an 8-d embedding), exported
    with atr.models.onnx_export, which adds the sigmoid and checks parity with torch.
    localisation: also a 1x1-conv heat-map per threat output on the conv's 15 x 15 grid
    (the optional `heatmap` output, TINY_GRID)."""
    import torch
    from torch import nn

    from atr.models.onnx_export import export_onnx

    class TinyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, EMBED_DIM, 3, stride=2)
            self.head = nn.Linear(EMBED_DIM, n_outputs)
            self.heat = nn.Conv2d(EMBED_DIM, n_outputs - 1, 1)
            self.localises = localisation

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.forward_localised(x)[:2]

        def forward_localised(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            features = torch.relu(self.conv(x))
            emb = features.mean(dim=(2, 3))
            return self.head(emb), emb, self.heat(features)

    torch.manual_seed(seed)
    return export_onnx(TinyNet(), path, INPUT_SIZE)


TINY_GRID = ((INPUT_SIZE - 3) // 2 + 1,) * 2  # the tiny conv's output grid


def build_package(out: Path, seed: int = 0, *, representation: str = "pseudo_colour",
                  low_risk: str = "paper_only", evaluated: bool = True,
                  clear_threshold: float = 0.5, inspect_threshold: float = 0.5,
                  targets: Mapping[str, Any] | None = None,
                  run: Mapping[str, str] | None = None, localisation: bool = False) -> Path:
    """A tiny package in `out` (created); `seed` picks the weights.

    representation: preprocess.json's input (`pseudo_colour` PNGs or `dual_energy` pairs).
    low_risk: the taxonomy's low-risk definition, the model's first output.
    evaluated: False leaves what `atr train` writes (no policy.json, reference or
        package.json: the evaluation tests calibrate it); True adds what `atr evaluate`
        writes, with a policy at `clear_threshold` and `inspect_threshold` for every threat.
    targets: the policy's calibration targets (default DEFAULT_TARGETS).
    run: written as run.json (the training run `atr register` links to), if given.
    localisation: the network also has the `heatmap` output, stated in localisation.json.
    """
    from atr.package.checksums import package_checksums
    from atr.package.preprocess import PreprocessSpec

    tax = taxonomy_for(low_risk)
    out.mkdir(parents=True, exist_ok=True)
    export_tiny_onnx(out / "model.onnx", len(tax.model_outputs), seed, localisation)
    if localisation:
        from atr.package.localisation import write_localisation_spec

        write_localisation_spec(out / "localisation.json", tax.threats, TINY_GRID, INPUT_SIZE)
    PreprocessSpec(input_size=INPUT_SIZE, representation=representation).save(
        out / "preprocess.json")
    (out / "taxonomy.json").write_text(json.dumps(tax.to_dict()))
    if run is not None:
        (out / "run.json").write_text(json.dumps(dict(run)))
    if not evaluated:
        return out
    Policy(outputs=tax.model_outputs, clear_threshold=clear_threshold,
           inspect_thresholds=dict.fromkeys(tax.threats, inspect_threshold),
           targets=dict(DEFAULT_TARGETS if targets is None else targets),
           ).save(out / "policy.json")
    (out / "reference.parquet").write_bytes(b"PAR1 placeholder for drift reference")
    eval_dir = out / "artifacts" / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(EVAL_METRICS))
    _tiny_png(eval_dir / "leak_vs_auto_clear.png")
    (out / "package.json").unlink(missing_ok=True)  # its checksums would be of old files
    (out / "package.json").write_text(json.dumps(
        {"name": f"tiny-{low_risk}-{seed}", "sha256": package_checksums(out)}))
    return out


def no_threat_package(out: Path, seed: int = 0, representation: str = "dual_energy",
                      clear_threshold: float = 0.5, inspect_threshold: float = 0.5) -> Path:
    """A real-archive model: low risk = `no_threat`, dual-energy input by default."""
    return build_package(out, seed, representation=representation, low_risk="no_threat",
                         clear_threshold=clear_threshold, inspect_threshold=inspect_threshold)


def _tiny_png(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 128, 0)).save(path)
