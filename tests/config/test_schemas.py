"""Structured configs: each default is written once (the dataclass), the YAML only wires
or overrides, and a misspelt key fails naming it. The registry's name has one home."""

from __future__ import annotations

import dataclasses

import pytest
import yaml
from hydra.errors import ConfigCompositionException

from atr.config import compose, conf_dir
from atr.registry.tracking import model_name
from serving.settings import Settings, settings_from_cfg

REGISTRY_JOBS = ("approve", "gate", "mlflow", "monitor", "register", "serve", "demo",
                 "retrain", "evaluate")


def test_serve_settings_are_the_dataclass_defaults_with_no_second_copy() -> None:
    raw = yaml.safe_load((conf_dir() / "serve" / "default.yaml").read_text())
    wired = {f.name for f in dataclasses.fields(Settings)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    # The YAML sets only the keys without a default (+ registry_uri and keys_file, also from
    # conf/paths: None in code means "none configured", the YAML points them at the runtime).
    assert set(raw) - {"defaults"} == wired | {"registry_uri", "keys_file"}
    cfg = compose("serve")
    settings = settings_from_cfg(cfg)
    for f in dataclasses.fields(Settings):
        if f.name not in raw:
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            assert getattr(settings, f.name) == default, f.name
    assert settings.model_name == cfg.registry.model_name
    assert settings.prediction_db == cfg.paths.prediction_db


def test_serve_overrides_apply_and_bad_keys_are_named() -> None:
    settings = settings_from_cfg(compose("serve", ["serve.port=9001", "serve.shadow=true",
                                                   "serve.rate_limits.scanner.rate=50"]))
    assert (settings.port, settings.shadow, settings.rate_limits["scanner"].rate) == (
        9001, True, 50.0)
    with pytest.raises(ConfigCompositionException, match="max_bacth"):
        compose("serve", ["serve.max_bacth=4"])
    with pytest.raises(ConfigCompositionException, match="serve.port"):
        compose("serve", ["serve.port=eighty"])
    with pytest.raises(ValueError, match=r"serve\.max_bacth"):
        settings_from_cfg(compose("serve", ["+serve.max_bacth=4"]))
    with pytest.raises(ValueError, match="serve.max_batch must be >= 1"):
        settings_from_cfg(compose("serve", ["serve.max_batch=0"]))


def test_every_registry_job_reads_the_registry_group() -> None:
    name = yaml.safe_load((conf_dir() / "registry" / "default.yaml").read_text())["model_name"]
    for job in REGISTRY_JOBS:
        cfg = compose(job, ["registry.model_name=atr-other"])
        assert model_name(cfg) == "atr-other", job
        assert model_name(compose(job)) == name, job
    assert compose("evaluate", ["registry.model_name=x"]).evaluate.model_name == "x"
    assert compose("serve", ["registry.model_name=x"]).serve.model_name == "x"


def test_the_model_name_is_written_once_in_conf() -> None:
    name = yaml.safe_load((conf_dir() / "registry" / "default.yaml").read_text())["model_name"]
    for path in conf_dir().rglob("*.yaml"):
        if path.parent.name == "registry":
            continue
        values = [line.split("#")[0] for line in path.read_text().splitlines()]
        assert not any(name in v for v in values), f"{path} repeats {name}"


def test_a_config_without_the_registry_group_is_told_how_to_get_it() -> None:
    with pytest.raises(ValueError, match="- registry: default"):
        model_name(compose("train"))


def test_prepare_holds_the_frontline_defaults() -> None:
    # pipelines/params.yaml passes these to `atr prepare`; their defaults live in conf/.
    cfg = compose("prepare")
    assert (cfg.prepare.frontline_batches, cfg.prepare.frontline_weight) == (-1, 6)
