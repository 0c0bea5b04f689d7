"""Locating and composing the Hydra configuration under conf/."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# Paths in conf/ are written relative to the working directory; the resolver
# pins them to absolute paths so that subprocesses (DVC, MLflow, uvicorn) agree.
if not OmegaConf.has_resolver("abspath"):
    OmegaConf.register_new_resolver("abspath", lambda p: str(Path(p).expanduser().resolve()))


def conf_dir() -> Path:
    """conf/ beside the package (editable install, the supported one) or $ATR_CONF_DIR."""
    env = os.environ.get("ATR_CONF_DIR")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "conf"
    if not (path / "taxonomy").is_dir():
        raise FileNotFoundError(
            f"ATR configuration not found at {path}: install atr editable from its repository "
            "(pip install -e .) or set ATR_CONF_DIR to the repository's conf/ folder"
        )
    return path


def compose(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose conf/<config_name>.yaml with command-line style overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import atr.config_schema  # noqa: F401  (registers conf/'s structured configs)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name,
                             overrides=with_env_paths(config_name, overrides))


# A paths group for every command, sub-jobs and DVC stages included (they inherit the
# environment): runtime/stack/stack.env sets ATR_PATHS=stack (docs/stack.md). An explicit
# `paths=...` override wins; configs without a paths group are left alone.
PATHS_ENV = "ATR_PATHS"


def with_env_paths(config_name: str, overrides: Sequence[str]) -> list[str]:
    group = os.environ.get(PATHS_ENV)
    if not group or any(override_key(o) == "paths" for o in overrides):
        return list(overrides)
    import yaml

    doc = yaml.safe_load((conf_dir() / f"{config_name}.yaml").read_text()) or {}
    if any(isinstance(d, dict) and "paths" in d for d in doc.get("defaults", [])):
        return [f"paths={group}", *overrides]
    return list(overrides)


# Always passed: the three folders everything else derives from (conf/paths/default.yaml).
ROOT_PATHS = ("root", "data_dir", "artifacts_dir")


def runtime_overrides(cfg: DictConfig) -> list[str]:
    """The caller's runtime as overrides for a sub-job: paths.root/data_dir/artifacts_dir
    (resolved, so the sub-job sees the same folders whatever its cwd), any other `paths.*`
    the caller set outright (a server's tracking_uri; derived ones are left to derive, so a
    later paths.root override still moves them), and `registry.model_name` if it has one."""
    raw = OmegaConf.to_container(cfg.paths, resolve=False) if "paths" in cfg else {}
    out = [f"paths.{k}={cfg.paths[k]}" for k in ROOT_PATHS if k in raw]
    out += [f"paths.{k}={v}" for k, v in raw.items() if k not in ROOT_PATHS
            and v is not None and not (isinstance(v, str) and "${" in v)]
    name = OmegaConf.select(cfg, "registry.model_name", default=None)
    return [*out, f"registry.model_name={name}"] if name is not None else out


def override_key(override: str) -> str:
    """`a.b` for `a.b=1`, `+a.b=1`, `++a.b=1` and `~a.b`: the key an override sets."""
    return override.split("=", 1)[0].lstrip("+~")


def merge_overrides(*lists: Sequence[str]) -> list[str]:
    """One override per key, later lists winning: a caller's `paths.root=...` replaces the
    default one wherever it sits (never dropped or kept by position). Order: first sight."""
    merged: dict[str, str] = {}
    for overrides in lists:
        for override in overrides:
            merged[override_key(str(override))] = str(override)
    return list(merged.values())


def only(overrides: Sequence[str], *prefixes: str) -> list[str]:
    """The overrides whose key starts with one of `prefixes` (`paths.` for jobs without a
    registry)."""
    return [o for o in overrides if override_key(o).startswith(prefixes)]
