import pytest
import yaml
from omegaconf import OmegaConf

from atr.config import conf_dir
from atr.policy.config import PolicyConfig, default_policy_config


def test_default_yaml_holds_the_documented_defaults():
    raw = yaml.safe_load((conf_dir() / "policy" / "default.yaml").read_text())
    assert set(raw) == set(PolicyConfig().to_dict())
    assert default_policy_config() == PolicyConfig()
    cfg = default_policy_config()
    assert (cfg.leak_rate_target, cfg.confidence, cfg.threat_recall_target) == (0.005, 0.95, 0.95)
    assert (cfg.max_threat_cleared, cfg.min_threat_positives, cfg.clear_guard) == (0, 10, None)
    assert (cfg.on_insufficient, cfg.triage_inspect_threshold) == ("triage", 0.5)


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
