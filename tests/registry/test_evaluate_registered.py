"""`atr evaluate evaluate.model=models:/...`: a registered version scored on any manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from atr.evaluation.job import run
from atr.registry.approve import approve
from atr.registry.register import register_package

NAME = "atr-screening"


def test_registered_version_is_scored_by_alias_and_by_number(
    registry_cfg, new_package, tiny_dataset: Path, tmp_path: Path
) -> None:
    pkg = new_package(registry_cfg("register"))
    register_package(pkg, registry_cfg("register", f"register.eval_dir={pkg / 'artifacts/eval'}"))
    approve(registry_cfg("approve"), version=1, by="alice")

    def evaluate(uri: str, out: str) -> dict:
        result = run(registry_cfg("evaluate", f"evaluate.model={uri}",
                                  f"evaluate.dataset={tiny_dataset}",
                                  f"evaluate.out_dir={tmp_path / out}"))
        return {**result, "doc": json.loads(Path(result["report"]).read_text())}

    by_alias = evaluate(f"models:/{NAME}@champion", "alias")
    by_number = evaluate(f"models:/{NAME}/1", "number")
    test_rows = int((pd.read_parquet(tiny_dataset / "manifest.parquet")["split"] == "test").sum())
    assert by_alias["doc"]["policy"]["n"] == test_rows
    assert by_alias["doc"]["policy"] == by_number["doc"]["policy"]
    # The downloaded copy, not the folder it was registered from; that folder is untouched.
    assert Path(by_alias["package"]) != pkg and (Path(by_alias["package"]) / "model.onnx").is_file()


def test_unknown_or_malformed_model_reference_is_named(registry_cfg, tiny_dataset: Path) -> None:
    with pytest.raises(LookupError, match="@nobody"):
        run(registry_cfg("evaluate", f"evaluate.model=models:/{NAME}@nobody",
                         f"evaluate.dataset={tiny_dataset}"))
    with pytest.raises(ValueError, match="models:/NAME@ALIAS"):
        run(registry_cfg("evaluate", "evaluate.model=atr-screening:champion",
                         f"evaluate.dataset={tiny_dataset}"))
