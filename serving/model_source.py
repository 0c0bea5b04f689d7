"""Fetch a registered version for serving: resolve the alias, download its package, check
every file against the version's `sha256.*` tags, load the ONNX network, warm it up.

Only an approved version serves as champion: before anything is downloaded, its approval
record (atr/package/approval.py: `approved_by`, `approval.alias` == the served alias, ...)
is checked; an alias moved to a version without one is refused (UnapprovedError) and the
current model kept. The shadow alias needs no approval: shadow scores never decide.

Resolution, download, verification and loading are atr.package's (fetch, onnx_scorer),
shared with the pyfunc, the gate and `atr approve`; what is serving's own here is the
candidate's life: one error type for any refusal, the immutable LoadedModel, the warm-up.
Only ONNX and JSON are loaded (never the pyfunc's pickle). No training code is imported.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from atr.package.approval import approval_problem
from atr.package.checksums import ChecksumError
from atr.package.fetch import fetch_verified, resolve_version
from atr.package.layout import PackageError
from atr.package.onnx_scorer import OnnxScorer, load_scorer
from atr.policy.decision import Policy
from serving.settings import Settings

log = logging.getLogger("serving.model")


class CandidateError(RuntimeError):
    """A version that cannot serve: unreachable, tampered, unloadable or without a policy.
    `cause` (a metric label and a log field): registry | checksum | package | warm_up |
    unapproved."""

    def __init__(self, message: str, cause: str = "package") -> None:
        super().__init__(message)
        self.cause = cause


class UnapprovedError(CandidateError):
    """The alias names a version without an approval record for that alias."""

    def __init__(self, message: str) -> None:
        super().__init__(message, cause="unapproved")


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
            # The poll loop is the retry: MLflow's default (7 retries, exponential backoff,
            # 120 s timeout) would hold the poller for minutes on a registry that is down,
            # and delay the swap after it is back. An operator's environment still wins.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            self._client = MlflowClient(tracking_uri=self.settings.tracking_uri,
                                        registry_uri=self.settings.registry)
        return self._client

    def resolve(self, alias: str) -> str | None:
        """The version number the alias points at; None when unset or no such model."""
        version = resolve_version(self.client, self.settings.model_name, alias)
        return None if version is None else str(version.version)

    def load(self, version: str, alias: str, approved: bool = True) -> LoadedModel:
        """Check the approval record (`approved`: needed for `alias`), download + verify +
        load + warm up; raises CandidateError with the cause."""
        name = self.settings.model_name
        try:
            mv = self.client.get_model_version(name, version)
        except MlflowException as exc:
            raise CandidateError(f"{name} v{version}: {exc}", cause="registry") from exc
        problem = approval_problem(mv.tags, alias) if approved else None
        if problem:
            raise UnapprovedError(f"{name} v{version} (@{alias}) is not served: {problem}")
        try:
            # A fresh copy per load (older ones of the version are cleared): a rollback to
            # a version loaded before never reads a stale or half-written copy.
            fetched = fetch_verified(self.client, mv, self.settings.download_dir)
            scorer = load_scorer(fetched.path, intra_op_threads=self.settings.intra_op_threads,
                                 spinning=self.settings.ort_spinning)
        except ChecksumError as exc:
            raise CandidateError(f"{name} v{version}: {exc}", cause="checksum") from exc
        except MlflowException as exc:
            raise CandidateError(f"{name} v{version}: {exc}", cause="registry") from exc
        except (OSError, PackageError, ValueError) as exc:
            raise CandidateError(f"{name} v{version}: {exc}") from exc
        max_pixels = self.settings.max_pixels or scorer.preprocess.max_pixels
        # scorer.policy is set: load_scorer refuses a package without policy.json.
        model = LoadedModel(name=name, version=version, alias=alias, scorer=scorer,
                            policy=scorer.policy, sha256=fetched.sha256,
                            max_pixels=int(max_pixels))
        warm_up(model)
        return model


def warm_up(model: LoadedModel) -> None:
    """One inference on a blank image: ONNX Runtime allocates on its first run, so the first
    parcel after a swap does not pay for it; also proves the network runs at all."""
    scores, emb = model.scorer.score_images([model.scorer.preprocess.blank()])
    if scores.shape != (1, len(model.scorer.outputs)) or not np.all(np.isfinite(scores)):
        raise CandidateError(f"{model.name} v{model.version}: warm-up gave scores {scores}",
                             cause="warm_up")
    log.debug("warm-up of v%s: embedding %s", model.version, emb.shape)
