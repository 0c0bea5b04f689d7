"""sha256 of package files, and the `sha256.<file>` version tags that carry them.

Registration records every file's digest as a tag; every loader recomputes them
(atr.package.verify), so a file altered after registration is refused, not run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

from atr.package.layout import SHA_TAG_PREFIX, PackageError


class ChecksumError(PackageError):
    """A package file does not match the checksum recorded for it (a ValueError: the CLI
    shows the message, which names the file)."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_checksums(package_dir: str | Path) -> dict[str, str]:
    """sha256 of every file under the package folder, keyed by posix relative path."""
    root = Path(package_dir)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def mismatches(actual: Mapping[str, str], expected: Mapping[str, str]) -> list[str]:
    """Files whose expected checksum is missing or different in `actual`."""
    return sorted(name for name, digest in expected.items() if actual.get(name) != digest)


def checksum_tags(checksums: Mapping[str, str]) -> dict[str, str]:
    """{file: hex} -> the version tags {`sha256.<file>`: hex}."""
    return {SHA_TAG_PREFIX + name: digest for name, digest in checksums.items()}


def checksums_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The version tags back to {file: hex}; other tags are ignored."""
    return {k[len(SHA_TAG_PREFIX):]: v for k, v in tags.items() if k.startswith(SHA_TAG_PREFIX)}
