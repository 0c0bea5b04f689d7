"""`atr approve VERSION --by NAME`: a reviewer promotes a version to `@champion`.

Before the alias moves, the version's package is downloaded and every file checked
against the `sha256.*` tags written at registration, and it must carry a `policy.json`
(without one the line could not decide). Tags recorded on the approved version:
`approved_by`, `approved_at` (UTC ISO 8601), `approval.previous_champion` (version or
`none`), `approval.mode` (`manual`, or `auto-simulation` for `--auto-approve` in demos and
simulations, so an unattended promotion is never mistaken for a human decision).

The other route: a reviewer adds the alias `champion` to the version in the MLflow UI
(Models > atr-screening > Version N > Aliases). It needs no code, but records none of the
tags above and skips the checksum check; `atr approve` is the audited route.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion

from atr.package.checksums import ChecksumError
from atr.package.fetch import fetch_verified, resolve_version
from atr.package.layout import POLICY_FILE
from atr.registry.tracking import cfg_value, configure, model_name

CHAMPION = "champion"
MODES = ("manual", "auto-simulation")


def approve(
    cfg: Any,
    version: str | int,
    by: str,
    mode: str = "manual",
    alias: str = CHAMPION,
) -> ModelVersion:
    """Move `alias` (default champion) to `version` after checks; returns the version."""
    if not by or not str(by).strip():
        raise ValueError("approval needs a reviewer name: atr approve VERSION --by NAME")
    if mode not in MODES:
        raise ValueError(f"approval mode {mode!r} not one of {MODES}")
    if not str(version).isdigit():
        raise ValueError(f"approve needs a version number, got {version!r}")
    client = configure(cfg)
    name = model_name(cfg)
    target = resolve_version(client, name, str(version))
    if target is None:
        raise ValueError(f"model {name} has no version {version}")
    workdir = Path(str(cfg_value(cfg, "approve.download_dir", "runtime/approve")))
    try:
        package = fetch_verified(client, target, workdir).path
    except ChecksumError as exc:
        raise ChecksumError(f"refusing to approve {name} v{version}: {exc}") from exc
    if not (package / POLICY_FILE).is_file():
        raise ValueError(f"refusing to approve {name} v{version}: its package has no "
                         f"{POLICY_FILE}")

    previous = resolve_version(client, name, alias)
    client.set_registered_model_alias(name, alias, target.version)
    tags = {
        "approved_by": str(by).strip(),
        "approved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "approval.previous_champion": str(previous.version) if previous else "none",
        "approval.mode": mode,
        "approval.alias": alias,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, target.version, key, value)
    return client.get_model_version(name, target.version)


def run(cfg: Any) -> dict[str, Any]:
    """Job for `atr approve VERSION --by NAME [--auto-approve]`."""
    version = cfg_value(cfg, "approve.version")
    if version is None:
        raise ValueError("usage: atr approve VERSION --by NAME")
    approved = approve(
        cfg,
        version=str(version),
        by=str(cfg_value(cfg, "approve.by", "")),
        mode=str(cfg_value(cfg, "approve.mode", "manual")),
        alias=str(cfg_value(cfg, "approve.alias", CHAMPION)),
    )
    return {
        "name": approved.name,
        "version": int(approved.version),
        "aliases": list(approved.aliases),
        "approved_by": approved.tags.get("approved_by"),
        "approved_at": approved.tags.get("approved_at"),
        "previous_champion": approved.tags.get("approval.previous_champion"),
        "mode": approved.tags.get("approval.mode"),
    }
