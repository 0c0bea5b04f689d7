"""Registration, aliases, approval and the pyfunc, against a real MLflow SQLite registry."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from atr.package.checksums import ChecksumError, sha256_file
from atr.package.layout import PACKAGE_PATH
from atr.package.preprocess import PreprocessSpec, decode_image
from atr.package.reasons import IMAGE_UNREADABLE
from atr.registry.approve import approve
from atr.registry.approve import run as approve_job
from atr.registry.pyfunc_model import encode_image_file
from atr.registry.register import register_package
from atr.registry.register import run as register_job
from serving import decisions

NAME = "atr-screening"


def _cfg(registry_cfg, name: str, pkg: Path | None = None, *extra: str):
    more = [f"register.eval_dir={pkg / 'artifacts' / 'eval'}"] if pkg else []
    return registry_cfg(name, *more, *extra)


def test_register_twice_moves_challenger_and_tags_version(registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    pkg1 = new_package(cfg)
    v1 = register_package(pkg1, _cfg(registry_cfg, "register", pkg1))
    assert str(v1.version) == "1" and "challenger" in v1.aliases
    assert v1.tags["sha256.model.onnx"] == sha256_file(pkg1 / "model.onnx")
    assert v1.tags["sha256.policy.json"] == sha256_file(pkg1 / "policy.json")
    assert v1.tags["eval.test.auto_clear_rate"] == "0.4"
    assert v1.tags["eval.test.auroc.paper_only"] == "0.9"
    assert {"data.dvc_md5", "data.manifest_sha256", "git.commit", "git.dirty"} <= set(v1.tags)
    run = mlflow.get_run(json.loads((pkg1 / "run.json").read_text())["run_id"])
    assert run.data.metrics["test.leak_rate"] == 0.0  # metrics land in the training run
    assert v1.run_id == run.info.run_id

    pkg2 = new_package(cfg)
    out = register_job(_cfg(registry_cfg, "register", pkg2, f"register.package_dir={pkg2}"))
    assert out["version"] == 2 and out["uri"] == f"models:/{NAME}/2"
    assert json.loads(Path(cfg.paths.artifacts_dir, "registered.json").read_text()) == out
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    assert "challenger" not in client.get_model_version(NAME, "1").aliases
    with pytest.raises(Exception, match="champion"):  # registration never sets champion
        client.get_model_version_by_alias(NAME, "champion")


def test_register_refuses_package_edited_after_evaluation(registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    (pkg / "policy.json").write_text((pkg / "policy.json").read_text().replace("0.5", "0.4"))
    with pytest.raises(ChecksumError, match="policy.json"):
        register_package(pkg, _cfg(registry_cfg, "register", pkg))
    (pkg / "policy.json").unlink()
    (pkg / "package.json").unlink()
    with pytest.raises(FileNotFoundError, match="policy.json"):
        register_package(pkg, _cfg(registry_cfg, "register", pkg))


def test_approve_moves_champion_and_records_who(registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    for _ in range(2):
        pkg = new_package(cfg)
        register_package(pkg, _cfg(registry_cfg, "register", pkg))
    first = approve_job(registry_cfg("approve", "approve.version=1", "approve.by=alice"))
    assert first["aliases"] == ["champion"] and first["previous_champion"] == "none"
    assert first["approved_by"] == "alice" and first["mode"] == "manual"
    assert first["approved_at"].endswith("+00:00")

    second = approve(registry_cfg("approve"), version=2, by="sim", mode="auto-simulation")
    assert "champion" in second.aliases
    assert second.tags["approval.previous_champion"] == "1"
    assert second.tags["approval.mode"] == "auto-simulation"
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == "2"
    with pytest.raises(ValueError, match="reviewer"):
        approve(registry_cfg("approve"), version=1, by="")


def test_approve_refuses_tampered_version(registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    version = register_package(pkg, _cfg(registry_cfg, "register", pkg))
    # Alter the stored copy (what a later download returns), not the local package.
    model_id = version.source.split("/")[-1]
    stored = Path(urlparse(MlflowClient().get_logged_model(model_id).artifact_location).path)
    (stored / PACKAGE_PATH / "policy.json").write_text("{}")
    with pytest.raises(ChecksumError, match="policy.json"):
        approve(registry_cfg("approve"), version=1, by="alice")
    with pytest.raises(Exception, match="champion"):
        MlflowClient().get_model_version_by_alias(NAME, "champion")


def test_champion_pyfunc_predicts_both_input_forms(registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    register_package(pkg, _cfg(registry_cfg, "register", pkg))
    approve(registry_cfg("approve"), version=1, by="alice")

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    image_file = pkg / "artifacts" / "eval" / "leak_vs_auto_clear.png"
    from_bytes = model.predict(pd.DataFrame({"image_b64": [encode_image_file(image_file),
                                                           "bm90IGFuIGltYWdl"]}))
    spec = PreprocessSpec.load(pkg / "preprocess.json")
    tensor = spec.prepare_batch([decode_image(image_file)])
    from_tensor = model.predict(tensor)
    outputs = json.loads((pkg / "policy.json").read_text())["outputs"]
    assert list(from_tensor.columns) == [*outputs, "decision", "reason"]
    np.testing.assert_allclose(from_bytes.loc[:0, outputs].to_numpy(),
                               from_tensor[outputs].to_numpy(), rtol=1e-6)
    assert from_bytes.loc[0, "decision"] == from_tensor.loc[0, "decision"]
    # Undecodable bytes are inspected, never cleared (fail-safe).
    assert from_bytes.loc[1, "decision"] == "INSPECT"
    assert from_bytes.loc[1, "reason"] == IMAGE_UNREADABLE == decisions.IMAGE_UNREADABLE
    assert len(model.predict({"image": tensor})) == 1  # the scoring server's `inputs` form
    with pytest.raises(ValueError, match="Nx3x32x32"):
        model.predict(np.zeros((1, 3, 8, 8), np.float32))
