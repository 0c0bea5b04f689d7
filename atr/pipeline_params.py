"""pipelines/params.yaml written by code: the pinned champion version (atr/retrain.py) and
the demo's size profile (atr/demo.py), with the file's comments and layout kept.

DVC re-runs exactly the stages whose declared params changed, so a value is written only
when it differs: rewriting an equal value would be harmless to DVC but noise in git.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PARAMS = Path("pipelines") / "params.yaml"


def _yaml() -> Any:
    from ruamel.yaml import YAML  # round-trip: comments and key order survive

    yaml = YAML()
    yaml.preserve_quotes, yaml.width = True, 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def read_params(repo: Path) -> Any:
    return _yaml().load((repo / PARAMS).read_text())


def update_params(repo: Path, updates: Mapping[str, Any]) -> list[str]:
    """Set dotted keys (`train.init_version`, `dataset.sources.0.count`: a number indexes a
    list) in repo's params.yaml; returns the keys whose value changed (the file is
    rewritten only if any did)."""
    yaml, path = _yaml(), repo / PARAMS
    params = yaml.load(path.read_text())
    changed = []
    for dotted, value in updates.items():
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = _child(node, key, path, dotted)
        if isinstance(node, list):
            raise KeyError(f"{path}: {dotted!r} names a list item, not a key")
        if leaf not in node or _plain(node[leaf]) != _plain(value):
            node[leaf] = value
            changed.append(dotted)
    if changed:
        with path.open("w") as out:
            yaml.dump(params, out)
    return changed


def _child(node: Any, key: str, path: Path, dotted: str) -> Any:
    if isinstance(node, list):
        if not key.isdigit() or int(key) >= len(node):
            raise KeyError(f"{path}: {dotted!r}: no item {key} in a list of {len(node)}")
        return node[int(key)]
    if key not in node:
        raise KeyError(f"{path}: no block {key!r} for {dotted!r}")
    return node[key]


def apply_overlay(repo: Path, overlay: list[str]) -> list[str]:
    """`key=value` items (values parsed as YAML) set with update_params."""
    import yaml

    updates = {}
    for item in overlay:
        key, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"pipeline overlay item {item!r}: expected key=value")
        updates[key.strip()] = yaml.safe_load(value)
    return update_params(repo, updates)


def _plain(value: Any) -> Any:
    """ruamel's commented maps/lists compared as plain dicts/lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
