"""atr.package.fetch against a real MLflow SQLite registry: resolution, download, the
checksum checks (a mismatch names the file), the monitor's cached reference, the pyfunc's
fail-safe reason."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from atr.monitor.reference import load_reference
from atr.package.checksums import ChecksumError, package_checksums, sha256_file
from atr.package.fetch import fetch_package, fetch_verified, resolve_version
from atr.package.image_stats import STAT_NAMES
from atr.package.layout import MANIFEST_FILE, PACKAGE_PATH, REFERENCE_FILE, SHA_TAG_PREFIX
from atr.registry.pyfunc_model import ScreeningModel
from atr.registry.register import register_package
from atr.registry.tracking import configure
from serving import decisions

NAME = "atr-screening"


def _register(registry_cfg, pkg: Path):
    eval_dir = pkg / "artifacts" / "eval"
    return register_package(pkg, registry_cfg("register", f"register.eval_dir={eval_dir}"))


def _stored_package(version) -> Path:
    """The registry's own copy of the package (what every later download returns)."""
    model_id = version.source.split("/")[-1]
    location = MlflowClient().get_logged_model(model_id).artifact_location
    return Path(urlparse(location).path) / PACKAGE_PATH


def test_fetch_by_alias_and_number_verifies_every_file(registry_cfg, new_package,
                                                       tmp_path: Path) -> None:
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    version = _register(registry_cfg, pkg)
    client = configure(cfg)
    by_alias = fetch_package(client, NAME, "challenger", tmp_path / "dl")
    assert by_alias.path == tmp_path / "dl" / f"{NAME}-v1" / "package"
    assert by_alias.sha256 == package_checksums(pkg) == package_checksums(by_alias.path)
    assert all(version.tags[SHA_TAG_PREFIX + f] == d for f, d in by_alias.sha256.items())
    by_number = fetch_package(client, NAME, 1, tmp_path / "dl")
    assert by_number.path == by_alias.path and by_number.sha256 == by_alias.sha256
    # Only the package itself comes down: no pyfunc pickle, no leftover partial folder.
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [f"{NAME}-v1"]

    assert resolve_version(client, NAME, "nobody") is None
    assert resolve_version(client, NAME, "7") is None
    assert resolve_version(client, "no-such-model", "champion") is None
    with pytest.raises(LookupError, match="nobody"):
        fetch_package(client, NAME, "nobody", tmp_path / "dl")


def test_a_tampered_file_or_tag_is_refused_by_name(registry_cfg, new_package,
                                                   tmp_path: Path) -> None:
    cfg = registry_cfg("register")
    version = _register(registry_cfg, new_package(cfg))
    client = configure(cfg)
    stored = _stored_package(version)
    original = (stored / "policy.json").read_text()
    (stored / "policy.json").write_text("{}")
    with pytest.raises(ChecksumError, match=r"checksum mismatch .*'policy\.json'"):
        fetch_verified(client, version, tmp_path / "dl")
    (stored / "policy.json").write_text(original)

    (stored / "extra.json").write_text("{}")  # a file registration never hashed
    with pytest.raises(ChecksumError, match="extra.json"):
        fetch_verified(client, version, tmp_path / "dl")
    (stored / "extra.json").unlink()

    client.set_model_version_tag(NAME, version.version, "sha256.model.onnx", "0" * 64)
    with pytest.raises(ChecksumError, match="model.onnx"):
        fetch_verified(client, client.get_model_version(NAME, version.version), tmp_path / "dl")


def test_tags_and_files_agreeing_against_package_json_are_still_refused(
        registry_cfg, new_package, tmp_path: Path) -> None:
    """package.json is checked too: the tags alone are not the only record."""
    cfg = registry_cfg("register")
    version = _register(registry_cfg, new_package(cfg))
    client = configure(cfg)
    stored = _stored_package(version)
    manifest = json.loads((stored / MANIFEST_FILE).read_text())
    manifest["sha256"]["taxonomy.json"] = "0" * 64
    (stored / MANIFEST_FILE).write_text(json.dumps(manifest))
    digest = sha256_file(stored / MANIFEST_FILE)
    client.set_model_version_tag(NAME, version.version, f"sha256.{MANIFEST_FILE}", digest)
    with pytest.raises(ChecksumError, match=rf"{MANIFEST_FILE} for \['taxonomy.json'\]"):
        fetch_verified(client, client.get_model_version(NAME, version.version), tmp_path / "dl")


def _reference_frame(outputs: list[str], n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"score_{o}": rng.random(n) for o in outputs})
    for name in STAT_NAMES:
        frame[name] = rng.random(n)
    frame["decision"] = "REVIEW"
    frame["embedding"] = [rng.random(8).astype(np.float32) for _ in range(n)]
    return frame


def test_monitor_reference_cache_is_reverified_and_refetched_when_tampered(
        registry_cfg, new_package) -> None:
    cfg = registry_cfg("register")
    pkg = new_package(cfg)
    outputs = json.loads((pkg / "policy.json").read_text())["outputs"]
    _reference_frame(outputs).to_parquet(pkg / REFERENCE_FILE, index=False)
    manifest = json.loads((pkg / MANIFEST_FILE).read_text())
    manifest["sha256"][REFERENCE_FILE] = sha256_file(pkg / REFERENCE_FILE)
    (pkg / MANIFEST_FILE).write_text(json.dumps(manifest))
    _register(registry_cfg, pkg)

    mon = registry_cfg("monitor", "monitor.reference_alias=challenger")
    first = load_reference(mon)
    assert first.model_version == "1" and first.outputs == outputs and len(first.frame) == 12
    cached = first.path
    assert cached.parent.parent.parent == Path(mon.monitor.download_dir)
    good = sha256_file(cached)

    # An intact cache is reused as it is (same file, not downloaded again)...
    mtime = cached.stat().st_mtime_ns
    assert load_reference(mon).path == cached and cached.stat().st_mtime_ns == mtime

    # ...a tampered one is refused and replaced by a verified download.
    _reference_frame(outputs, n=3).to_parquet(cached, index=False)
    again = load_reference(mon)
    assert len(again.frame) == 12 and sha256_file(again.path) == good


def test_pyfunc_failsafe_reason_is_servings(package_template: Path) -> None:
    model = ScreeningModel()
    model.load_package(package_template)
    out = model.predict(None, pd.DataFrame({"image_b64": ["bm90IGFuIGltYWdl"]}))
    assert out.loc[0, "decision"] == "INSPECT"
    assert out.loc[0, "reason"] == decisions.IMAGE_UNREADABLE
    assert out.loc[0, "reason"] in decisions.FAILSAFE_REASONS


def test_the_one_loader_refuses_a_package_without_policy(package_template: Path,
                                                         tmp_path: Path) -> None:
    import shutil

    from atr.package.layout import PackageError
    from atr.package.onnx_scorer import load_scorer

    pkg = shutil.copytree(package_template, tmp_path / "pkg")
    assert load_scorer(pkg).policy is not None
    (pkg / "policy.json").unlink()
    with pytest.raises(PackageError, match="policy.json"):
        load_scorer(pkg)
    assert load_scorer(pkg, require_policy=False).policy is None  # the evaluate stage
