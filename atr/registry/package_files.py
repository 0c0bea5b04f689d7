"""Checksums of a model package's files: computed at registration, re-checked before use.

The sha256 of every file becomes a version tag `sha256.<relative path>`; the gate and
`atr approve` recompute them on the downloaded package, so a version whose files were
altered after registration is refused rather than promoted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from atr.package.checksums import sha256_file

SHA_TAG_PREFIX = "sha256."
REQUIRED_FILES = ("model.onnx", "preprocess.json", "taxonomy.json")
MANIFEST_FILE = "package.json"


class ChecksumError(ValueError):
    """A package file does not match the checksum recorded for it (ValueError: CLI shows it)."""


def package_checksums(package_dir: Path) -> dict[str, str]:
    """sha256 of every file under the package folder, keyed by posix relative path."""
    files = sorted(p for p in package_dir.rglob("*") if p.is_file())
    return {p.relative_to(package_dir).as_posix(): sha256_file(p) for p in files}


def recorded_in_manifest(package_dir: Path) -> dict[str, str]:
    """The sha256 values package.json states, whatever shape the evaluate stage used:
    {"sha256": {file: hex}} or {"files": {file: hex | {"sha256": hex}}}."""
    path = package_dir / MANIFEST_FILE
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    table = doc.get("sha256") or doc.get("files") or {}
    out = {}
    if isinstance(table, Mapping):
        for name, value in table.items():
            digest = value.get("sha256") if isinstance(value, Mapping) else value
            if isinstance(digest, str):
                out[str(name)] = digest
    return out


def check_package(package_dir: Path) -> dict[str, str]:
    """Checksums of a package about to be registered; refuses missing files and any file
    that no longer matches package.json (the evaluate stage's record)."""
    if not package_dir.is_dir():
        raise FileNotFoundError(f"model package {package_dir} is not a directory")
    missing = [f for f in REQUIRED_FILES if not (package_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"model package {package_dir} lacks {missing}")
    actual = package_checksums(package_dir)
    mismatched = mismatches(actual, recorded_in_manifest(package_dir))
    if mismatched:
        raise ChecksumError(f"{package_dir}: files differ from {MANIFEST_FILE}: {mismatched}")
    return actual


def mismatches(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """Files whose expected checksum is missing or different in `actual`."""
    return sorted(name for name, digest in expected.items() if actual.get(name) != digest)


def checksum_tags(checksums: Mapping[str, str]) -> dict[str, str]:
    return {SHA_TAG_PREFIX + name: digest for name, digest in checksums.items()}


def checksums_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k[len(SHA_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(SHA_TAG_PREFIX)}


def verify_against_tags(package_dir: Path, tags: Mapping[str, str]) -> None:
    """Raise ChecksumError unless every file named in the version's sha256 tags matches."""
    expected = checksums_from_tags(tags)
    if not expected:
        raise ChecksumError(f"{package_dir}: the model version has no sha256.* tags to check")
    bad = mismatches(package_checksums(package_dir), expected)
    if bad:
        raise ChecksumError(f"{package_dir}: checksum mismatch for {bad}")
