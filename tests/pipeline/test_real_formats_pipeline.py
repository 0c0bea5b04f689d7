"""Every real format, simulated, through import -> prepare -> train -> evaluate.

CI has no real data: a simulated archive is exported in each format real archives come
in (tests/helpers/real_formats.py), imported with `atr data import`'s own code, assembled
as the only source of the training base, trained (one tiny epoch), then calibrated and
evaluated. The archive is small, so every policy must come out triage only -- never
CLEAR -- under the no_threat definition, and every test item must be scored. The
dual-energy pairs train the dual_energy representation (the raw low/high channels)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers.real_formats import FORMATS, export_dataset

from atr.config import compose
from atr.data.importers import import_dataset
from atr.data.manifest import read_dataset
from atr.data.prepare import run as prepare
from atr.data.synth import make_dataset
from atr.evaluation.job import run as evaluate
from atr.train import run as train

TINY_TRAIN = ["trainer.max_epochs=1", "model.preprocess.input_size=48",
              "model.test_time_views=[identity]", "data.batch_size=16",
              "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
              "taxonomy.low_risk=no_threat"]
DUAL = ["model.preprocess.representation=dual_energy", "model.preprocess.mean=[0.2,0.15,0.05]",
        "model.preprocess.std=[0.55,0.45,0.15]"]


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("scans") / "sim", count=80, image_size=48,
                        seed=5, save_raw=True)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_format_through_import_prepare_train_evaluate(fmt: str, scans: Path,
                                                      tmp_path: Path) -> None:
    paths = [f"paths.root={tmp_path / 'rt'}", f"paths.data_dir={tmp_path / 'data'}",
             f"paths.artifacts_dir={tmp_path / 'art'}"]
    source, overrides = export_dataset(scans, fmt, tmp_path / "src")
    archive = tmp_path / "data" / "imports" / fmt
    import_dataset(compose("import", [*overrides, f"importer.name={fmt}",
                                      f"importer.out={archive}", *paths]))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"dataset": {"sources": [
        {"name": fmt, "kind": "import", "weight": 1, "path": str(archive)}]}}))
    dataset = tmp_path / "art" / "dataset"
    prepare(compose("prepare", [*paths, f"prepare.sources_file={params}",
                                f"prepare.out={dataset}"]))
    assert len(read_dataset(dataset).manifest) == len(read_dataset(archive).manifest)

    dual = fmt.startswith("dual_energy")
    model = tmp_path / "art" / "model"
    train(compose("train", [*paths, *TINY_TRAIN, *(DUAL if dual else []),
                            f"data.dir={dataset}", f"train.out_dir={model}"]))
    out = tmp_path / "art" / "eval"
    evaluate(compose("evaluate", [*paths, f"evaluate.package_dir={model}",
                                  f"evaluate.dataset={dataset}", f"evaluate.out_dir={out}"]))
    policy = json.loads((model / "policy.json").read_text())
    assert policy["mode"] == "triage_only" and policy["clear_threshold"] is None
    assert policy["low_risk"] == "no_threat" and policy["outputs"][0] == "no_threat"
    assert policy["warnings"][0].startswith("TRIAGE ONLY")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["low_risk"] == "no_threat"
    scored = pd.read_parquet(out / "scores_test.parquet")
    test_items = read_dataset(dataset).split("test")
    assert sorted(scored["item_id"]) == sorted(test_items["item_id"])
    assert "CLEAR" not in set(scored["decision"])
    preprocess = json.loads((model / "preprocess.json").read_text())
    assert preprocess["representation"] == ("dual_energy" if dual else "pseudo_colour")
