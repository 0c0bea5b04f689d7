"""`package.json`: what a model package holds, with the sha256 of each file.

Registration records the digests as version tags and serving can re-check them,
so a package edited after evaluation (a hand-tuned policy.json) is detectable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atr.package.checksums import mismatches, package_checksums, sha256_file
from atr.package.layout import MANIFEST_FILE, RUN_FILE


def atomic_write_text(path: Path, text: str) -> Path:
    """Write through a temporary file and rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_package_manifest(
    package_dir: str | Path, name: str, dataset_dir: str | Path | None = None
) -> dict[str, Any]:
    """Hash every file of the package (except package.json itself) and write package.json."""
    package = Path(package_dir)
    files = {
        p.relative_to(package).as_posix(): sha256_file(p)
        for p in sorted(package.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE and not p.name.startswith(".")
    }
    run: dict[str, Any] = {}
    if (package / RUN_FILE).is_file():
        run = json.loads((package / RUN_FILE).read_text())
    doc: dict[str, Any] = {
        "name": name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
        "run_id": run.get("run_id"),
        # The training run's own record (data version, git commit...) as train wrote it.
        "training": run,
    }
    if dataset_dir is not None:
        manifest = Path(dataset_dir) / "manifest.parquet"
        doc["calibration_data"] = {
            "path": str(Path(dataset_dir).resolve()),
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        }
    atomic_write_text(package / MANIFEST_FILE, json.dumps(doc, indent=2) + "\n")
    return doc


def recorded_checksums(package_dir: str | Path) -> dict[str, str]:
    """The sha256 values package.json states ({} without one), in either shape written:
    {"files": {file: hex | {"sha256": hex}}} (this module) or {"sha256": {file: hex}}."""
    path = Path(package_dir) / MANIFEST_FILE
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    table = doc.get("files") or doc.get("sha256") or {}
    out: dict[str, str] = {}
    if isinstance(table, Mapping):
        for name, value in table.items():
            digest = value.get("sha256") if isinstance(value, Mapping) else value
            if isinstance(digest, str):
                out[str(name)] = digest
    return out


def verify_package(package_dir: str | Path) -> list[str]:
    """Files whose content no longer matches package.json (empty list: intact)."""
    return mismatches(package_checksums(package_dir), recorded_checksums(package_dir))
