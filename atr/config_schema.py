"""The structured configs of conf/, registered with Hydra's ConfigStore on import.

atr.config.compose imports this module, so every composed config is checked against them:
a group file lists its schema first in its defaults list and then only overrides it:

    conf/policy/default.yaml    - schema                  atr.policy.config.PolicyConfig
    conf/serve/default.yaml     - schema                  serving.settings.Settings
    conf/monitor/default.yaml   - rule_schema@rule        atr.monitor.drift_rule.DriftRule
                                - leak_schema@leak        atr.monitor.leak_rate.LeakRule

Each dataclass holds its defaults (tests and library code build it without Hydra); a YAML
default would be a second copy. Misspelt keys and wrong types fail at composition, naming
the key. The instantiated pieces (model, data, callbacks, logger) are `_target_` nodes
instead: their classes take runtime arguments the YAML cannot hold (atr/train.py).
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from atr.monitor.drift_rule import DriftRule
from atr.monitor.leak_rate import LeakRule
from atr.policy.config import PolicyConfig
from atr.structured import schema_node
from serving.settings import Settings

# (group, name in the group, dataclass)
SCHEMAS: tuple[tuple[str, str, type], ...] = (
    ("policy", "schema", PolicyConfig),
    ("serve", "schema", Settings),
    ("monitor", "rule_schema", DriftRule),
    ("monitor", "leak_schema", LeakRule),
)


def register_schemas() -> None:
    """Store every schema (storing one again replaces it: safe to call twice)."""
    store = ConfigStore.instance()
    for group, name, cls in SCHEMAS:
        store.store(group=group, name=name, node=schema_node(cls))


register_schemas()
