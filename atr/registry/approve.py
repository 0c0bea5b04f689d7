"""`atr approve VERSION [--by NAME]`: a reviewer promotes a version to `@champion`.

Before the alias moves, the version's package is downloaded and every file checked
against the `sha256.*` tags written at registration, and it must carry a `policy.json`
(without one the line could not decide). The approval record (atr/package/approval.py) on
the approved version: `approved_by`, `approved_at` (UTC ISO 8601), `approval.alias`,
`approval.previous_champion` (version or `none`), `approval.mode`. Only a version whose
record names the served alias is served.

Two kinds of store:
- the MLflow server with authentication (`atr mlflow`, `MLFLOW_TRACKING_USERNAME`/
  `PASSWORD` set, tracking URI http(s)://): the caller's account moves the alias and the
  server writes the record naming that account (`approval.mode=api`; `ui` when a reviewer
  moves it in the MLflow UI). `--by` may be left out; a `--by` naming another account is
  refused: the record names who authenticated, not who was typed;
- a store the job opens directly (the runtime's SQLite file, as in the demo): `--by` is
  required and the job writes the record (`manual`, or `auto-simulation` for
  `--auto-approve` in demos and simulations, so an unattended promotion is never mistaken
  for a human decision), before moving the alias, so no poll sees it unrecorded.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion

from atr.package import approval
from atr.package.checksums import ChecksumError
from atr.package.fetch import fetch_verified, resolve_version
from atr.package.layout import POLICY_FILE
from atr.registry.tracking import cfg_value, configure, model_name

CHAMPION = "champion"
MODES = ("manual", "auto-simulation")


def authenticated_user(cfg: Any) -> str | None:
    """The account the MLflow client authenticates as, when it talks to a server."""
    uri = str(cfg_value(cfg, "paths.registry_uri", cfg_value(cfg, "paths.tracking_uri")))
    user = os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip()
    return user if uri.startswith(("http://", "https://")) and user else None


def record_tags(by: str, mode: str, alias: str, previous: str) -> dict[str, str]:
    """The approval record as the job writes it (the auth app writes its own)."""
    return {
        approval.APPROVED_BY: by,
        approval.APPROVED_AT: datetime.now(UTC).isoformat(timespec="seconds"),
        approval.PREVIOUS: previous,
        approval.MODE: mode,
        approval.ALIAS: alias,
    }


def approve(
    cfg: Any,
    version: str | int,
    by: str | None = None,
    mode: str = "manual",
    alias: str = CHAMPION,
) -> ModelVersion:
    """Move `alias` (default champion) to `version` after checks; returns the version."""
    account = authenticated_user(cfg)
    by = str(by or "").strip()
    if account is not None and by and by != account:
        raise ValueError(f"--by {by} is not the authenticated account {account}: the "
                         "approval record names who logged in (MLFLOW_TRACKING_USERNAME); "
                         "drop --by or log in as that reviewer")
    if account is None and not by:
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
    if account is None:
        tags = record_tags(by, mode, alias, str(previous.version) if previous else "none")
        for key, value in tags.items():
            client.set_model_version_tag(name, target.version, key, value)
        client.set_registered_model_alias(name, alias, target.version)
        return client.get_model_version(name, target.version)
    # The server (atr-auth app) refuses a move without the reviewer role, then records it.
    client.set_registered_model_alias(name, alias, target.version)
    approved = client.get_model_version(name, target.version)
    problem = approval.approval_problem(approved.tags, alias)
    if problem or approved.tags.get(approval.APPROVED_BY) != account:
        raise RuntimeError(f"@{alias} moved to {name} v{version} but the server wrote no "
                           f"approval record for {account} ({problem or 'another account'}): "
                           "is it running `--app-name atr-auth` (atr mlflow)? The version is "
                           "not served until it carries one")
    return approved


def run(cfg: Any) -> dict[str, Any]:
    """Job for `atr approve VERSION [--by NAME] [--auto-approve]`."""
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
        "approved_by": approved.tags.get(approval.APPROVED_BY),
        "approved_at": approved.tags.get(approval.APPROVED_AT),
        "previous_champion": approved.tags.get(approval.PREVIOUS),
        "mode": approved.tags.get(approval.MODE),
    }
