"""A registered version's package, fetched from MLflow into a local folder and verified.

The one way every consumer gets a registered package: serving (its alias poller), the
gate, `atr approve`, `atr evaluate evaluate.model=...` and the drift monitor's reference.
Each download is checked file by file against the version's `sha256.*` tags and the
package's own package.json (atr.package.verify) before anyone reads it.

Design decisions:

- Resolution of an alias or version number lives here too (`resolve_version`), not in
  atr.registry: serving needs it and may import only atr.package, atr.store, atr.policy.
  atr.registry adds what is real on its side (configuring the client from the job config,
  moving aliases, writing tags) and calls these functions for the rest.
- Callers pass an MlflowClient they built (serving from its settings, jobs through
  atr.registry.tracking.configure): this module reads no config.
- Only the package folder (`layout.PACKAGE_PATH` of the logged model) is downloaded,
  never the pyfunc's pickle, to DEST/NAME-vN/package, through a private folder that
  replaces the previous copy only once complete: a half-written copy is never read, and a
  rollback to a version loaded before gets a fresh one. `reuse=True` (the monitor) keeps
  the previous copy instead, but only if it still verifies.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow.artifacts
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from atr.package.layout import PACKAGE_ARTIFACT, PACKAGE_PATH, PackageError
from atr.package.verify import verify_against_tags

log = logging.getLogger("atr.package")

# MLflow's answers for "no such model / version / alias": a missing alias is not a failure
# of the registry, so they read as None; anything else (store unreachable) is raised.
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class FetchedPackage:
    """A verified local copy of one registered version's package."""

    version: ModelVersion
    path: Path
    sha256: dict[str, str]  # {file: hex}, as the version's tags state and the files match


def resolve_version(client: MlflowClient, name: str, ref: str | int) -> ModelVersion | None:
    """The version `ref` names: a version number ("3") or an alias ("champion").
    None when the model, the version or the alias does not exist."""
    ref = str(ref)
    try:
        if ref.isdigit():
            return client.get_model_version(name, ref)
        return client.get_model_version_by_alias(name, ref)
    except MlflowException as exc:
        if exc.error_code in _ABSENT:
            return None
        raise


def fetch_package(client: MlflowClient, name: str, ref: str | int, dest_root: str | Path,
                  reuse: bool = False) -> FetchedPackage:
    """resolve_version + fetch_verified; LookupError naming the reference when it resolves
    to nothing."""
    version = resolve_version(client, name, ref)
    if version is None:
        raise LookupError(f"model {name!r} has no version or alias {str(ref)!r} "
                          f"(tracking store {client.tracking_uri})")
    return fetch_verified(client, version, dest_root, reuse=reuse)


def fetch_verified(client: MlflowClient, version: ModelVersion, dest_root: str | Path,
                   reuse: bool = False) -> FetchedPackage:
    """Download the version's package to dest_root/NAME-vN/package and verify every file.

    reuse: first try the copy an earlier call left there (a version's files never change);
    a copy that no longer verifies is discarded and downloaded again.
    """
    if reuse:
        cached = _final(version, dest_root)
        if cached.is_dir():
            try:
                return FetchedPackage(version, cached, verify_against_tags(cached, version.tags))
            except (PackageError, OSError) as exc:
                log.warning("cached copy refused, downloading again: %s", exc)
    package = download_package(client, version, dest_root)
    return FetchedPackage(version, package, verify_against_tags(package, version.tags))


def download_package(client: MlflowClient, version: ModelVersion,
                     dest_root: str | Path) -> Path:
    """Download (unverified) the version's package folder; returns dest_root/NAME-vN/package.

    The download lands in a private folder first and replaces the previous copy only once
    complete, so that path never holds a half-written package.
    """
    root = Path(dest_root)
    root.mkdir(parents=True, exist_ok=True)
    work = root / f".{version.name}-v{version.version}-{uuid.uuid4().hex[:8]}.partial"
    work.mkdir()
    try:
        uri = client.get_model_version_download_uri(version.name, version.version)
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/{PACKAGE_PATH}", dst_path=str(work),
            tracking_uri=client.tracking_uri))
    except (MlflowException, OSError) as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise PackageError(
            f"model {version.name} v{version.version}: cannot download {PACKAGE_PATH} of its "
            f"artifacts ({version.source}); was it registered with `atr register`? {exc}"
        ) from exc
    if not local.is_dir():
        shutil.rmtree(work, ignore_errors=True)
        raise PackageError(f"model {version.name} v{version.version}: {PACKAGE_PATH} of its "
                           f"artifacts ({version.source}) is not a folder")
    final = _final(version, root)
    shutil.rmtree(final.parent, ignore_errors=True)
    try:
        work.rename(final.parent)
    except OSError:
        # Another process put its own copy there in between: ours is as complete; use it.
        return local
    return final


def _final(version: ModelVersion, dest_root: str | Path) -> Path:
    return Path(dest_root) / f"{version.name}-v{version.version}" / PACKAGE_ARTIFACT
