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

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
