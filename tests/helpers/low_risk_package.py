"""A tiny model package whose low-risk output is `no_threat` (a real-archive model), built
from the serving tests' tiny ONNX package (tests/serving/conftest.py, loaded by path)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from atr.policy.decision import Policy
from atr.policy.taxonomy import Taxonomy, default_taxonomy
from atr.registry.package_files import package_checksums
from helpers.serving_loader import serving_fixtures


def no_threat_taxonomy() -> Taxonomy:
    return replace(default_taxonomy(), low_risk="no_threat")


def no_threat_package(out: Path, seed: int = 0, representation: str = "dual_energy",
                      clear_threshold: float = 0.5, inspect_threshold: float = 0.5) -> Path:
    """The tiny package with taxonomy.json and policy.json for low risk = no_threat (its
    first output is then `no_threat`), checksums rewritten."""
    package = serving_fixtures().build_package(out, seed=seed, representation=representation)
    tax = no_threat_taxonomy()
    (package / "taxonomy.json").write_text(json.dumps(tax.to_dict()))
    Policy(outputs=tax.model_outputs, clear_threshold=clear_threshold,
           inspect_thresholds=dict.fromkeys(tax.threats, inspect_threshold)).save(
        package / "policy.json")
    (package / "package.json").unlink()  # its checksums are of the other files
    (package / "package.json").write_text(json.dumps(
        {"name": f"tiny-no-threat-{seed}", "sha256": package_checksums(package)}))
    return package
