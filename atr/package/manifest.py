"""`package.json`: what a model package holds, with the sha256 of each file.

Registration records the digests as version tags and serving can re-check them,
so a package edited after evaluation (a hand-tuned policy.json) is detectable.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atr.package.checksums import sha256_file

PACKAGE_FILE = "package.json"
RUN_FILE = "run.json"


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
        if p.is_file() and p.name != PACKAGE_FILE and not p.name.startswith(".")
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
    atomic_write_text(package / PACKAGE_FILE, json.dumps(doc, indent=2) + "\n")
    return doc


def verify_package(package_dir: str | Path) -> list[str]:
    """Files whose content no longer matches package.json (empty list: intact)."""
    package = Path(package_dir)
    recorded = json.loads((package / PACKAGE_FILE).read_text())["files"]
    return [
        rel for rel, digest in recorded.items()
        if not (package / rel).is_file() or sha256_file(package / rel) != digest
    ]
