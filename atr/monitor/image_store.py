"""Content-addressed file store for the images the line sends (the frontline images).

An image is stored once under its sha256 (`<root>/<sha[:2]>/<sha[2:4]>/<sha><ext>`), so a
re-sent item costs no space and a reference can be checked against the bytes it names.
Writes are atomic (temp file + fsync + rename): a crash leaves either the whole image or
nothing, never a truncated file that a reference points at. No torch here: serving uses it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

# Magic bytes -> extension, so a stored file opens in any viewer; unknown formats get none.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
    (b"GIF8", ".gif"),
    (b"RIFF", ".webp"),
)
_EXT = re.compile(r"^\.[a-z0-9]{1,5}$")
_REF = re.compile(r"^([0-9a-f]{64})(\.[a-z0-9]{1,5})?$")


class ImageStoreError(ValueError):
    """A reference that is malformed or names no stored image."""


def guess_extension(data: bytes, filename: str | None = None) -> str:
    """The original file's extension when it is a plain one, else one sniffed from the bytes."""
    if filename:
        ext = Path(filename).suffix.lower()
        if _EXT.match(ext):
            return ext
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    return ""


class ImageStore:
    """put(bytes) -> ref, get(ref) -> bytes, path(ref) -> Path; refs are `<sha256><ext>`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes, filename: str | None = None) -> str:
        ext = guess_extension(data, filename)
        ref = hashlib.sha256(data).hexdigest() + ext
        target = self.path(ref)
        if target.exists():  # same bytes, same address: nothing to write
            return ref
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)  # atomic on POSIX: readers see all or nothing
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ref

    def path(self, ref: str) -> Path:
        match = _REF.match(ref)
        if not match:
            raise ImageStoreError(f"not an image reference: {ref!r} (expected <sha256><.ext>)")
        sha = match.group(1)
        return self.root / sha[:2] / sha[2:4] / ref

    def get(self, ref: str) -> bytes:
        p = self.path(ref)
        try:
            return p.read_bytes()
        except FileNotFoundError as exc:
            raise ImageStoreError(f"no image stored under {ref!r} ({p})") from exc

    def __contains__(self, ref: str) -> bool:
        try:
            return self.path(ref).is_file()
        except ImageStoreError:
            return False
