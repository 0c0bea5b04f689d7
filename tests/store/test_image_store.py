"""The content-addressed frontline image store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from helpers.images import png_bytes

from atr.store.image_store import ImageStore, ImageStoreError


def test_put_get_path_by_content(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    data = png_bytes()
    ref = store.put(data)
    sha = hashlib.sha256(data).hexdigest()
    assert ref == sha + ".png"
    assert store.path(ref) == tmp_path / "images" / sha[:2] / sha[2:4] / ref
    assert store.get(ref) == data and ref in store
    assert store.put(data) == ref  # same bytes, same address, one file
    assert len([p for p in (tmp_path / "images").rglob("*") if p.is_file()]) == 1


def test_extension_from_name_or_bytes_and_no_temp_left(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    assert store.put(b"\xff\xd8\xff\xe0 jpeg-ish").endswith(".jpg")
    assert store.put(b"raw bytes", "scan.TIFF").endswith(".tiff")
    assert "." not in store.put(b"unknown bytes")
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_bad_refs_are_refused(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with pytest.raises(ImageStoreError):
        store.path("../../etc/passwd")
    with pytest.raises(ImageStoreError, match="no image"):
        store.get("0" * 64 + ".png")


def test_put_many_syncs_each_file_and_directory_before_it_returns(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch writes keep put's guarantee: data synced before the rename, every changed
    directory synced after it, all before the references are handed back."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    import atr.store.image_store as image_store

    events: list[tuple[str, object]] = []
    real_fdatasync, real_replace, real_fsync_dir = (os.fdatasync, os.replace,
                                                    image_store._fsync_dir)
    monkeypatch.setattr(os, "fdatasync", lambda fd: (events.append(("data", fd)),
                                                     real_fdatasync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("rename", Path(b))),
                                                     real_replace(a, b))[1])
    monkeypatch.setattr(image_store, "_fsync_dir", lambda d: (events.append(("dir", d)),
                                                              real_fsync_dir(d))[1])
    store = ImageStore(tmp_path)
    blobs = [(png_bytes((k, 9, 9)), "scan.png") for k in range(6)]
    with ThreadPoolExecutor(4) as pool:
        refs = store.put_many([*blobs, blobs[0]], pool)  # a duplicate is written once
    assert refs[-1] == refs[0] and all(isinstance(r, str) for r in refs)
    assert [store.get(r) for r in refs[:6]] == [b for b, _ in blobs]
    kinds = [k for k, _ in events]
    assert kinds.count("data") == 6 and kinds.count("rename") == 6
    assert max(i for i, k in enumerate(kinds) if k == "data") < kinds.index("rename")
    synced = {d for k, d in events if k == "dir"}
    assert max(i for i, k in enumerate(kinds) if k == "rename") < kinds.index("dir")
    for ref in refs:  # the file's directory and the new directories above it
        leaf = store.path(ref).parent
        assert {leaf, leaf.parent, leaf.parent.parent} <= synced
    events.clear()
    assert store.put_many(blobs) == refs[:6] and events == []  # known durable: a stat only


def test_put_many_reports_a_failed_write_per_item(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    store = ImageStore(tmp_path)
    good, bad = png_bytes((1, 2, 3)), png_bytes((4, 5, 6))
    real = os.fdatasync

    def flaky(fd: int) -> None:
        if os.fstat(fd).st_size == len(bad) and os.pread(fd, len(bad), 0) == bad:
            raise OSError(28, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fdatasync", flaky)
    ok, failed = store.put_many([(good, None), (bad, None)])
    assert isinstance(ok, str) and store.get(ok) == good
    assert isinstance(failed, OSError)
    assert not list(tmp_path.rglob(".tmp-*")) and len(list(tmp_path.rglob("*.png"))) == 1


def test_delete_removes_the_file_once_and_a_later_put_rewrites_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    ref = store.put(png_bytes())
    assert store.delete(ref) is True and ref not in store
    assert store.delete(ref) is False  # nothing there any more: said, not raised
    assert store.put(png_bytes()) == ref and ref in store  # not skipped as "known durable"
    with pytest.raises(ImageStoreError):
        store.delete("../../etc/passwd")
