"""Fetch a registered version for serving: resolve the alias, download its package, check
every file against the version's `sha256.*` tags, load the ONNX network, warm it up.

Only ONNX and JSON are loaded (never the pyfunc's pickle): the package folder is
downloaded on its own, from the version's artifacts. No training code is imported.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow.artifacts
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from atr.package.checksums import sha256_file
from atr.package.onnx_scorer import OnnxScorer, PackageError
from atr.policy.decision import Policy
from serving.settings import Settings

log = logging.getLogger("serving.model")

# Where `atr register` logs the package inside the pyfunc model (its `artifacts` map).
PACKAGE_ARTIFACT = "artifacts/package"
SHA_TAG_PREFIX = "sha256."


class CandidateError(RuntimeError):
    """A version that cannot serve: unreachable, tampered, unloadable or without a policy."""


@dataclass(frozen=True)
class LoadedModel:
    """One verified, warmed-up version; immutable so a swap is one reference assignment."""

    name: str
    version: str
    alias: str
    scorer: OnnxScorer
    policy: Policy
    sha256: dict[str, str]
    max_pixels: int
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "alias": self.alias,
                "loaded_at": self.loaded_at.isoformat(), "outputs": list(self.scorer.outputs),
                # what a client must send: the manifest column the model reads (image:
                # pseudo-colour; raw: the dual-energy pair), as the line does
                "input": {"representation": self.scorer.preprocess.representation,
                          "column": self.scorer.preprocess.input_column},
                "sha256": dict(self.sha256)}


class ModelSource:
    """The registry side of the lifecycle: which version an alias names, and loading it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        # Built on first use, in the poller thread: a registry that is slow to open (or
        # down) never delays the start of the service or its /health answer.
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.settings.tracking_uri,
                                        registry_uri=self.settings.registry)
        return self._client

    def resolve(self, alias: str) -> str | None:
        """The version number the alias points at; None when unset or no such model."""
        try:
            return str(self.client.get_model_version_by_alias(self.settings.model_name,
                                                              alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def load(self, version: str, alias: str) -> LoadedModel:
        """Download + verify + load + warm up; raises CandidateError with the cause."""
        name = self.settings.model_name
        try:
            mv = self.client.get_model_version(name, version)
            package = self._download(version)
            sums = verify_package(package, mv.tags)
            scorer = OnnxScorer(package, intra_op_threads=self.settings.intra_op_threads)
        except (MlflowException, OSError, PackageError, ValueError) as exc:
            raise CandidateError(f"{name} v{version}: {exc}") from exc
        if scorer.policy is None:
            raise CandidateError(f"{name} v{version}: package has no policy.json, cannot decide")
        max_pixels = self.settings.max_pixels or scorer.preprocess.max_pixels
        model = LoadedModel(name=name, version=version, alias=alias, scorer=scorer,
                            policy=scorer.policy, sha256=sums, max_pixels=int(max_pixels))
        warm_up(model)
        return model

    def _download(self, version: str) -> Path:
        # A fresh folder per load: a rollback to a version loaded before never reads a
        # stale or half-written copy; older copies of the same version are cleared.
        root = Path(self.settings.download_dir)
        root.mkdir(parents=True, exist_ok=True)
        prefix = f"{self.settings.model_name}-v{version}-"
        for old in root.glob(prefix + "*"):
            shutil.rmtree(old, ignore_errors=True)
        dest = root / (prefix + uuid.uuid4().hex[:8])
        uri = self.client.get_model_version_download_uri(self.settings.model_name, version)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/{PACKAGE_ARTIFACT}", dst_path=str(dest),
            tracking_uri=self.settings.tracking_uri)
        return Path(local)


def verify_package(package: Path, tags: dict[str, str]) -> dict[str, str]:
    """Check every file named by a `sha256.<file>` tag; returns {file: sha256}.

    A version with no checksum tags is refused: the line only runs files whose integrity
    the registry vouches for.
    """
    expected = {k[len(SHA_TAG_PREFIX):]: v for k, v in tags.items()
                if k.startswith(SHA_TAG_PREFIX)}
    if not expected:
        raise CandidateError(f"{package}: the version has no sha256.* tags to verify against")
    bad = []
    for rel, digest in sorted(expected.items()):
        path = package / rel
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(rel)
    if bad:
        raise CandidateError(f"{package}: checksum mismatch or missing file(s) {bad}")
    return expected


def warm_up(model: LoadedModel) -> None:
    """One inference on a blank image: ONNX Runtime allocates on its first run, so the first
    parcel after a swap does not pay for it; also proves the network runs at all."""
    scores, emb = model.scorer.score_images([model.scorer.preprocess.blank()])
    if scores.shape != (1, len(model.scorer.outputs)) or not np.all(np.isfinite(scores)):
        raise CandidateError(f"{model.name} v{model.version}: warm-up gave scores {scores}")
    log.debug("warm-up of v%s: embedding %s", model.version, emb.shape)


