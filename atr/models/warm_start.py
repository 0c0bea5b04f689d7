"""Warm start: begin training from earlier weights (a checkpoint file or a registered version).

Continuous learning retrains often on base data plus a few thousand frontline labels.
Fine-tuning the approved model (`train.init_from=models:/NAME@champion`) for a few
epochs did at least as well as a full run from scratch on the demo's new scanner (55-64 %
vs 48 % of paper-only items cleared) in a third of the time; a full run from scratch
(`train.init_from=null`) stays the choice when the backbone or the taxonomy changes, and
every so often to shed what accumulates over many fine-tunings.

`train.init_scope: backbone` loads only the backbone's weights and leaves the head fresh:
physics pretraining (`atr pretrain`, registered as `models:/atr-backbone@current`) gives a
backbone trained on simulated parcels that a real archive's model, with its own input
representation, tiles or taxonomy, starts from.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import torch

from atr.registry.model_uri import FORMS, parse_model_uri

log = logging.getLogger(__name__)

CHECKPOINT_ARTIFACT = "checkpoint/model.ckpt"  # where `atr train` logs the exported weights
# Kept from the new run, not the old model: pos_weight follows the new data's class balance.
FRESH_BUFFERS = ("pos_weight",)
SCOPES = ("all", "backbone")
BACKBONE_PREFIX = "backbone."


def resolve_init(cfg: Any, dest: Path) -> tuple[Path | None, str | None]:
    """(checkpoint file, description) for `train.init_from`, or (None, None) for scratch.

    `init_from` is null, a .ckpt path, or `models:/NAME@ALIAS` / `models:/NAME/VERSION`
    (the checkpoint logged with that version's training run). A models:/ reference that
    does not resolve (no champion yet, on a fresh clone) trains from scratch when
    `train.init_missing=scratch` and is an error otherwise.
    """
    ref = cfg.train.init_from
    if ref is None or str(ref).strip().lower() in ("", "null", "none"):  # DVC renders None
        return None, None
    ref = str(ref).strip()
    registered = parse_model_uri(ref)
    if registered is None:
        path = Path(ref)
        if ref.startswith("models:") or not path.is_file():
            raise FileNotFoundError(
                f"train.init_from={ref!r}: neither a checkpoint file nor {FORMS}"
            )
        return path, str(path)
    return _registered_checkpoint(cfg, ref, registered, dest)


def _registered_checkpoint(
    cfg: Any, ref: str, registered: tuple[str, str], dest: Path
) -> tuple[Path | None, str | None]:
    import mlflow

    from atr.package.fetch import resolve_version as resolve
    from atr.registry.tracking import configure

    client = configure(cfg)
    version = resolve(client, *registered)
    if version is None:
        if str(cfg.train.init_missing) == "scratch":
            log.info("train.init_from=%s does not resolve yet: training from scratch", ref)
            return None, None
        raise LookupError(f"train.init_from={ref}: no such registered version or alias")
    local = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=CHECKPOINT_ARTIFACT, dst_path=str(dest)
    )
    return Path(local), f"models:/{version.name}/{version.version}"


LOC_PREFIX = "loc_head."


def load_init_weights(model: torch.nn.Module, checkpoint: Path, described: str,
                      scope: str = "all") -> None:
    """Copy the checkpoint's weights into `model` (all, or the backbone only); refuse
    weights of another architecture."""
    if scope not in SCOPES:
        raise ValueError(f"train.init_scope={scope!r} not one of {SCOPES}")
    # weights_only=False: a Lightning checkpoint holds hyper-parameters next to the tensors;
    # it comes from this project's own training runs (serving never loads pickles).
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    weights = {k: v for k, v in state.get("state_dict", state).items()
               if k not in FRESH_BUFFERS}
    if scope == "backbone":
        weights = {k: v for k, v in weights.items() if k.startswith(BACKBONE_PREFIX)}
        if not weights:
            raise ValueError(f"train.init_from: {described} holds no backbone weights")
    own = model.state_dict()
    # The localisation head (model.localisation) may be on one side only: a champion
    # trained before it existed, or a run with weight 0. The head then starts fresh, or
    # the checkpoint's is left out; the rest must still fit exactly.
    if not any(k.startswith(LOC_PREFIX) for k in own):
        weights = {k: v for k, v in weights.items() if not k.startswith(LOC_PREFIX)}
    new_head = not any(k.startswith(LOC_PREFIX) for k in weights)
    keep = (lambda k: k in FRESH_BUFFERS or (new_head and k.startswith(LOC_PREFIX))) \
        if scope == "all" else (lambda k: not k.startswith(BACKBONE_PREFIX))
    fresh = {k: v for k, v in own.items() if keep(k)}
    try:
        model.load_state_dict({**weights, **fresh}, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"train.init_from: the weights of {described} do not fit this model "
            f"(another backbone or taxonomy?). Train from scratch with "
            f"train.init_from=null.\n{exc}"
        ) from exc
    log.info("warm start from %s (%s)", described, scope)


def warm_start(cfg: Any, model: torch.nn.Module) -> str | None:
    """Load `train.init_from` into `model`; returns what was loaded (None: from scratch)."""
    with tempfile.TemporaryDirectory(prefix="atr-init-") as tmp:
        checkpoint, described = resolve_init(cfg, Path(tmp))
        if checkpoint is None:
            return None
        scope = str(cfg.train.get("init_scope", "all"))
        load_init_weights(model, checkpoint, str(described), scope)
    return described if scope == "all" else f"{described} (backbone)"
