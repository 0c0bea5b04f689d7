"""Content-addressed file store for the images the line sends (the frontline images).

An image is stored once under its sha256 (`<root>/<sha[:2]>/<sha[2:4]>/<sha><ext>`), so a
re-sent item costs no space and a reference can be checked against the bytes it names.
Writes are atomic and durable (temp file + fdatasync + rename + fsync of the directories
whose entries changed): a crash leaves either the whole image or nothing, never a truncated
file that a reference points at, and a returned reference survives a power loss.
`put_many` stores several images with the same guarantee but overlaps their syncs in a
thread pool (the filesystem journal coalesces concurrent commits): the serving line stores a
micro-batch's images that way, before it commits the batch's rows. No torch here: serving
uses it. `open_image_store` also opens the S3 backend (atr/store/s3_images.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from atr.store.s3_images import S3ImageStore

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


def image_ref_sha(ref: str) -> str:
    """The sha256 a reference names; ImageStoreError for anything that is not a reference."""
    match = _REF.match(ref)
    if not match:
        raise ImageStoreError(f"not an image reference: {ref!r} (expected <sha256><.ext>)")
    return match.group(1)


def open_image_store(location: str | Path) -> ImageStore | S3ImageStore:
    """The image store `location` names: `s3://bucket/prefix` (atr.store.s3_images, shared
    by replicas on several machines) or a local folder."""
    if str(location).startswith("s3://"):
        from atr.store.s3_images import S3ImageStore

        return S3ImageStore(str(location))
    return ImageStore(location)


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

    # References known durable in this process (written and synced here, or found on disk
    # and their directory synced once): a re-sent image costs a stat, not a sync.
    _KNOWN_MAX = 100_000

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._known: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, data: bytes, filename: str | None = None) -> str:
        result = self.put_many([(data, filename)])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def put_many(self, items: Sequence[tuple[bytes, str | None]],
                 executor: Executor | None = None) -> list[str | OSError]:
        """Store each (bytes, filename) durably; per item its reference or the OSError that
        kept it out. Every returned reference is on stable storage when this returns.

        With `executor`, the data syncs run concurrently in it, then the directory syncs;
        without, one after the other (same guarantee, more waiting)."""
        out: list[str | OSError] = []
        pending: dict[str, tuple[Path, bytes]] = {}  # ref -> (target, data): to write
        check_dirs: dict[str, Path] = {}  # ref -> target: on disk, not yet known durable
        for data, filename in items:
            ref = hashlib.sha256(data).hexdigest() + guess_extension(data, filename)
            out.append(ref)
            target = self.path(ref)
            if ref in pending or ref in check_dirs:
                continue
            if not target.exists():
                pending[ref] = (target, data)
            elif not self._is_known(ref):  # same bytes, same address: nothing to write,
                check_dirs[ref] = target  # but its entry may not be synced yet
        if not pending and not check_dirs:
            return out
        run = _runner(executor)
        failed: dict[str, OSError] = {}
        dirs: set[Path] = {t.parent for t in check_dirs.values()}
        # 1. temp files written and their data synced (concurrently), 2. renamed into place,
        # 3. every directory whose entries changed synced once, 4. only then acknowledged.
        written = run(lambda ref: self._write_temp(*pending[ref]), list(pending))
        renamed: list[str] = []
        for ref, res in zip(list(pending), written, strict=True):
            if isinstance(res, BaseException):
                failed[ref] = _as_oserror(res)
                continue
            tmp, new_dirs = res
            target = pending[ref][0]
            try:
                os.replace(tmp, target)  # atomic on POSIX: readers see all or nothing
            except OSError as exc:
                Path(tmp).unlink(missing_ok=True)
                failed[ref] = exc
                continue
            renamed.append(ref)
            dirs.add(target.parent)
            dirs.update(d.parent for d in new_dirs)  # a new directory's own entry
        synced = dict(zip(sorted(dirs), run(_fsync_dir, sorted(dirs)), strict=True))
        for ref in [*renamed, *check_dirs]:
            target = pending[ref][0] if ref in pending else check_dirs[ref]
            bad = [synced[d] for d in (target.parent, target.parent.parent,
                                       target.parent.parent.parent) if d in synced
                   and isinstance(synced[d], BaseException)]
            if bad:
                failed[ref] = _as_oserror(bad[0])
            else:
                self._remember(ref)
        return [failed.get(r, r) if isinstance(r, str) else r for r in out]

    def _write_temp(self, target: Path, data: bytes) -> tuple[str, list[Path]]:
        new_dirs = [d for d in (target.parent.parent, target.parent) if not d.is_dir()]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fdatasync(f.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp, new_dirs

    def _is_known(self, ref: str) -> bool:
        with self._lock:
            if ref in self._known:
                self._known.move_to_end(ref)
                return True
            return False

    def _remember(self, ref: str) -> None:
        with self._lock:
            self._known[ref] = None
            while len(self._known) > self._KNOWN_MAX:
                self._known.popitem(last=False)

    def path(self, ref: str) -> Path:
        sha = image_ref_sha(ref)
        return self.root / sha[:2] / sha[2:4] / ref

    def get(self, ref: str) -> bytes:
        p = self.path(ref)
        try:
            return p.read_bytes()
        except FileNotFoundError as exc:
            raise ImageStoreError(f"no image stored under {ref!r} ({p})") from exc

    def delete(self, ref: str) -> bool:
        """Remove a stored image (retention, atr.store.retention); False when none was there.
        The directory entry is synced so a pruned image stays gone after a power loss."""
        p = self.path(ref)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        with self._lock:
            self._known.pop(ref, None)
        _fsync_dir(p.parent)
        return True

    def __contains__(self, ref: str) -> bool:
        try:
            return self.path(ref).is_file()
        except ImageStoreError:
            return False


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _runner(executor: Executor | None) -> Callable[[Callable[[object], object], list],
                                                   list[object]]:
    """map(fn, args) -> results or the exceptions raised, concurrently in `executor`."""

    def run(fn: Callable[[object], object], args: list) -> list[object]:
        if executor is None or len(args) < 2:
            return [_capture(fn, a) for a in args]
        return list(executor.map(lambda a: _capture(fn, a), args))

    return run


def _capture(fn: Callable[[object], object], arg: object) -> object:
    try:
        return fn(arg)
    except Exception as exc:  # reported per item: one bad write must not hide the others
        return exc


def _as_oserror(exc: BaseException) -> OSError:
    return exc if isinstance(exc, OSError) else OSError(str(exc))
