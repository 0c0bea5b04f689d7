import pytest
import yaml
from omegaconf import OmegaConf

from atr.config import conf_dir
from atr.policy.config import PolicyConfig


def test_defaults_live_in_the_dataclass_and_the_yaml_only_overrides():
    from atr.config import compose

    raw = yaml.safe_load((conf_dir() / "policy" / "default.yaml").read_text())
    assert set(raw) <= {"defaults"} | set(PolicyConfig().to_dict())  # no second copy
    assert raw["defaults"][0] == "schema"
    from_file = PolicyConfig.from_yaml(conf_dir() / "policy" / "default.yaml")
    assert from_file == PolicyConfig()
    composed = PolicyConfig.from_dict(compose("evaluate").policy)
    assert composed == PolicyConfig()
    cfg = from_file
    assert (cfg.leak_rate_target, cfg.confidence, cfg.threat_recall_target) == (0.005, 0.95, 0.95)
    assert (cfg.max_threat_cleared, cfg.min_threat_positives, cfg.clear_guard) == (0, 10, None)
    assert (cfg.on_insufficient, cfg.triage_inspect_threshold) == ("triage", 0.5)


def test_misspelt_or_mistyped_key_fails_at_composition_naming_it():
    from hydra.errors import ConfigCompositionException

    from atr.config import compose

    with pytest.raises(ConfigCompositionException, match="leak_rate_targt"):
        compose("evaluate", ["policy.leak_rate_targt=0.01"])
    with pytest.raises(ConfigCompositionException, match="policy.confidence"):
        compose("evaluate", ["policy.confidence=high"])
    # `+key` slips past composition: building the object still names it.
    cfg = compose("evaluate", ["+policy.leak_rate_targt=0.01"])
    with pytest.raises(ValueError, match=r"policy\.leak_rate_targt"):
        PolicyConfig.from_dict(cfg.policy)


def test_triage_settings_from_hydra_overrides():
    from atr.config import compose

    cfg = compose("evaluate", ["policy.on_insufficient=error",
                               "policy.triage_inspect_threshold=0.3"])
    policy = PolicyConfig.from_dict(OmegaConf.to_container(cfg.policy, resolve=True))
    assert (policy.on_insufficient, policy.triage_inspect_threshold) == ("error", 0.3)


def test_from_hydra_node_with_per_class_override():
    node = OmegaConf.create({"policy": {"threat_recall_targets": {"knife": 0.97},
                                        "clear_guard": 0.2}})
    cfg = PolicyConfig.from_dict(node.policy)
    assert cfg.recall_target("knife") == 0.97 and cfg.recall_target("firearm") == 0.95
    assert cfg.clear_guard == 0.2


@pytest.mark.parametrize("bad", [
    {"leak_rate_targt": 0.01},          # misspelt: would silently fall back to the default
    {"confidence": "high"},
    {"confidence": 1.0},
    {"leak_rate_target": 0.0},
    {"threat_recall_targets": {"knife": 1.2}},
    {"max_threat_cleared": -1},
    {"clear_guard": 0.0},
    {"on_insufficient": "clear_anyway"},
    {"triage_inspect_threshold": 0.0},
    {"triage_inspect_threshold": 1.5},
])
def test_bad_config_refused(bad):
    with pytest.raises(ValueError, match="policy config"):
        PolicyConfig.from_dict(bad)
