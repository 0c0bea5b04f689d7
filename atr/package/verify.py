"""Is this package folder the one that was evaluated and registered? Checked two ways:

- against its own `package.json` (what the evaluate stage hashed): before registration,
  so a package edited after evaluation never gets registered;
- against a registered version's `sha256.*` tags and `package.json` both: after every
  download, so a tampered, half-downloaded or stale copy is never scored or promoted.

Every refusal is a ChecksumError naming the file(s) and the record they break.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from atr.package.checksums import (
    ChecksumError,
    checksums_from_tags,
    mismatches,
    package_checksums,
)
from atr.package.layout import MANIFEST_FILE, REQUIRED_FILES, PackageError
from atr.package.manifest import recorded_checksums


def check_local_package(package_dir: str | Path) -> dict[str, str]:
    """Checksums of a package about to be registered (the tags to write); refuses missing
    required files and any file that no longer matches package.json."""
    package = Path(package_dir)
    _require_files(package)
    actual = package_checksums(package)
    bad = mismatches(actual, recorded_checksums(package))
    if bad:
        raise ChecksumError(f"{package}: checksum mismatch with {MANIFEST_FILE} for {bad}")
    return actual


def verify_against_tags(package_dir: str | Path, tags: Mapping[str, str]) -> dict[str, str]:
    """Check every file of a downloaded package; returns {file: sha256} as the tags state.

    A version with no checksum tags is refused: only files whose integrity the registry
    vouches for are run. A file the tags do not name is refused too: registration hashed
    every file, so an extra one was added afterwards.
    """
    package = Path(package_dir)
    expected = checksums_from_tags(tags)
    if not expected:
        raise ChecksumError(f"{package}: the model version has no sha256.* tags to verify")
    _require_files(package)
    actual = package_checksums(package)
    bad = mismatches(actual, expected)
    if bad:
        raise ChecksumError(f"{package}: checksum mismatch with the version's sha256 tags "
                            f"for {bad}")
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise ChecksumError(f"{package}: checksum missing for {extra}: files the version's "
                            "sha256 tags do not name")
    bad = mismatches(actual, recorded_checksums(package))
    if bad:
        raise ChecksumError(f"{package}: checksum mismatch with {MANIFEST_FILE} for {bad}")
    return expected


def _require_files(package: Path) -> None:
    if not package.is_dir():
        raise PackageError(f"model package {package} is not a directory")
    missing = [f for f in REQUIRED_FILES if not (package / f).is_file()]
    if missing:
        raise PackageError(f"model package {package} lacks {missing}")

