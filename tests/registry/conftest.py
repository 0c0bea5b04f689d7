"""A real, tiny model package and an isolated MLflow SQLite store for the registry tests."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import mlflow
import pytest
from omegaconf import DictConfig

from atr.config import compose
from atr.package.preprocess import PreprocessSpec
from atr.policy.decision import Policy
from atr.policy.taxonomy import default_taxonomy
from atr.registry.package_files import package_checksums

INPUT_SIZE = 32


def export_tiny_onnx(path: Path, n_outputs: int, seed: int) -> Path:
    """A 2-layer CNN with the contract's names: input `image`, outputs `scores`, `embedding`."""
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(8, n_outputs)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            emb = self.features(x)
            return torch.sigmoid(self.head(emb)), emb

    model = Tiny().eval()
    torch.onnx.export(
        model, (torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE),), str(path),
        input_names=["image"], output_names=["scores", "embedding"],
        dynamic_axes={"image": {0: "n"}, "scores": {0: "n"}, "embedding": {0: "n"}},
        dynamo=False,
    )
    return path


def build_package(out: Path, seed: int = 0, clear_threshold: float = 0.5) -> Path:
    """Everything `atr evaluate` leaves behind: package files, package.json, eval metrics."""
    taxonomy = default_taxonomy()
    outputs = taxonomy.model_outputs
    out.mkdir(parents=True, exist_ok=True)
    export_tiny_onnx(out / "model.onnx", len(outputs), seed)
    PreprocessSpec(input_size=INPUT_SIZE).save(out / "preprocess.json")
    (out / "taxonomy.json").write_text(json.dumps(taxonomy.to_dict()))
    Policy(
        outputs=outputs, clear_threshold=clear_threshold,
        inspect_thresholds=dict.fromkeys(outputs[1:], 0.5),
        targets={"leak_rate_target": 0.005, "confidence": 0.95},
    ).save(out / "policy.json")
    (out / "reference.parquet").write_bytes(b"PAR1 placeholder for drift reference")
    eval_dir = out / "artifacts" / "eval"
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "metrics.json").write_text(json.dumps(
        {"test": {"auto_clear_rate": 0.4, "leak_rate": 0.0, "auroc": {"paper_only": 0.9}},
         "note": "text is skipped"}))
    _tiny_png(eval_dir / "leak_vs_auto_clear.png")
    sums = package_checksums(out)
    (out / "package.json").write_text(json.dumps({"name": f"tiny-{seed}", "sha256": sums}))
    return out


def _tiny_png(path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4), (255, 128, 0)).save(path)


@pytest.fixture
def registry_cfg(
    tmp_path: Path, runtime_overrides: list[str]
) -> Iterator[Callable[..., DictConfig]]:
    """Compose one of our job configs against a fresh runtime folder in tmp_path."""

    def make(name: str = "register", *extra: str) -> DictConfig:
        return compose(name, [*runtime_overrides, *extra])

    yield make
    # Leave no process-wide MLflow state pointing into this test's tmp_path.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def package_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once (ONNX export costs a second); tests copy it."""
    return build_package(tmp_path_factory.mktemp("pkg") / "package", seed=0)


@pytest.fixture
def new_package(tmp_path: Path, package_template: Path) -> Callable[..., Path]:
    """A fresh copy of the package with a training run of its own (run.json)."""
    count = {"n": 0}

    def make(cfg: DictConfig) -> Path:
        from atr.registry.tracking import configure, ensure_experiment

        count["n"] += 1
        pkg = tmp_path / f"package-{count['n']}"
        shutil.copytree(package_template, pkg)
        configure(cfg)
        with mlflow.start_run(experiment_id=ensure_experiment(cfg), run_name="train") as run:
            mlflow.log_param("seed", count["n"])
        (pkg / "run.json").write_text(json.dumps({
            "run_id": run.info.run_id, "experiment_id": run.info.experiment_id,
            "tracking_uri": mlflow.get_tracking_uri()}))
        return pkg

    return make
