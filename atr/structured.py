"""Dataclasses as Hydra/OmegaConf structured configs: one class = the keys, their types and
their defaults, for the YAML in conf/ and for code that builds the object directly.

`schema_node(cls)` is what atr/config_schema.py stores in Hydra's ConfigStore (a group's
`schema` entry); `to_dataclass(cls, cfg, where)` turns a composed node, a plain dict or a
partial one (the missing keys take the class's defaults) into the validated instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


def schema_node(cls: type) -> DictConfig:
    """The structured config of `cls`, writable.

    A frozen dataclass gives a read-only node, which Hydra cannot merge the YAML and the
    command-line overrides into; the instance built from it (to_dataclass) stays frozen.
    """
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def _writable(node: DictConfig) -> None:
    OmegaConf.set_readonly(node, None)  # None: inherit (from a writable root)
    for key in node:  # by key: a mandatory (???) value cannot be read
        if OmegaConf.is_dict(child := OmegaConf.select(node, str(key), throw_on_missing=False)):
            _writable(child)


def to_dataclass(cls: type[T], cfg: Mapping[str, Any] | DictConfig | None, where: str) -> T:
    """`cfg` over `cls`'s defaults, type-checked, as a `cls` instance.

    Every error is a ValueError naming the key as `<where>.<key>`: a misspelt key would
    otherwise fall back to a default silently, and a wrong type surface far from the YAML.
    """
    try:
        if isinstance(cfg, DictConfig):
            # Resolve interpolations against the composed config it belongs to, before the
            # node is detached from that config by the merge below.
            cfg = OmegaConf.to_container(cfg, resolve=True)
        merged = OmegaConf.merge(schema_node(cls), cfg or {})
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        key = f"{where}.{exc.full_key}" if getattr(exc, "full_key", None) else where
        # OmegaConf appends full_key/object_type lines: the key is already in front.
        message = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        raise ValueError(f"{key}: {message}") from None
