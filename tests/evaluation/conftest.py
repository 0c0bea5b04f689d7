"""Fixtures: a small labelled dataset and a real (tiny, untrained) ONNX model package
(helpers.packages, not yet evaluated: these tests calibrate it).

The dataset is written through atr.data.manifest (schema checked) with a class
mix controlled per split, so the calib split holds every threat class: the
calibration tests need that, and a 100-item simulated set does not guarantee it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers.packages import build_package
from PIL import Image

from atr.data.manifest import manifest_columns, write_dataset_info, write_manifest
from atr.policy.taxonomy import default_taxonomy

# The training run a package names (run.json): these tests never reach MLflow.
RUN = {"run_id": "test-run", "tracking_uri": "none"}
# Items per split: (paper-only, goods, per threat class).
SPLIT_PLAN = {"train": (2, 2, 0), "calib": (20, 20, 3), "val": (6, 6, 1), "test": (8, 8, 2)}


def _draw(rng: np.random.Generator, labels: set[str], threats: list[str]) -> np.ndarray:
    """White belt with coloured blocks: orange paper, green goods, dark blue threats."""
    img = np.full((40, 48, 3), 255, np.uint8)
    colour = {"paper": (230, 150, 40), "goods": (60, 170, 60), "threat": (20, 40, 150)}
    for label in sorted(labels):
        paper = label in ("document", "book")
        group = "threat" if label in threats else "paper" if paper else "goods"
        y, x = rng.integers(0, 24), rng.integers(0, 30)
        img[y : y + 14, x : x + 16] = colour[group]
    return img


def build_dataset(out: Path, plan: dict[str, tuple[int, int, int]], seed: int = 0) -> Path:
    tax = default_taxonomy()
    rng = np.random.default_rng(seed)
    (out / "batch-00000").mkdir(parents=True)
    rows = []
    for split, (n_paper, n_goods, per_threat) in plan.items():
        items = [{"document"}] * n_paper + [{"clothing"}] * n_goods
        items += [{"clothing", t} for t in tax.threats for _ in range(per_threat)]
        for labels in items:
            i = len(rows)
            rel = f"batch-00000/{i:06d}.png"
            Image.fromarray(_draw(rng, labels, tax.threats)).save(out / rel)
            row = {"image": rel, "raw": None, "item_id": f"it-{i:05d}", "split": split,
                   "scanner_id": "test-scanner", "source": "evaluation-tests",
                   "width": 48, "height": 40}
            row.update({c: int(c in labels) for c in tax.names})
            row["paper_only"] = tax.paper_only({c: 1 for c in labels})
            row["no_threat"] = tax.no_threat({c: 1 for c in labels})  # labels are complete
            row["boxes"], row["meta"] = "[]", json.dumps({"seed": seed})
            rows.append(row)
    df = pd.DataFrame(rows)[manifest_columns(tax)]
    write_dataset_info(out, tax, source="evaluation-tests")
    write_manifest(df, out, tax)
    return out


@pytest.fixture(scope="session")
def eval_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("evalds") / "dataset", SPLIT_PLAN)


@pytest.fixture(scope="session")
def pristine_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_package(tmp_path_factory.mktemp("pkg") / "model", evaluated=False, run=RUN)


@pytest.fixture(scope="session")
def no_threat_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same network with the `no_threat` low-risk definition (taxonomy.json)."""
    return build_package(tmp_path_factory.mktemp("pkg-nt") / "model", low_risk="no_threat",
                         evaluated=False, run=RUN)


@pytest.fixture
def package(pristine_package: Path, tmp_path: Path) -> Path:
    """A private copy: tests that calibrate or corrupt it do not touch the others."""
    return Path(shutil.copytree(pristine_package, tmp_path / "model"))
