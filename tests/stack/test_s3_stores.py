"""The object store's two clients besides MLflow, on a real SeaweedFS S3 server (weed mini
on loopback, a real access key): the S3 image store (the local ImageStore's interface)
and the DVC remote (push, then pull into a fresh checkout)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers.images import png_bytes

from atr.demo_service import free_port
from atr.stack.dvc_remote import configure_remote, dvc_binary
from atr.stack.objectstore import ObjectStore
from atr.store.image_store import ImageStore, ImageStoreError, open_image_store
from atr.store.s3_images import S3ImageStore


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    store = ObjectStore(tmp_path_factory.mktemp("s3") / "weed", free_port(), "atrtestkey",
                        "atr-test-secret", ["atr-images", "atr-dvc"]).start()
    yield store
    store.stop()


def test_s3_image_store_matches_the_local_one(s3: ObjectStore, tmp_path: Path) -> None:
    images = S3ImageStore("s3://atr-images/frontline", client=s3.client())
    local = ImageStore(tmp_path / "images")
    a, b = png_bytes((1, 2, 3)), png_bytes((4, 5, 6))
    with ThreadPoolExecutor(4) as pool:
        refs = images.put_many([(a, None), (b, "x.png"), (a, None)], pool)
    assert refs == local.put_many([(a, None), (b, "x.png"), (a, None)])  # same addresses
    assert refs[0] == hashlib.sha256(a).hexdigest() + ".png" and refs[0] == refs[2]
    assert images.get(refs[1]) == b and refs[1] in images
    key = s3.client().head_object(Bucket="atr-images", Key=images.key(refs[1]))
    assert key["ContentLength"] == len(b)
    assert images.delete(refs[1]) is True and refs[1] not in images
    assert images.delete(refs[1]) is False
    with pytest.raises(ImageStoreError):
        images.get(refs[1])
    with pytest.raises(ImageStoreError):
        images.get("../../etc/passwd")
    assert "not-a-ref" not in images


def test_open_image_store_picks_the_backend(monkeypatch: pytest.MonkeyPatch, s3: ObjectStore,
                                            tmp_path: Path) -> None:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    opened = open_image_store("s3://atr-images/p")
    assert isinstance(opened, S3ImageStore) and (opened.bucket, opened.prefix) == (
        "atr-images", "p")
    assert opened.get(opened.put(png_bytes((7, 7, 7)))) == png_bytes((7, 7, 7))
    assert isinstance(open_image_store(tmp_path / "imgs"), ImageStore)
    with pytest.raises(ValueError, match="s3://bucket"):
        S3ImageStore("s3:///nobucket")


def test_a_wrong_key_is_refused(s3: ObjectStore) -> None:
    import boto3

    bad = boto3.client("s3", endpoint_url=s3.url, aws_access_key_id="atrtestkey",
                       aws_secret_access_key="wrong", region_name="us-east-1")
    out = S3ImageStore("s3://atr-images/x", client=bad).put_many([(b"abc", None)])
    assert isinstance(out[0], OSError)  # SignatureDoesNotMatch, reported per item


def test_store_down_fails_each_put_with_oserror(tmp_path: Path) -> None:
    """The server stopped: every item's PUT is an OSError, quickly (short timeouts)."""
    import time

    store = ObjectStore(tmp_path / "weed", free_port(), "k0key", "k0secret",
                        ["atr-images"]).start()
    images = S3ImageStore("s3://atr-images/f", client=store.client())
    assert images.put(b"first") in images
    store.stop()
    started = time.monotonic()
    out = images.put_many([(b"one", None), (b"two", None)])
    assert all(isinstance(r, OSError) for r in out) and time.monotonic() - started < 10


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([dvc_binary(), *args], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"dvc {' '.join(args)}: {done.stdout}{done.stderr}"
    return done


def test_dvc_remote_push_then_pull_into_a_fresh_checkout(s3: ObjectStore,
                                                         tmp_path: Path) -> None:
    first, fresh = tmp_path / "first", tmp_path / "fresh"
    for repo in (first, fresh):
        repo.mkdir()
        _dvc(repo, "init", "--no-scm", "-q")
        configure_remote(repo, "stack", "s3://atr-dvc/data", s3.url, s3.access_key,
                         s3.secret_key)
    (first / "data" / "batch").mkdir(parents=True)
    (first / "data" / "batch" / "a.bin").write_bytes(b"\x00\x01" * 5000)
    (first / "data" / "b.txt").write_text("frontline batch\n")
    _dvc(first, "add", "-q", "data")
    _dvc(first, "push", "-r", "stack")
    listed = s3.client().list_objects_v2(Bucket="atr-dvc", Prefix="data/")
    assert listed.get("KeyCount", 0) >= 2  # the files are on the object store
    assert "secret_access_key" not in (first / ".dvc" / "config").read_text()
    shutil.copy(first / "data.dvc", fresh / "data.dvc")
    _dvc(fresh, "pull", "-r", "stack")
    assert (fresh / "data" / "batch" / "a.bin").read_bytes() == b"\x00\x01" * 5000
    assert (fresh / "data" / "b.txt").read_text() == "frontline batch\n"
