"""The content-addressed frontline image store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import png_bytes

from atr.monitor.image_store import ImageStore, ImageStoreError


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
