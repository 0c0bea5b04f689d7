"""A real MLflow SQLite registry in a runtime folder, for tests that register tiny packages
(tests/helpers/packages.py) and serve them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from atr.config import compose

NAME = "atr-screening"  # conf/registry's model name


def runtime_overrides(root: Path) -> list[str]:
    """Hydra overrides that keep every piece of runtime state under `root`."""
    return [f"paths.root={root}", f"paths.data_dir={root / 'data'}",
            f"paths.artifacts_dir={root / 'artifacts'}"]


@dataclass
class Registry:
    """An MLflow SQLite store in a runtime folder, with helpers to add and alias versions.
    `packages` remembers the folder each version was registered from (its policy.json is
    what the service decides with)."""

    root: Path
    overrides: list[str]
    packages: dict[str, Path] = field(default_factory=dict)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"

    def client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def register(self, package: Path) -> str:
        from atr.registry.register import register_package

        cfg = compose("register", [*self.overrides,
                                   f"register.eval_dir={package / 'artifacts' / 'eval'}"])
        try:
            version = str(register_package(package, cfg).version)
        finally:
            # leave no process-wide MLflow state pointing into this runtime folder
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
        self.packages[version] = package
        return version

    def set_alias(self, alias: str, version: str, approved_by: str = "test-reviewer") -> None:
        """Move `alias`; `champion` as an approval does (the service serves only a version
        whose approval record names the alias): the record first, as `atr approve` writes
        it, without its download and checksum check (tests that tamper need the move)."""
        client = self.client()
        if alias == "champion":
            from atr.registry.approve import record_tags

            for key, value in record_tags(approved_by, "manual", alias, "test").items():
                client.set_model_version_tag(NAME, version, key, value)
        client.set_registered_model_alias(NAME, alias, version)

    def move_alias_unapproved(self, alias: str, version: str) -> None:
        """Move `alias` with no approval record written (what the service must refuse)."""
        self.client().set_registered_model_alias(NAME, alias, version)

    def package_of(self, version: str) -> Path:
        """The folder version `version` was registered from (KeyError if not by this helper)."""
        return self.packages[str(version)]

    def policy_json(self, version: str) -> dict:
        return json.loads((self.package_of(version) / "policy.json").read_text())


def registry_at(root: Path) -> Registry:
    """An (empty until registered into) registry whose runtime folder is `root`."""
    return Registry(root=root, overrides=runtime_overrides(root))
