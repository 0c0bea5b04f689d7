"""Readers of a model package's JSON files (atr/package/layout.py names them): each
refusal is a PackageError naming the file and the cause, so a broken package is never
half-loaded. Serving imports this module: no torch, no training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atr.package.layout import PackageError
from atr.package.localisation import HEATMAP_OUTPUT, LocalisationSpec
from atr.package.plausibility import PlausibilitySpec, default_spec
from atr.policy.taxonomy import Taxonomy


def read_json(path: Path) -> Any:
    if not path.is_file():
        raise PackageError(f"model package file {path} is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"model package file {path} is not valid JSON: {exc}") from exc


def load_taxonomy(path: Path) -> Taxonomy:
    try:
        return Taxonomy.from_dict(read_json(path))
    except PackageError:
        raise
    except (ValueError, TypeError, AttributeError) as exc:
        raise PackageError(f"model package file {path}: not a taxonomy: {exc}") from exc


def load_preprocess(path: Path) -> Any:
    from atr.package.preprocess import PreprocessSpec

    read_json(path)  # a missing or unparsable file gets the package error naming it
    try:
        return PreprocessSpec.from_json(path.read_text())
    except Exception as exc:  # any refusal of the spec: name the file, keep the cause
        raise PackageError(f"model package file {path}: bad preprocessing spec: {exc}") from exc


def load_policy(path: Path) -> Any:
    """The calibrated decision policy, or None before the evaluate stage has written one."""
    if not path.exists():
        return None
    from atr.policy.decision import Policy

    read_json(path)
    try:
        return Policy.from_json(path.read_text())
    except Exception as exc:
        raise PackageError(f"model package file {path}: bad policy: {exc}") from exc


def load_plausibility(path: Path, embedding_dim: int | None) -> PlausibilitySpec:
    """The package's plausibility spec; the generic defaults for a package evaluated
    before the file existed (it keeps working, judged on loose thresholds)."""
    if not path.exists():
        return default_spec()
    read_json(path)
    try:
        spec = PlausibilitySpec.from_json(path.read_text())
    except Exception as exc:
        raise PackageError(f"model package file {path}: bad plausibility spec: {exc}") from exc
    if spec.ood is not None and embedding_dim is not None and spec.ood.dim != embedding_dim:
        raise PackageError(f"{path}: ood model for {spec.ood.dim}-d embeddings, the network "
                           f"gives {embedding_dim}")
    return spec


def load_localisation(path: Path, session: Any, threats: list[str]
                       ) -> LocalisationSpec | None:
    """The heat-map's spec when the network has the `heatmap` output and the package
    states it; None when neither (an older package: it keeps working, without boxes)."""
    has_output = HEATMAP_OUTPUT in {o.name for o in session.get_outputs()}
    if not path.exists():
        return None
    if not has_output:
        raise PackageError(f"{path} describes a '{HEATMAP_OUTPUT}' output the network lacks")
    read_json(path)
    try:
        spec = LocalisationSpec.load(path)
    except Exception as exc:
        raise PackageError(f"model package file {path}: bad localisation spec: {exc}") from exc
    unknown = [c for c in spec.classes if c not in threats]
    if unknown:
        raise PackageError(f"{path}: classes {unknown} are not taxonomy threats {threats}")
    return spec
